// The web client's end-to-end encryption (web/js/e2e.js, WebCrypto) against the shared
// vectors, clients/e2e-vectors.json, which the Rust client's tests check too: every value is
// recomputed or decrypted and every rejected value is refused with the expected code. Then
// round trips with random keys and the refusals only JavaScript can meet (wrong argument types).
// Needs no server: it runs with the rest of `node --test` here, HEARTH_URL set or not.

import {test} from "node:test"
import assert from "node:assert/strict"
import {readFileSync} from "node:fs"

import * as e2e from "../../../web/js/e2e.js"

const VECTORS = JSON.parse(readFileSync(new URL("../../e2e-vectors.json", import.meta.url), "utf8"))

const hex = bytes => Buffer.from(bytes).toString("hex")
const unhex = text => new Uint8Array(Buffer.from(text, "hex"))

/** Asserts the promise rejects with an E2eError of this code. */
async function refused(promise, code, why){
  await assert.rejects(promise, error => {
    assert.ok(error instanceof e2e.E2eError, `${why}: ${error}`)
    assert.equal(error.code, code, `${why}: ${error.message}`)
    return true
  }, why)
}

/** The vector key pairs by name: {keys, id}. */
async function keyPairs(){
  const pairs = new Map()
  for(const pair of VECTORS.key_pairs){
    pairs.set(pair.name, {keys: await e2e.keyPairFromPrivateScalar(unhex(pair.private_scalar_hex)), id: pair.id})
  }
  return pairs
}

const wrapKeyOf = index => e2e.importWrapKey(unhex(VECTORS.kdf[index].wrap_key_hex))

test("the vectors name every section", () => {
  assert.match(VECTORS.description, /docs\/ARCHITECTURE\.md/)
  for(const section of ["kdf", "key_pairs", "wrapped_private_keys", "messages", "accepted_public_jwks",
    "rejected_public_jwks", "rejected_wrapped_private_keys", "rejected_messages"]){
    assert.ok(VECTORS[section].length > 0, section)
  }
})

test("derived secrets match the vectors", async () => {
  for(const {email, password, auth_secret, wrap_key_hex} of VECTORS.kdf){
    const {authSecret, wrapKeyBytes} = await e2e.deriveSecrets(email, password)
    assert.equal(authSecret, auth_secret, email)
    assert.equal(hex(wrapKeyBytes), wrap_key_hex, email)
  }
  const {email, password, auth_secret} = VECTORS.kdf[0]
  const derived = await e2e.derive(email, password)
  assert.equal(derived.authSecret, auth_secret)
  assert.equal(derived.wrapKey.extractable, false, "the wrap key cannot be exported")
  assert.equal(derived.wrapKey.algorithm.name, "AES-GCM")
})

test("key pairs give their JWKs and fingerprints", async () => {
  for(const pair of VECTORS.key_pairs){
    const keys = await e2e.keyPairFromPrivateScalar(unhex(pair.private_scalar_hex))
    assert.equal(await e2e.publicJwk(keys), pair.public_jwk, pair.name)
    assert.equal(await e2e.privateJwk(keys), pair.private_jwk, pair.name)
    assert.equal(await e2e.fingerprint(pair.public_jwk), pair.fingerprint, pair.name)
    const restored = await e2e.keyPairFromPrivateJwk(pair.private_jwk)
    assert.equal(await e2e.publicJwk(restored), pair.public_jwk, pair.name)
    assert.equal(await e2e.privateJwk(restored), pair.private_jwk, pair.name)
    assert.match(pair.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  }
})

test("wrapped private keys match the vectors and unwrap", async () => {
  const pairs = await keyPairs()
  for(const {key_pair, kdf, conversation_id, iv_hex, wrapped} of VECTORS.wrapped_private_keys){
    const {keys} = pairs.get(key_pair)
    const wrapKey = await wrapKeyOf(kdf)
    assert.equal(await e2e.wrapPrivateKey(wrapKey, conversation_id, keys, {iv: unhex(iv_hex)}), wrapped, key_pair)
    const unwrapped = await e2e.unwrapPrivateKey(wrapKey, conversation_id, wrapped)
    assert.equal(await e2e.privateJwk(unwrapped), await e2e.privateJwk(keys), key_pair)
    assert.equal(await e2e.publicJwk(unwrapped), await e2e.publicJwk(keys), key_pair)
  }
})

test("messages match the vectors and decrypt", async () => {
  const pairs = await keyPairs()
  assert.ok(VECTORS.messages.some(m => m.sender === m.recipient), "a copy to the sender itself")
  for(const {sender, recipient, conversation_id, nonce_hex, plaintext, content} of VECTORS.messages){
    const from = pairs.get(sender)
    const to = pairs.get(recipient)
    const encrypted = await e2e.encrypt(from.keys, from.id, to.keys.publicJwk, to.id, conversation_id, plaintext, {nonce: unhex(nonce_hex)})
    assert.equal(encrypted, content, plaintext)
    assert.equal(await e2e.decrypt(to.keys, to.id, from.keys.publicJwk, from.id, conversation_id, content), plaintext)
  }
})

test("accepted public JWKs give their fingerprints", async () => {
  for(const {why, jwk, fingerprint} of VECTORS.accepted_public_jwks){
    assert.equal(await e2e.fingerprint(jwk), fingerprint, why)
  }
})

test("rejected public JWKs are refused", async () => {
  const {keys, id} = (await keyPairs()).get("ada")
  const conversation = "00000000-0000-0000-0000-000000000000"
  for(const {why, jwk, error} of VECTORS.rejected_public_jwks){
    await refused(e2e.fingerprint(jwk), error, `fingerprint: ${why}`)
    await refused(e2e.encrypt(keys, id, jwk, id, conversation, "x"), error, `encrypt: ${why}`)
    await refused(e2e.decrypt(keys, id, jwk, id, conversation, "v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"), error, `decrypt: ${why}`)
  }
})

test("rejected wrapped private keys are refused", async () => {
  for(const {why, kdf, conversation_id, wrapped, error} of VECTORS.rejected_wrapped_private_keys){
    await refused(e2e.unwrapPrivateKey(await wrapKeyOf(kdf), conversation_id, wrapped), error, why)
  }
})

test("rejected messages are refused", async () => {
  const pairs = await keyPairs()
  for(const {why, recipient, recipient_id, sender, sender_id, conversation_id, content, error} of VECTORS.rejected_messages){
    const {keys} = pairs.get(recipient)
    const senderJwk = pairs.get(sender).keys.publicJwk
    await refused(e2e.decrypt(keys, recipient_id, senderJwk, sender_id, conversation_id, content), error, why)
  }
})

test("random keys round trip, to the recipient and to the sender itself", async () => {
  const [ada, bob] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const [adaId, bobId, conversation] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
  for(const text of ["", "hi", "\uFEFFa byte order mark stays", "Grüße — ✓ 你好 🔐👋🏽", "<script>alert(1)</script>", "x".repeat(70000)]){
    const toBob = await e2e.encrypt(ada, adaId, bob.publicJwk, bobId, conversation, text)
    assert.equal(await e2e.decrypt(bob, bobId, ada.publicJwk, adaId, conversation, toBob), text)
    const toSelf = await e2e.encrypt(ada, adaId, ada.publicJwk, adaId, conversation, text)
    assert.equal(await e2e.decrypt(ada, adaId, ada.publicJwk, adaId, conversation, toSelf), text)
    await refused(e2e.decrypt(ada, adaId, bob.publicJwk, bobId, conversation, toBob), "decrypt", "swapped")
  }
  assert.notEqual(await e2e.encrypt(ada, adaId, bob.publicJwk, bobId, conversation, "same"),
    await e2e.encrypt(ada, adaId, bob.publicJwk, bobId, conversation, "same"), "a fresh nonce each time")
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const wrapped = await e2e.wrapPrivateKey(wrapKey, conversation, ada)
  assert.notEqual(wrapped, await e2e.wrapPrivateKey(wrapKey, conversation, ada), "a fresh IV each time")
  assert.equal(await e2e.privateJwk(await e2e.unwrapPrivateKey(wrapKey, conversation, wrapped)), await e2e.privateJwk(ada))
  await refused(e2e.unwrapPrivateKey(wrapKey, crypto.randomUUID(), wrapped), "decrypt", "another conversation")
  assert.match(await e2e.fingerprint(ada.publicJwk), /^[0-9a-f]{4}( [0-9a-f]{4}){7}$/)
  assert.match(ada.publicJwk, /^\{"kty":"EC","crv":"P-256","x":"[\w-]{43}","y":"[\w-]{43}"\}$/)
})

test("another password or email gives other secrets", async () => {
  const base = await e2e.deriveSecrets("ada@example.org", "pässwörd")
  for(const [email, password] of [["ada@example.org", "passwörd"], ["ada@example.org ", "pässwörd"]]){
    const other = await e2e.deriveSecrets(email, password)
    assert.notEqual(other.authSecret, base.authSecret)
    assert.notEqual(hex(other.wrapKeyBytes), hex(base.wrapKeyBytes))
  }
  assert.equal((await e2e.deriveSecrets("ADA@Example.ORG", "pässwörd")).authSecret, base.authSecret, "the email's case does not count")
})

test("wrong arguments reject with invalid_argument", async () => {
  const ada = await e2e.generateKeyPair()
  const id = crypto.randomUUID()
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const cases = [
    ["an upper-case id", e2e.encrypt(ada, id.toUpperCase(), ada.publicJwk, id, id, "x")],
    ["a braced id", e2e.decrypt(ada, id, ada.publicJwk, `{${id}}`, id, "v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA")],
    ["no conversation id", e2e.wrapPrivateKey(wrapKey, undefined, ada)],
    ["an 11-byte nonce", e2e.encrypt(ada, id, ada.publicJwk, id, id, "x", {nonce: new Uint8Array(11)})],
    ["a nonce that is not bytes", e2e.encrypt(ada, id, ada.publicJwk, id, id, "x", {nonce: "AAAAAAAAAAAA"})],
    ["a 16-byte IV", e2e.wrapPrivateKey(wrapKey, id, ada, {iv: new Uint8Array(16)})],
    ["a plaintext that is not a string", e2e.encrypt(ada, id, ada.publicJwk, id, id, 42)],
    ["a lone surrogate", e2e.encrypt(ada, id, ada.publicJwk, id, id, "\uD800")],
    ["a sender that is not a key pair", e2e.encrypt({publicJwk: ada.publicJwk}, id, ada.publicJwk, id, id, "x")],
    ["a wrap key that is not a key", e2e.unwrapPrivateKey(new Uint8Array(32), id, "v1..")],
    ["an email that is not a string", e2e.derive(null, "a password")],
    ["a wrap key of 16 bytes", e2e.importWrapKey(new Uint8Array(16))],
    ["a scalar of 31 bytes", e2e.keyPairFromPrivateScalar(new Uint8Array(31))],
  ]
  for(const [why, promise] of cases){
    await refused(promise, "invalid_argument", why)
  }
  await refused(e2e.keyPairFromPrivateScalar(new Uint8Array(32)), "invalid_key", "a zero scalar")
  await refused(e2e.keyPairFromPrivateScalar(new Uint8Array(32).fill(0xff)), "invalid_key", "a scalar above the order")
  await refused(e2e.decrypt(ada, id, ada.publicJwk, id, id, null), "malformed", "no content")
  await refused(e2e.fingerprint(undefined), "invalid_key", "no JWK")
})
