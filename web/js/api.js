// The REST side of the web client: signing in and up without sending the password (the
// auth secret is derived on the device, docs/ARCHITECTURE.md), keeping the session across reloads,
// refreshing the access token, and calling the API.
//
// What is kept on the device: the refresh token in localStorage (single use, rotated on every
// refresh) and the wrap key in IndexedDB as a non-extractable CryptoKey that can only wrap and
// unwrap keys, so a reload can read history without asking for the password again, and no
// script can read the key's bytes (or decrypt a wrapped key's bytes into script with it).
// Refreshes are serialized across tabs with a Web Lock: a refresh token used twice signs the
// whole session out (the server treats reuse as theft).
//
// The account's identity (docs/e2e.md) is made or unwrapped at every sign-in and resume: the
// stored one is unwrapped as non-extractable keys and checked against the published one; an
// account without one gets a new one, published with PUT /api/identity_key; a stored one
// that does not open is reported (`identityProblem`), never replaced unasked: the person may
// replace it with their password (`replaceIdentity`).

import {derive, generateIdentity, unwrapIdentity, unwrapPrivateKey, wrapIdentity, wrapPrivateKey} from "./e2e.js"

const STORAGE_KEY = "hearth.session"
const DATABASE = "hearth"
const STORE = "keys"
/** Refresh this long before the access token expires. */
const EARLY_MS = 60000

/** An API error: `code` and `message` from the server's `{"error", "message"}` body. */
export class ApiError extends Error {
  constructor(status, code, message){
    super(message)
    this.name = "ApiError"
    this.status = status
    this.code = code
  }
  /** The session is gone (revoked, or the refresh token refused): sign in again. */
  get signedOut(){ return this.status === 401 }
}

function openDatabase(){
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1)
    request.onupgradeneeded = () => request.result.createObjectStore(STORE)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
}

async function keyStore(mode, action){
  const db = await openDatabase()
  try {
    return await new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode)
      const request = action(transaction.objectStore(STORE))
      transaction.oncomplete = () => resolve(request.result)
      transaction.onerror = () => reject(transaction.error)
    })
  } finally {
    db.close()
  }
}

const saveWrapKey = (userId, key) => keyStore("readwrite", store => store.put(key, userId))
const loadWrapKey = userId => keyStore("readonly", store => store.get(userId))

/**
 * Whether a CryptoKey from IndexedDB is a wrap key of this version: AES-GCM, non-extractable,
 * only wrapKey and unwrapKey. One saved by the previous version (encrypt and decrypt) is not:
 * it is treated as missing, and the person signs in again.
 */
const isWrapKey = key => key instanceof CryptoKey && key.type === "secret" && key.algorithm?.name === "AES-GCM"
  && !key.extractable && key.usages.length === 2 && key.usages.includes("wrapKey") && key.usages.includes("unwrapKey")
const forgetWrapKeys = () => keyStore("readwrite", store => store.clear())

/** The claims of a JWT (the access token), or {} if it cannot be read. */
function claims(token){
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) ?? {}
  } catch {
    return {}
  }
}

/** When a JWT expires, in milliseconds since the epoch (0 if it cannot be read). */
const expiry = token => (claims(token).exp ?? 0) * 1000

export async function call(method, path, {body, token} = {}){
  const headers = {}
  if(body !== undefined){ headers["content-type"] = "application/json" }
  if(token){ headers.authorization = `Bearer ${token}` }
  let response
  try {
    response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)})
  } catch {
    throw new ApiError(0, "offline", "The server cannot be reached. Check the connection and try again.")
  }
  if(response.status === 204){ return null }
  const text = await response.text()
  let json = null
  try { json = text ? JSON.parse(text) : null } catch { json = null }
  if(!response.ok){
    throw new ApiError(response.status, json?.error ?? "error", json?.message ?? `The server answered ${response.status}.`)
  }
  return json
}

/** A signed-in person: their user, the wrap key, their identity, and an access token kept fresh. */
export class Session {
  constructor(reply, wrapKey){
    this.wrapKey = wrapKey
    this.adopt(reply)
    this.listeners = []
    /** The access token the socket last connected with. */
    this.socketToken = null
    /** The account's identity (non-extractable), or null when the stored one does not open. */
    this.identity = null
    /** Why the stored identity does not open (null when it does). */
    this.identityProblem = null
  }

  adopt(reply){
    this.user = reply.user
    this.users = reply.users ?? []
    this.accessToken = reply.auth_token
    this.expiresAt = expiry(reply.auth_token)
    localStorage.setItem(STORAGE_KEY, JSON.stringify({userId: reply.user.id, refreshToken: reply.refresh_token}))
  }

  /** `callback()` when the session ends (revoked, refused). */
  onSignedOut(callback){ this.listeners.push(callback) }

  /**
   * Signs up: the password never leaves the device; the server gets the derived secret.
   * `invite` is the invite code a server that takes new accounts by invitation asks for.
   */
  static async register(email, password, displayName, invite){
    const {authSecret, wrapKey} = await derive(email, password)
    const body = {email, password: authSecret, device_name: deviceName()}
    if(displayName){ body.display_name = displayName }
    if(invite){ body.invite = invite }
    const reply = await call("POST", "/auth/register", {body})
    await saveWrapKey(reply.user.id, wrapKey)
    return new Session(reply, wrapKey).established()
  }

  static async login(email, password){
    const secrets = await derive(email, password)
    return new Session(await signIn(email, secrets), secrets.wrapKey).established()
  }

  /** The session this device kept, if it still works; null otherwise (sign in again). */
  static async resume(){
    const saved = stored()
    if(!saved){ return null }
    const wrapKey = await loadWrapKey(saved.userId).catch(() => null)
    if(!isWrapKey(wrapKey)){ return null }
    let session
    try {
      const reply = await refreshed(saved.refreshToken)
      if(!reply){ return null }
      session = new Session(reply, wrapKey)
    } catch(error){
      if(error.signedOut){ await forget(); return null }
      throw error
    }
    return session.established()
  }

  /**
   * Sets up the account's identity from the user object of the sign-in: unwrapped from the
   * stored one (non-extractable, checked against the published one), or made and published
   * when the account has none. One that does not open is reported in `identityProblem`.
   */
  async established(){
    const published = this.user.identity_key
    if(published === null || published === undefined){
      try {
        this.identity = await this.publishIdentity(this.wrapKey)
        return this
      } catch(error){
        // Another tab or device published one first: use that one.
        if(error.code !== "identity_exists"){ throw error }
        this.user = {...this.user, ...await this.api("GET", "/api/me")}
      }
    }
    await this.openIdentity()
    return this
  }

  async openIdentity(){
    const {identity_key: published, identity_private_key: wrapped} = this.user
    this.identity = null
    this.identityProblem = null
    if(published === null || published === undefined || wrapped === null || wrapped === undefined){
      this.identityProblem = "The server has no private half of your security key."
      return
    }
    try {
      this.identity = await unwrapIdentity(this.wrapKey, this.user.id, wrapped, published)
    } catch(error){
      this.identityProblem = error.code === "decrypt"
        ? "Your security key does not open with your password."
        : "Your stored security key does not match the published one."
    }
  }

  /**
   * Makes a new identity, wraps it with `wrapKey` and publishes it (`password`, the auth
   * secret, is needed to replace an existing one): the non-extractable re-import of what was
   * wrapped.
   */
  async publishIdentity(wrapKey, password){
    const fresh = await generateIdentity()
    const wrapped = await wrapIdentity(wrapKey, this.user.id, fresh)
    const identity = await unwrapIdentity(wrapKey, this.user.id, wrapped, fresh.publicKey)
    const body = {identity_key: JSON.parse(fresh.publicKey), identity_private_key: wrapped}
    if(password !== undefined){ body.password = password }
    await this.api("PUT", "/api/identity_key", body)
    this.user = {...this.user, identity_key: body.identity_key, identity_private_key: wrapped}
    this.identityProblem = null
    return identity
  }

  /**
   * Replaces an identity that does not open with a new one (the server asks for the password,
   * so that a stolen access token cannot): contacts see it as a new security key. Conversation
   * keys signed by the old one are signed again when their conversations are joined next.
   */
  async replaceIdentity(password){
    const {authSecret, wrapKey} = await derive(this.user.email, password)
    this.identity = await this.publishIdentity(wrapKey, authSecret)
    this.wrapKey = wrapKey
    await saveWrapKey(this.user.id, wrapKey)
    return this.identity
  }

  /**
   * A usable access token for the socket: refreshed first if it is about to expire or if
   * `fresh` (the server refused the last one) and the refused one is still the one held, and
   * never the token a password change in progress is about to end. A token adopted since (a
   * password change signs in anew) is new already: refreshing it would only spend the refresh
   * token again, and a reload while that refresh is in flight keeps the spent one.
   */
  async token(fresh = false){
    if(this.changing){ await this.changing.catch(() => {}) }
    this.socketToken = await this.usable(fresh && this.socketToken === this.accessToken)
    return this.socketToken
  }

  async usable(fresh = false){
    if(!fresh && Date.now() < this.expiresAt - EARLY_MS){ return this.accessToken }
    return this.refresh()
  }

  async refresh(){
    const before = this.accessToken
    const run = async () => {
      // Another tab (or call) may have refreshed meanwhile: use the newest refresh token.
      const saved = stored()
      if(!saved || saved.userId !== this.user.id){ throw this.end() }
      try {
        const reply = await refreshed(saved.refreshToken)
        if(!reply){ throw this.end() }
        this.adopt(reply)
      } catch(error){
        if(error.signedOut){ throw this.end() }
        throw error
      }
    }
    if(!this.refreshing){
      this.refreshing = (navigator.locks ? navigator.locks.request("hearth-refresh", run) : run())
        .finally(() => { this.refreshing = null })
    }
    await this.refreshing
    return this.accessToken ?? before
  }

  end(){
    this.accessToken = null
    this.listeners.forEach(f => f())
    return new ApiError(401, "signed_out", "You were signed out. Sign in again.")
  }

  /** An API call with the access token; a 401 refreshes once and tries again. */
  async api(method, path, body){
    try {
      return await call(method, path, {body, token: await this.usable()})
    } catch(error){
      if(error.status !== 401){ throw error }
      return call(method, path, {body, token: await this.refresh()})
    }
  }

  /** An authenticated binary resource (an assistant image) as an object URL. */
  async blobUrl(path){
    const fetchWith = async token => fetch(path, {headers: {authorization: `Bearer ${token}`}})
    let response = await fetchWith(await this.usable())
    if(response.status === 401){ response = await fetchWith(await this.refresh()) }
    if(!response.ok){ throw new ApiError(response.status, "not_found", "The image is not available.") }
    return URL.createObjectURL(await response.blob())
  }

  /**
   * Changes the password: every private key and the identity are unwrapped with the old wrap
   * key and wrapped with the new one, and the server replaces them in the password change's
   * transaction, so history stays readable and the security key stays the same. The server
   * signs every session out; this one signs in again.
   */
  async changePassword(password, newPassword){
    // The server closes this session's sockets when the password changes; they reconnect
    // with the token of the new sign-in, not the old one.
    this.changing = this.replacePassword(password, newPassword)
    try {
      await this.changing
    } finally {
      this.changing = null
    }
  }

  async replacePassword(password, newPassword){
    const email = this.user.email
    const old = await derive(email, password)
    const next = await derive(email, newPassword)
    const body = {
      password: old.authSecret,
      new_password: next.authSecret,
      new_password_confirmation: next.authSecret,
      ...await this.rewrapped(old.wrapKey, next.wrapKey),
    }
    await this.api("PATCH", "/api/password", body)
    await this.signInAgain(email, next)
  }

  /** `{private_keys, identity_private_key?}` unwrapped with `oldWrapKey`, wrapped with `nextWrapKey`. */
  async rewrapped(oldWrapKey, nextWrapKey){
    const {private_keys: stored} = await this.api("GET", "/api/encryption_keys")
    const privateKeys = {}
    for(const [conversationId, wrapped] of Object.entries(stored)){
      // Unwrapped extractable only to be wrapped again, and dropped at once. Without a public
      // key: unwrapPrivateKey reads it from the extractable key itself (e2e.js), so the
      // conversations' public keys need not be fetched first.
      const keyPair = typeof wrapped === "string"
        ? await unwrapPrivateKey(oldWrapKey, conversationId, wrapped, null, {extractable: true}).catch(() => null)
        : null
      // A key this password never wrapped (from before a reset) stays as it is.
      privateKeys[conversationId] = keyPair ? await wrapPrivateKey(nextWrapKey, conversationId, keyPair) : wrapped
    }
    const body = {private_keys: privateKeys}
    const me = await this.api("GET", "/api/me")
    if(me.identity_key !== null && me.identity_key !== undefined){
      if(!this.identity){ throw new Error("Your security key does not open: replace it first.") }
      let identity
      try {
        identity = await unwrapIdentity(oldWrapKey, me.id, me.identity_private_key, me.identity_key, {extractable: true})
      } catch {
        throw new Error("Your security key does not open with this password: check the current password.")
      }
      body.identity_private_key = await wrapIdentity(nextWrapKey, me.id, identity)
    }
    return body
  }

  async signInAgain(email, secrets){
    const reply = await signIn(email, secrets)
    this.wrapKey = secrets.wrapKey
    this.adopt(reply)
    await this.openIdentity()
  }

  async signOut(){
    try { await this.api("DELETE", `/api/devices/${this.deviceId()}`) } catch { /* signed out anyway */ }
    await forget()
  }

  /** This device's id, from the access token's claims. */
  deviceId(){ return claims(this.accessToken ?? "").device ?? null }
}

/** Signs in with derived secrets and keeps their wrap key on this device: the session reply. */
export async function signIn(email, {authSecret, wrapKey}){
  const reply = await call("POST", "/auth/login", {body: {email, password: authSecret, device_name: deviceName()}})
  await saveWrapKey(reply.user.id, wrapKey)
  return reply
}

async function refreshed(refreshToken){
  return call("POST", "/auth/refresh", {body: {token: refreshToken}})
}

/** Whether this device kept a session (it may no longer work). */
export function hasStoredSession(){
  return stored() !== null
}

function stored(){
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY))
    return saved?.userId && saved?.refreshToken ? saved : null
  } catch {
    return null
  }
}

async function forget(){
  localStorage.removeItem(STORAGE_KEY)
  await forgetWrapKeys().catch(() => {})
}

function deviceName(){
  const agent = navigator.userAgent
  const browser = /Firefox\//.test(agent) ? "Firefox" : /Edg\//.test(agent) ? "Edge" : /Chrom/.test(agent) ? "Chromium" : /Safari\//.test(agent) ? "Safari" : "Browser"
  return `${browser} (web)`
}

/**
 * How this server takes new accounts (`GET /auth/registration`): "open", "invite" (sign-up
 * needs an invite code) or "closed". "open" when it cannot be asked: the server refuses a
 * sign-up it does not take, with its reason.
 */
export async function registrationPolicy(){
  try {
    const {registration} = await call("GET", "/auth/registration")
    return ["open", "invite", "closed"].includes(registration) ? registration : "open"
  } catch {
    return "open"
  }
}
