// web/js/e2e.js over stdin/stdout, for crates/hearth-client/tests/cross.rs: each input line
// is a JSON request {"op": …, …}; each gets one output line, {"ok": {…}} or
// {"error": {"code", "message"}}, in order. Keys travel as JWK text, wrap keys as hex: this is
// a test harness, not a way to handle real secrets. Exits at the end of the input.
// Under Node.js by default; with `--chromium`, every operation runs inside a page of Debian's
// Chromium (playwright-core), on the browser's own WebCrypto, e2e.js served from 127.0.0.1
// (a secure context).
//
//   derive      {email, password}                          → {auth_secret, wrap_key_hex}
//   generate    {}                                         → {public_jwk, private_jwk, fingerprint}
//   wrap        {wrap_key_hex, conversation_id, private_jwk} → {wrapped}
//   unwrap      {wrap_key_hex, conversation_id, wrapped, public_jwk} → {public_jwk, private_jwk}
//   encrypt     {sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext} → {content}
//   decrypt     {recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content} → {plaintext}
//   fingerprint {public_jwk}                               → {fingerprint}
//
// Scheme v2 (docs/e2e.md); an identity travels as its two private JWK texts, identity keys
// (public) as text, messages as {id, sent_at, edit_of, stream, seq, text} objects:
//
//   identity_generate    {}                                 → {public_key, signing_private_jwk, agreement_private_jwk, fingerprint}
//   identity_wrap        {wrap_key_hex, user_id, signing_private_jwk, agreement_private_jwk} → {wrapped: {signing, agreement}}
//   identity_unwrap      {wrap_key_hex, user_id, wrapped, public_key} → {signing_private_jwk, agreement_private_jwk}
//   identity_fingerprint {public_key}                       → {fingerprint}
//   safety_number        {a_id, a_public_key, b_id, b_public_key} → {safety_number}
//   sign_key             {signing_private_jwk, agreement_private_jwk, user_id, conversation_id, public_jwk} → {signed_public_key}
//   verify_key           {identity_public_key, user_id, conversation_id, signed_public_key} → {public_jwk}
//   encrypt_v2           {sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, message} → {content}
//   decrypt_v2           {recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content} → {message}
//   encrypt_to_identity  {sender_signing_private_jwk, sender_agreement_private_jwk, sender_id, recipient_public_key, recipient_id, conversation_id, message} → {content}
//   decrypt_from_identity {recipient_signing_private_jwk, recipient_agreement_private_jwk, recipient_id, sender_public_key, sender_id, conversation_id, content} → {message}
//   check                {steps: [{delivered, message}]}   → {flags: [[…], …]} (one DeliveryChecker for the list)
//
// Unwrapped keys are asked for extractable, only so that the harness can answer them as JWK
// text; the web client keeps them non-extractable.

import {readFileSync} from "node:fs"
import {createServer} from "node:http"
import {createInterface} from "node:readline"

const E2E = new URL("../../../web/js/e2e.js", import.meta.url)

/**
 * The answerer of request lines over an e2e module. Self-contained (it refers to nothing
 * outside itself), so its source also runs inside the browser page.
 */
function answerer(e2e){
  const unhex = text => Uint8Array.from(text.match(/../g) ?? [], byte => parseInt(byte, 16))
  const hex = bytes => Array.from(bytes, byte => byte.toString(16).padStart(2, "0")).join("")
  // The web client's own import: a wrapping-only, non-extractable AES-GCM key.
  const wrapKey = text => e2e.importWrapKey(unhex(text))
  const OPS = {
    async derive({email, password}){
      const {authSecret, wrapKeyBytes} = await e2e.deriveSecrets(email, password)
      return {auth_secret: authSecret, wrap_key_hex: hex(wrapKeyBytes)}
    },
    async generate(){
      const keys = await e2e.generateKeyPair()
      return {public_jwk: keys.publicJwk, private_jwk: await e2e.privateJwk(keys), fingerprint: await e2e.fingerprint(keys.publicJwk)}
    },
    async wrap({wrap_key_hex, conversation_id, private_jwk}){
      const keys = await e2e.keyPairFromPrivateJwk(private_jwk)
      return {wrapped: await e2e.wrapPrivateKey(await wrapKey(wrap_key_hex), conversation_id, keys)}
    },
    async unwrap({wrap_key_hex, conversation_id, wrapped, public_jwk}){
      const keys = await e2e.unwrapPrivateKey(await wrapKey(wrap_key_hex), conversation_id, wrapped, public_jwk, {extractable: true})
      return {public_jwk: keys.publicJwk, private_jwk: await e2e.privateJwk(keys)}
    },
    async encrypt({sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext}){
      const sender = await e2e.keyPairFromPrivateJwk(sender_private_jwk)
      return {content: await e2e.encrypt(sender, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext)}
    },
    async decrypt({recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content}){
      const recipient = await e2e.keyPairFromPrivateJwk(recipient_private_jwk)
      return {plaintext: await e2e.decrypt(recipient, recipient_id, sender_public_jwk, sender_id, conversation_id, content)}
    },
    async fingerprint({public_jwk}){
      return {fingerprint: await e2e.fingerprint(public_jwk)}
    },
    async identity_generate(){
      const identity = await e2e.generateIdentity()
      const {signing, agreement} = await e2e.identityPrivateJwks(identity)
      return {public_key: identity.publicKey, signing_private_jwk: signing, agreement_private_jwk: agreement,
        fingerprint: await e2e.identityFingerprint(identity.publicKey)}
    },
    async identity_wrap({wrap_key_hex, user_id, signing_private_jwk, agreement_private_jwk}){
      const identity = await e2e.identityFromPrivateJwks(signing_private_jwk, agreement_private_jwk)
      return {wrapped: await e2e.wrapIdentity(await wrapKey(wrap_key_hex), user_id, identity)}
    },
    async identity_unwrap({wrap_key_hex, user_id, wrapped, public_key}){
      const identity = await e2e.unwrapIdentity(await wrapKey(wrap_key_hex), user_id, wrapped, public_key, {extractable: true})
      const {signing, agreement} = await e2e.identityPrivateJwks(identity)
      return {signing_private_jwk: signing, agreement_private_jwk: agreement}
    },
    async identity_fingerprint({public_key}){
      return {fingerprint: await e2e.identityFingerprint(public_key)}
    },
    async safety_number({a_id, a_public_key, b_id, b_public_key}){
      return {safety_number: await e2e.safetyNumber(a_id, a_public_key, b_id, b_public_key)}
    },
    async sign_key({signing_private_jwk, agreement_private_jwk, user_id, conversation_id, public_jwk}){
      const identity = await e2e.identityFromPrivateJwks(signing_private_jwk, agreement_private_jwk)
      return {signed_public_key: await e2e.signConversationKey(identity, user_id, conversation_id, public_jwk)}
    },
    async verify_key({identity_public_key, user_id, conversation_id, signed_public_key}){
      return {public_jwk: await e2e.verifyConversationKey(identity_public_key, user_id, conversation_id, signed_public_key)}
    },
    async encrypt_v2({sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, message}){
      const sender = await e2e.keyPairFromPrivateJwk(sender_private_jwk)
      return {content: await e2e.encryptMessage(sender, sender_id, recipient_public_jwk, recipient_id, conversation_id, message)}
    },
    async decrypt_v2({recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content}){
      const recipient = await e2e.keyPairFromPrivateJwk(recipient_private_jwk)
      return {message: await e2e.decryptMessage(recipient, recipient_id, sender_public_jwk, sender_id, conversation_id, content)}
    },
    async encrypt_to_identity({sender_signing_private_jwk, sender_agreement_private_jwk, sender_id, recipient_public_key, recipient_id, conversation_id, message}){
      const sender = await e2e.identityFromPrivateJwks(sender_signing_private_jwk, sender_agreement_private_jwk)
      return {content: await e2e.encryptToIdentity(sender, sender_id, recipient_public_key, recipient_id, conversation_id, message)}
    },
    async decrypt_from_identity({recipient_signing_private_jwk, recipient_agreement_private_jwk, recipient_id, sender_public_key, sender_id, conversation_id, content}){
      const recipient = await e2e.identityFromPrivateJwks(recipient_signing_private_jwk, recipient_agreement_private_jwk)
      return {message: await e2e.decryptFromIdentity(recipient, recipient_id, sender_public_key, sender_id, conversation_id, content)}
    },
    async check({steps}){
      if(!Array.isArray(steps)){ throw new e2e.E2eError("invalid_argument", "steps is not an array") }
      const checker = new e2e.DeliveryChecker()
      return {flags: steps.map(step => checker.check(step?.delivered, step?.message))}
    },
  }
  return async line => {
    try {
      const request = JSON.parse(line)
      const op = Object.hasOwn(OPS, request?.op) ? OPS[request.op] : null
      if(!op){ return {error: {code: "unknown_op", message: `unknown op ${JSON.stringify(request?.op)}`}} }
      return {ok: await op(request)}
    } catch(error){
      return {error: {code: error instanceof e2e.E2eError ? error.code : "exception", message: String(error?.message ?? error)}}
    }
  }
}

/** The answerer inside a Chromium page; returns it and what to close at the end. */
async function inChromium(){
  const {chromium} = await import("playwright-core")
  const script = readFileSync(E2E)
  const server = createServer((request, response) => {
    if(request.url === "/e2e.js"){
      response.writeHead(200, {"content-type": "text/javascript"}).end(script)
    } else {
      response.writeHead(200, {"content-type": "text/html"}).end("<!doctype html><title>e2e</title>")
    }
  })
  await new Promise(resolve => server.listen(0, "127.0.0.1", resolve))
  const browser = await chromium.launch({executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"]})
  const page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${server.address().port}/`)
  await page.evaluate(async source => {
    const e2e = await import("/e2e.js")
    window.answer = new Function(`return (${source})`)()(e2e)
  }, answerer.toString())
  const answer = line => page.evaluate(line => window.answer(line), line)
  const close = async () => { await browser.close(); server.close() }
  return {answer, close}
}

const {answer, close} = process.argv.includes("--chromium")
  ? await inChromium()
  : {answer: answerer(await import(E2E.href)), close: async () => {}}

for await (const line of createInterface({input: process.stdin, crlfDelay: Infinity})){
  if(line.trim() === ""){ continue }
  process.stdout.write(JSON.stringify(await answer(line)) + "\n")
}
await close()
