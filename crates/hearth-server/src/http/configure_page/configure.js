// The configure page (docs/ARCHITECTURE.md): the person picks a provider and pastes an API key; this
// script encrypts the key here, in the browser, to the keyguard's public key and posts only
// the envelope to this same URL. The key is never stored, logged or put in a URL, and the
// input is cleared as soon as the key is sealed.
//
// Envelope: ECDH P-256 with a fresh ephemeral key; HKDF-SHA256 over the shared x-coordinate,
// salted with the ephemeral public key, to an AES-256-GCM key; associated data
// `<configure or pool>|<user id>|<link>|<provider>`, `link` being the SHA-256 of this page's link
// token (the server says it), so an envelope captured here opens on no other link and for no
// other purpose. The Rust keyguard opens exactly this (see
// crates/hearth-keyguard/tests/envelope-vector.json).

/** HKDF `info`: names the envelope's format, so its keys are good for nothing else. */
const ENVELOPE_INFO = "hearth-keyguard/envelope/v1"

const ECDH = {name: "ECDH", namedCurve: "P-256"}

const utf8 = text => new TextEncoder().encode(text)

/** Base64url without padding. */
export function base64url(bytes){
  let binary = ""
  for(const byte of new Uint8Array(bytes)){ binary += String.fromCharCode(byte) }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
}

/** Decodes base64url, padded or not; throws on anything else. */
export function fromBase64url(text){
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"))
  return Uint8Array.from(binary, c => c.charCodeAt(0))
}

/** The associated data of this page's envelope for `provider`. */
export function associatedData(config, provider){
  return `${config.pool ? "pool" : "configure"}|${config.user_id}|${config.link}|${provider}`
}

/**
 * Encrypts `key` for `provider` to the keyguard named in `config` (`kid`, `public_key`,
 * `user_id`, `link`, `pool`); returns the envelope `{kid, epk, nonce, ciphertext}`, each field
 * base64url. `webcrypto` is the page's `crypto`.
 */
export async function seal(config, provider, key, webcrypto = globalThis.crypto){
  const {subtle} = webcrypto
  const keyguard = await subtle.importKey("raw", fromBase64url(config.public_key), ECDH, false, [])
  // The private half is not extractable; an EC key pair's public half always is.
  const ephemeral = await subtle.generateKey(ECDH, false, ["deriveBits"])
  const shared = await subtle.deriveBits({name: "ECDH", public: keyguard}, ephemeral.privateKey, 256)
  const epk = await subtle.exportKey("raw", ephemeral.publicKey)
  const secret = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"])
  const aes = await subtle.deriveKey(
    {name: "HKDF", hash: "SHA-256", salt: epk, info: utf8(ENVELOPE_INFO)},
    secret,
    {name: "AES-GCM", length: 256},
    false,
    ["encrypt"],
  )
  const nonce = webcrypto.getRandomValues(new Uint8Array(12))
  const plaintext = utf8(key)
  try {
    const ciphertext = await subtle.encrypt(
      {name: "AES-GCM", iv: nonce, additionalData: utf8(associatedData(config, provider))},
      aes,
      plaintext,
    )
    return {kid: config.kid, epk: base64url(epk), nonce: base64url(nonce), ciphertext: base64url(ciphertext)}
  } finally {
    plaintext.fill(0)
  }
}

/**
 * The provider of `providers` (the server's list) whose documented prefix `key` carries, if
 * any: the longest that matches, as OpenRouter's and Anthropic's keys also start with `sk-`.
 */
function detectProvider(providers, key){
  const matching = providers.filter(provider => provider.key_prefix && key.startsWith(provider.key_prefix))
  matching.sort((a, b) => b.key_prefix.length - a.key_prefix.length)
  return matching.length > 0 ? matching[0].name : null
}

/** The page's configuration, or null when it is missing or malformed. */
function readConfig(){
  try {
    const config = JSON.parse(document.getElementById("hearth-configure").textContent)
    const valid = Number.isInteger(config.kid)
      && typeof config.public_key === "string"
      && typeof config.user_id === "string"
      && typeof config.link === "string" && /^[0-9a-f]{64}$/.test(config.link)
      && typeof config.pool === "boolean"
      && Array.isArray(config.providers) && config.providers.length > 0
      && config.providers.every(provider => typeof provider.name === "string" && typeof provider.label === "string")
      && (config.provider === null || config.providers.some(provider => provider.name === config.provider))
    return valid ? config : null
  } catch {
    return null
  }
}

function main(){
  const $ = id => document.getElementById(id)
  const form = $("form")
  const fields = $("fields")
  const providerSelect = $("provider")
  const keyInput = $("key")
  const toggle = $("toggle")
  const result = $("result")

  const show = (state, message) => {
    result.dataset.state = state
    result.textContent = message
    result.hidden = false
  }
  const showKey = shown => {
    keyInput.type = shown ? "text" : "password"
    toggle.textContent = shown ? "Hide" : "Show"
    toggle.setAttribute("aria-pressed", String(shown))
  }
  const clearKey = () => {
    keyInput.value = ""
    showKey(false)
  }

  const config = readConfig()
  if(!config){
    fields.disabled = true
    show("error", "This page did not load correctly. Send /configure in your assistant conversation for a new link.")
    return
  }
  if(!globalThis.crypto?.subtle){
    fields.disabled = true
    show("error", "Your browser can only encrypt the key on a secure (https://) page. Open the link over HTTPS.")
    return
  }

  $("pool").hidden = !config.pool
  $("own-use").hidden = Boolean(config.pool)
  const labelOf = name => config.providers.find(provider => provider.name === name)?.label || name
  const option = (value, text) => {
    const element = document.createElement("option")
    element.value = value
    element.textContent = text
    return element
  }
  if(config.provider){
    providerSelect.append(option(config.provider, labelOf(config.provider)))
    providerSelect.disabled = true
  } else {
    providerSelect.append(option("", "Choose a provider"))
    for(const provider of config.providers){
      providerSelect.append(option(provider.name, provider.label))
    }
  }

  toggle.addEventListener("click", () => showKey(keyInput.type === "password"))
  keyInput.addEventListener("input", () => {
    // A recognisable key picks its provider, unless the person already chose one.
    const detected = detectProvider(config.providers, keyInput.value.trim())
    if(!providerSelect.disabled && !providerSelect.value && detected){
      providerSelect.value = detected
    }
  })

  form.addEventListener("submit", async event => {
    event.preventDefault()
    const provider = providerSelect.value
    const key = keyInput.value.trim()
    if(!provider){
      show("error", "Choose the provider this key is for.")
      providerSelect.focus()
      return
    }
    if(!key){
      show("error", "Paste your API key first.")
      keyInput.focus()
      return
    }

    fields.disabled = true
    show("busy", "Encrypting and saving…")
    let envelope
    try {
      envelope = await seal(config, provider, key)
    } catch {
      fields.disabled = false
      show("error", "Your browser could not encrypt the key. Try again in an up-to-date browser.")
      return
    } finally {
      clearKey()
    }

    let response
    let body = {}
    try {
      response = await fetch(location.pathname, {
        method: "POST",
        headers: {"content-type": "application/json", accept: "application/json"},
        body: JSON.stringify({provider, envelope}),
        cache: "no-store",
      })
      body = await response.json().catch(() => ({}))
    } catch {
      fields.disabled = false
      show("error", "Could not reach the server. Check your connection, then paste the key again.")
      keyInput.focus()
      return
    }

    if(response.ok){
      form.reset()
      const name = labelOf(provider)
      show("ok", body.message || `Your ${name} key ending in ${body.last_four} is saved.`)
      return
    }
    show("error", body.message || `The key was not saved (error ${response.status}). Paste it again to retry.`)
    // A dead link stays dead; anything else may work on a second try.
    if(response.status !== 404){
      fields.disabled = false
      keyInput.focus()
    }
  })
}

if(typeof document !== "undefined"){ main() }
