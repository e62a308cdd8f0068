// web/js/e2e.js over stdin/stdout, for crates/hearth-client/tests/cross.rs: each input line
// is a JSON request {"op": …, …}; each gets one output line, {"ok": {…}} or
// {"error": {"code", "message"}}, in order. Keys travel as JWK text, wrap keys as hex: this is
// a test harness, not a way to handle real secrets. Exits at the end of the input.
//
//   derive      {email, password}                          → {auth_secret, wrap_key_hex}
//   generate    {}                                         → {public_jwk, private_jwk, fingerprint}
//   wrap        {wrap_key_hex, conversation_id, private_jwk} → {wrapped}
//   unwrap      {wrap_key_hex, conversation_id, wrapped}   → {public_jwk, private_jwk}
//   encrypt     {sender_private_jwk, sender_id, recipient_public_jwk, recipient_id, conversation_id, plaintext} → {content}
//   decrypt     {recipient_private_jwk, recipient_id, sender_public_jwk, sender_id, conversation_id, content} → {plaintext}
//   fingerprint {public_jwk}                               → {fingerprint}

import {createInterface} from "node:readline"

import * as e2e from "../../../web/js/e2e.js"

const unhex = text => new Uint8Array(Buffer.from(text, "hex"))

const OPS = {
  async derive({email, password}){
    const {authSecret, wrapKeyBytes} = await e2e.deriveSecrets(email, password)
    return {auth_secret: authSecret, wrap_key_hex: Buffer.from(wrapKeyBytes).toString("hex")}
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

async function answer(line){
  try {
    const request = JSON.parse(line)
    const op = Object.hasOwn(OPS, request?.op) ? OPS[request.op] : null
    if(!op){ return {error: {code: "unknown_op", message: `unknown op ${JSON.stringify(request?.op)}`}} }
    return {ok: await op(request)}
  } catch(error){
    return {error: {code: error instanceof e2e.E2eError ? error.code : "exception", message: String(error?.message ?? error)}}
  }
}

for await (const line of createInterface({input: process.stdin, crlfDelay: Infinity})){
  if(line.trim() === ""){ continue }
  process.stdout.write(JSON.stringify(await answer(line)) + "\n")
}
