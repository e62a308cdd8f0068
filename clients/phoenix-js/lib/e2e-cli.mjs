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
//   unwrap      {wrap_key_hex, conversation_id, wrapped}   → {public_jwk, private_jwk}
//   encrypt     {sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext} → {content}
//   decrypt     {recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content} → {plaintext}
//   fingerprint {public_jwk}                               → {fingerprint}

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
      return {wrapped: await e2e.wrapPrivateKey(await e2e.importWrapKey(unhex(wrap_key_hex)), conversation_id, keys)}
    },
    async unwrap({wrap_key_hex, conversation_id, wrapped}){
      const keys = await e2e.unwrapPrivateKey(await e2e.importWrapKey(unhex(wrap_key_hex)), conversation_id, wrapped)
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
