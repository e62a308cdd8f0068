// The web client's end-to-end encryption (web/js/e2e.js, WebCrypto) against the shared
// vectors, clients/e2e-vectors.json, which the Rust client's tests check too: every value is
// recomputed or decrypted and every rejected value is refused with the expected code. Then
// round trips with random keys and the refusals only JavaScript can meet (wrong argument types).
// Then scheme v2 (docs/e2e.md): identities, signed conversation keys, v2 and v2i messages and
// the delivery checker, as unit tests and, once the Rust side has written them, against the
// vectors' v2 sections (each such test says "skipped" while its section is missing).
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

test("wrapped private keys of the vectors unwrap, non-extractable, to keys that open the vector messages", async () => {
  const pairs = await keyPairs()
  for(const {key_pair, kdf, conversation_id, wrapped} of VECTORS.wrapped_private_keys){
    const {keys, id} = pairs.get(key_pair)
    const wrapKey = await wrapKeyOf(kdf)
    const unwrapped = await e2e.unwrapPrivateKey(wrapKey, conversation_id, wrapped, keys.publicJwk)
    assert.equal(unwrapped.privateKey.extractable, false, key_pair)
    assert.equal(await e2e.publicJwk(unwrapped), keys.publicJwk, key_pair)
    const received = VECTORS.messages.filter(m => m.recipient === key_pair)
    assert.ok(received.length > 0, `a vector message to ${key_pair}`)
    for(const {sender, content, plaintext, conversation_id: conversation} of received){
      const from = pairs.get(sender)
      assert.equal(await e2e.decrypt(unwrapped, id, from.keys.publicJwk, from.id, conversation, content), plaintext, key_pair)
    }
    const extractable = await e2e.unwrapPrivateKey(wrapKey, conversation_id, wrapped, keys.publicJwk, {extractable: true})
    assert.equal(await e2e.privateJwk(extractable), await e2e.privateJwk(keys), key_pair)
    // WebCrypto writes its own JWK text (so other bytes than the vector for the same IV); it unwraps again.
    const again = await e2e.wrapPrivateKey(wrapKey, conversation_id, keys, {iv: unhex(VECTORS.wrapped_private_keys[0].iv_hex)})
    assert.match(again, /^v1\.[\w-]{16}\.[\w-]+$/)
    const rewrapped = await e2e.unwrapPrivateKey(wrapKey, conversation_id, again, keys.publicJwk, {extractable: true})
    assert.equal(await e2e.privateJwk(rewrapped), await e2e.privateJwk(keys), key_pair)
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
  // The vectors carry no public key: any valid one does, since each case fails before the match.
  const publicJwk = VECTORS.key_pairs[0].public_jwk
  for(const {why, kdf, conversation_id, wrapped, error} of VECTORS.rejected_wrapped_private_keys){
    await refused(e2e.unwrapPrivateKey(await wrapKeyOf(kdf), conversation_id, wrapped, publicJwk), error, why)
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
  assert.equal(await e2e.privateJwk(await e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, ada.publicJwk, {extractable: true})), await e2e.privateJwk(ada))
  await refused(e2e.unwrapPrivateKey(wrapKey, crypto.randomUUID(), wrapped, ada.publicJwk), "decrypt", "another conversation")
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
    ["a wrap key that is not a key", e2e.unwrapPrivateKey(new Uint8Array(32), id, "v1..", ada.publicJwk)],
    ["an extractable option that is not a boolean", e2e.unwrapPrivateKey(wrapKey, id, "v1..", ada.publicJwk, {extractable: "yes"})],
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

// ---------------------------------------------------------------------------------------------
// Scheme v2 (docs/e2e.md)

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const PUBLIC_JWK = /^\{"kty":"EC","crv":"P-256","x":"[\w-]{43}","y":"[\w-]{43}"\}$/
const subtle = globalThis.crypto.subtle
const utf8 = text => new TextEncoder().encode(text)
const b64 = bytes => Buffer.from(bytes).toString("base64url")

/** A v2 message object with fresh ids. */
const aMessage = (fields = {}) => ({
  id: crypto.randomUUID(), sent_at: 1733000000000, edit_of: null, stream: "0123456789abcdef", seq: 0, text: "hi", ...fields,
})

/** A fresh identity and account id. */
async function account(){
  return {identity: await e2e.generateIdentity(), id: crypto.randomUUID()}
}

/** The uncompressed point of a public JWK (object or text). */
function point(jwk){
  const {x, y} = typeof jwk === "string" ? JSON.parse(jwk) : jwk
  return Buffer.concat([Buffer.from([4]), Buffer.from(x, "base64url"), Buffer.from(y, "base64url")])
}

/**
 * docs/e2e.md's v2 and v2i message encryption written out again with WebCrypto alone, for any
 * plaintext bytes: an independent reading of the spec, and a way to seal what encryptMessage
 * refuses to (bad padding, bad headers).
 */
async function sealRaw(mode, senderPrivate, senderId, recipientPublicJwk, recipientId, conversationId, plaintext, nonce = crypto.getRandomValues(new Uint8Array(12))){
  const {x, y} = JSON.parse(recipientPublicJwk)
  const theirs = await subtle.importKey("jwk", {kty: "EC", crv: "P-256", x, y}, {name: "ECDH", namedCurve: "P-256"}, false, [])
  const shared = await subtle.deriveBits({name: "ECDH", public: theirs}, senderPrivate, 256)
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"])
  const key = await subtle.deriveKey({name: "HKDF", hash: "SHA-256", salt: utf8(conversationId), info: utf8(`hearth/${mode}|${senderId}|${recipientId}`)},
    ikm, {name: "AES-GCM", length: 256}, false, ["encrypt"])
  const sealed = await subtle.encrypt({name: "AES-GCM", iv: nonce, additionalData: utf8(`hearth/${mode}|${conversationId}|${senderId}|${recipientId}`)}, key, plaintext)
  return `${mode}.${b64(nonce)}.${b64(new Uint8Array(sealed))}`
}

/** docs/e2e.md's padding, written out again. */
function pad(bytes){
  const out = new Uint8Array(Math.ceil((bytes.length + 1) / 256) * 256)
  out.set(bytes)
  out[bytes.length] = 0x80
  return out
}

test("the wrap key only wraps and unwraps, and cannot be exported or decrypt", async () => {
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  assert.deepEqual([...wrapKey.usages].sort(), ["unwrapKey", "wrapKey"])
  assert.equal(wrapKey.extractable, false)
  await assert.rejects(subtle.exportKey("raw", wrapKey), "the wrap key cannot be exported")
  await assert.rejects(subtle.exportKey("jwk", wrapKey), "the wrap key cannot be exported as a JWK")
  const keys = await e2e.generateKeyPair()
  const conversation = crypto.randomUUID()
  const {sealed, nonce} = (() => {
    const [, n, s] = "x.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA".split(".")
    return {nonce: Buffer.from(n, "base64url"), sealed: Buffer.from(s, "base64url")}
  })()
  await assert.rejects(subtle.decrypt({name: "AES-GCM", iv: nonce}, wrapKey, sealed), "no decrypt usage")
  const wrapped = await e2e.wrapPrivateKey(wrapKey, conversation, keys)
  const [, iv, ciphertext] = wrapped.split(".")
  await assert.rejects(subtle.decrypt({name: "AES-GCM", iv: Buffer.from(iv, "base64url"), additionalData: utf8("hearth/private-key|" + conversation)},
    wrapKey, Buffer.from(ciphertext, "base64url")), "a wrapped private key cannot be decrypted into script")
  const {wrapKey: derived} = await e2e.derive(VECTORS.kdf[0].email, VECTORS.kdf[0].password)
  assert.deepEqual([...derived.usages].sort(), ["unwrapKey", "wrapKey"], "derive's wrap key too")
  // A key with the old usages (encrypt and decrypt) is refused rather than used.
  const old = await subtle.importKey("raw", new Uint8Array(32), "AES-GCM", false, ["encrypt", "decrypt"])
  await refused(e2e.wrapPrivateKey(old, conversation, keys), "invalid_argument", "an encrypt/decrypt wrap key")
  await refused(e2e.unwrapIdentity(old, conversation, {signing: "v1..", agreement: "v1.."}, "{}"), "invalid_argument", "an encrypt/decrypt wrap key")
})

test("unwrapped private keys are non-extractable, usable, and checked against the public key", async () => {
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const [ada, bob] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const [adaId, bobId, conversation] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
  const wrapped = await e2e.wrapPrivateKey(wrapKey, conversation, ada)
  const unwrapped = await e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, ada.publicJwk)
  assert.equal(unwrapped.privateKey.extractable, false)
  assert.equal(unwrapped.publicJwk, ada.publicJwk)
  await assert.rejects(subtle.exportKey("jwk", unwrapped.privateKey), "the private key cannot be exported")
  await assert.rejects(subtle.exportKey("pkcs8", unwrapped.privateKey), "the private key cannot be exported")
  await refused(e2e.privateJwk(unwrapped), "invalid_argument", "privateJwk of a non-extractable key")
  await refused(e2e.wrapPrivateKey(wrapKey, conversation, unwrapped), "invalid_argument", "wrapping a non-extractable key")
  assert.equal(await e2e.publicJwk(unwrapped), ada.publicJwk)
  // v1 messages still work with a non-extractable key, both ways.
  const toAda = await e2e.encrypt(bob, bobId, ada.publicJwk, adaId, conversation, "hello")
  assert.equal(await e2e.decrypt(unwrapped, adaId, bob.publicJwk, bobId, conversation, toAda), "hello")
  const toBob = await e2e.encrypt(unwrapped, adaId, bob.publicJwk, bobId, conversation, "back")
  assert.equal(await e2e.decrypt(bob, bobId, ada.publicJwk, adaId, conversation, toBob), "back")
  // The public key must belong to the private key; a signature member is ignored.
  await refused(e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, bob.publicJwk), "invalid_key", "another member's public key")
  await refused(e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, undefined), "invalid_key", "no public key")
  await refused(e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, null), "invalid_key", "no public key")
  // Unwrapped to be wrapped again (a password change): the public key may be left out, and is
  // then read from the extractable key itself; a wrong one given is still refused.
  for(const missing of [undefined, null]){
    const again = await e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, missing, {extractable: true})
    assert.equal(again.privateKey.extractable, true)
    assert.equal(again.publicJwk, ada.publicJwk)
    assert.equal(await e2e.privateJwk(again), await e2e.privateJwk(ada))
  }
  await refused(e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, bob.publicJwk, {extractable: true}), "invalid_key", "another member's public key, extractable")
  await refused(e2e.unwrapPrivateKey(wrapKey, crypto.randomUUID(), wrapped, undefined, {extractable: true}), "decrypt", "another conversation, without a public key")
  await refused(e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, "{}"), "invalid_key", "not a JWK")
  const signed = ada.publicJwk.slice(0, -1) + `,"signature":"${"A".repeat(86)}"}`
  assert.equal((await e2e.unwrapPrivateKey(wrapKey, conversation, wrapped, signed)).publicJwk, ada.publicJwk)
  // A v1 value (AES-GCM of the canonical JWK, as the Rust client writes it) unwraps too.
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  const v1Key = await subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt"])
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const v1 = `v1.${b64(iv)}.${b64(new Uint8Array(await subtle.encrypt({name: "AES-GCM", iv, additionalData: utf8("hearth/private-key|" + conversation)},
    v1Key, utf8(await e2e.privateJwk(bob)))))}`
  const fromV1 = await e2e.unwrapPrivateKey(await e2e.importWrapKey(bytes), conversation, v1, bob.publicJwk, {extractable: true})
  assert.equal(await e2e.privateJwk(fromV1), await e2e.privateJwk(bob))
})

test("identities: generated, from scalars and JWKs, their public form and private JWKs", async () => {
  const identity = await e2e.generateIdentity()
  const members = JSON.parse(identity.publicKey)
  assert.deepEqual(Object.keys(members), ["signing", "agreement"])
  assert.match(identity.signing.publicJwk, PUBLIC_JWK)
  assert.match(identity.agreement.publicJwk, PUBLIC_JWK)
  assert.equal(identity.publicKey, `{"signing":${identity.signing.publicJwk},"agreement":${identity.agreement.publicJwk}}`)
  assert.equal(identity.signing.privateKey.algorithm.name, "ECDSA")
  assert.deepEqual(identity.signing.privateKey.usages, ["sign"])
  assert.equal(identity.agreement.privateKey.algorithm.name, "ECDH")
  assert.deepEqual(identity.agreement.privateKey.usages, ["deriveBits"])
  assert.ok(identity.signing.privateKey.extractable && identity.agreement.privateKey.extractable, "fresh keys are extractable")
  const jwks = await e2e.identityPrivateJwks(identity)
  const again = await e2e.identityFromPrivateJwks(jwks.signing, jwks.agreement)
  assert.equal(again.publicKey, identity.publicKey)
  assert.deepEqual(await e2e.identityPrivateJwks(again), jwks)
  // From scalars: the same keys as from their JWKs.
  const [signingScalar, agreementScalar] = [jwks.signing, jwks.agreement].map(text => new Uint8Array(Buffer.from(JSON.parse(text).d, "base64url")))
  const fromScalars = await e2e.identityFromPrivateScalars(signingScalar, agreementScalar)
  assert.equal(fromScalars.publicKey, identity.publicKey)
  // The agreement half is a key pair.
  assert.equal(await e2e.publicJwk(identity.agreement), identity.agreement.publicJwk)
  await refused(e2e.identityFromPrivateScalars(new Uint8Array(32), agreementScalar), "invalid_key", "a zero scalar")
  await refused(e2e.identityFromPrivateScalars(signingScalar, new Uint8Array(31)), "invalid_argument", "a 31-byte scalar")
  await refused(e2e.identityFromPrivateJwks(jwks.agreement, jwks.agreement.replace(/"d":"[^"]+"/, `"d":"${JSON.parse(jwks.signing).d}"`)),
    "invalid_key", "d of another key")
  await refused(e2e.identityPrivateJwks({publicKey: identity.publicKey}), "invalid_argument", "not an identity")
})

test("identity keys parse to their canonical text, or are refused", async () => {
  const {identity} = await account()
  const {signing, agreement} = JSON.parse(identity.publicKey)
  assert.equal(await e2e.parseIdentityKey(identity.publicKey), identity.publicKey)
  assert.equal(await e2e.parseIdentityKey({signing, agreement}), identity.publicKey, "the object")
  const reordered = {note: "extra", agreement: {...agreement, ext: true, key_ops: []}, signing: {y: signing.y, x: signing.x, crv: "P-256", kty: "EC"}}
  assert.equal(await e2e.parseIdentityKey(JSON.stringify(reordered, null, 2)), identity.publicKey, "any order, whitespace, extra members")
  const offCurve = {...agreement, y: agreement.x}
  for(const [why, key] of [
    ["not JSON", "signing=…"], ["null", "null"], ["an array", JSON.stringify([signing, agreement])], [" a number", 42], ["undefined", undefined],
    ["no agreement", {signing}], ["no signing", JSON.stringify({agreement})], ["a JWK as text", {signing: JSON.stringify(signing), agreement}],
    ["a JWK without y", {signing, agreement: {...agreement, y: undefined}}], ["a point off the curve", {signing, agreement: offCurve}],
    ["another curve", {signing: {...signing, crv: "P-384"}, agreement}],
  ]){
    await refused(e2e.parseIdentityKey(key), "invalid_key", why)
    await refused(e2e.identityFingerprint(key), "invalid_key", `fingerprint: ${why}`)
  }
})

test("identity fingerprints and safety numbers", async () => {
  const [ada, bob] = [await account(), await account()]
  const fingerprint = await e2e.identityFingerprint(ada.identity.publicKey)
  assert.match(fingerprint, /^[0-9a-f]{64}$/)
  const {signing, agreement} = JSON.parse(ada.identity.publicKey)
  const expected = await subtle.digest("SHA-256", Buffer.concat([Buffer.from("hearth/identity|"), point(signing), point(agreement)]))
  assert.equal(fingerprint, Buffer.from(expected).toString("hex"))
  assert.equal(await e2e.identityFingerprint(JSON.parse(ada.identity.publicKey)), fingerprint, "the object")
  assert.notEqual(await e2e.identityFingerprint(bob.identity.publicKey), fingerprint)

  const number = await e2e.safetyNumber(ada.id, ada.identity.publicKey, bob.id, bob.identity.publicKey)
  assert.match(number, /^\d{5}( \d{5}){11}$/)
  assert.equal(await e2e.safetyNumber(bob.id, bob.identity.publicKey, ada.id, ada.identity.publicKey), number, "either order")
  // Written out again: six groups of 5 bytes mod 100 000 per party, the smaller id first.
  const digits = async (id, publicKey) => {
    const {signing, agreement} = JSON.parse(publicKey)
    const digest = Buffer.from(await subtle.digest("SHA-256", Buffer.concat([Buffer.from(`hearth/safety-number|${id}|`), point(signing), point(agreement)])))
    return Array.from({length: 6}, (_, i) => String(Number(BigInt("0x" + digest.subarray(5 * i, 5 * i + 5).toString("hex")) % 100000n)).padStart(5, "0"))
  }
  const [first, second] = ada.id < bob.id ? [ada, bob] : [bob, ada]
  assert.equal(number, [...await digits(first.id, first.identity.publicKey), ...await digits(second.id, second.identity.publicKey)].join(" "))
  const carol = await account()
  assert.notEqual(await e2e.safetyNumber(ada.id, ada.identity.publicKey, bob.id, carol.identity.publicKey), number, "another identity")
  await refused(e2e.safetyNumber(ada.id.toUpperCase(), ada.identity.publicKey, bob.id, bob.identity.publicKey), "invalid_argument", "an upper-case id")
  await refused(e2e.safetyNumber(ada.id, ada.identity.publicKey, bob.id, "{}"), "invalid_key", "no identity key")
})

test("identities wrap and unwrap non-extractable, bound to the account and checked against the public key", async () => {
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const [ada, bob] = [await account(), await account()]
  const wrapped = await e2e.wrapIdentity(wrapKey, ada.id, ada.identity)
  assert.deepEqual(Object.keys(wrapped), ["signing", "agreement"])
  assert.match(wrapped.signing, /^v1\.[\w-]{16}\.[\w-]+$/)
  assert.match(wrapped.agreement, /^v1\.[\w-]{16}\.[\w-]+$/)
  const unwrapped = await e2e.unwrapIdentity(wrapKey, ada.id, wrapped, ada.identity.publicKey)
  assert.equal(unwrapped.publicKey, ada.identity.publicKey)
  assert.equal(unwrapped.signing.privateKey.extractable, false)
  assert.equal(unwrapped.agreement.privateKey.extractable, false)
  await assert.rejects(subtle.exportKey("jwk", unwrapped.signing.privateKey), "the signing key cannot be exported")
  await assert.rejects(subtle.exportKey("jwk", unwrapped.agreement.privateKey), "the agreement key cannot be exported")
  await refused(e2e.identityPrivateJwks(unwrapped), "invalid_argument", "private JWKs of an unwrapped identity")
  await refused(e2e.wrapIdentity(wrapKey, ada.id, unwrapped), "invalid_argument", "wrapping an unwrapped identity")
  // The unwrapped identity signs and receives.
  const conversation = crypto.randomUUID()
  const keys = await e2e.generateKeyPair()
  const signed = await e2e.signConversationKey(unwrapped, ada.id, conversation, keys.publicJwk)
  assert.equal(await e2e.verifyConversationKey(ada.identity.publicKey, ada.id, conversation, signed), keys.publicJwk)
  const message = aMessage()
  const content = await e2e.encryptToIdentity(bob.identity, bob.id, ada.identity.publicKey, ada.id, conversation, message)
  assert.deepEqual(await e2e.decryptFromIdentity(unwrapped, ada.id, bob.identity.publicKey, bob.id, conversation, content), message)
  // Extractable on request, the object's JSON text, fixed IVs.
  const extractable = await e2e.unwrapIdentity(wrapKey, ada.id, JSON.stringify(wrapped), JSON.parse(ada.identity.publicKey), {extractable: true})
  assert.deepEqual(await e2e.identityPrivateJwks(extractable), await e2e.identityPrivateJwks(ada.identity))
  const ivs = {signingIv: new Uint8Array(12).fill(1), agreementIv: new Uint8Array(12).fill(2)}
  const fixed = await e2e.wrapIdentity(wrapKey, ada.id, ada.identity, ivs)
  assert.ok(fixed.signing.startsWith("v1.AQEBAQEBAQEBAQEB.") && fixed.agreement.startsWith("v1.AgICAgICAgICAgIC."))
  assert.notEqual((await e2e.wrapIdentity(wrapKey, ada.id, ada.identity)).signing, wrapped.signing, "a fresh IV each time")
  // Refusals.
  await refused(e2e.unwrapIdentity(wrapKey, bob.id, wrapped, ada.identity.publicKey), "decrypt", "another user id")
  await refused(e2e.unwrapIdentity(await e2e.importWrapKey(new Uint8Array(32)), ada.id, wrapped, ada.identity.publicKey), "decrypt", "another wrap key")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, {signing: wrapped.agreement, agreement: wrapped.signing}, ada.identity.publicKey), "decrypt", "halves swapped")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, wrapped, bob.identity.publicKey), "invalid_key", "another identity's public key")
  const [adaKey, bobKey] = [ada, bob].map(a => JSON.parse(a.identity.publicKey))
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, wrapped, {signing: bobKey.signing, agreement: adaKey.agreement}), "invalid_key", "another signing key")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, wrapped, {signing: adaKey.signing, agreement: bobKey.agreement}), "invalid_key", "another agreement key")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, {signing: wrapped.signing}, ada.identity.publicKey), "malformed", "no agreement half")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, "v1.x.y", ada.identity.publicKey), "malformed", "not an object")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, {...wrapped, signing: "v2" + wrapped.signing.slice(2)}, ada.identity.publicKey), "malformed", "version v2")
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, wrapped, "{}"), "invalid_key", "no public key")
  await refused(e2e.wrapIdentity(wrapKey, "ada", ada.identity), "invalid_argument", "a user id that is not a UUID")
  await refused(e2e.wrapIdentity(wrapKey, ada.id, ada.identity.agreement), "invalid_argument", "a key pair, not an identity")
  await refused(e2e.wrapIdentity(wrapKey, ada.id, ada.identity, {signingIv: new Uint8Array(16)}), "invalid_argument", "a 16-byte IV")
  // An agreement half wrapped as a conversation key does not pass for the identity's (associated data).
  const asConversationKey = await e2e.wrapPrivateKey(wrapKey, ada.id, ada.identity.agreement)
  await refused(e2e.unwrapIdentity(wrapKey, ada.id, {signing: wrapped.signing, agreement: asConversationKey}, ada.identity.publicKey), "decrypt", "another purpose")
})

test("conversation keys are signed for a user and conversation, and anything else is refused", async () => {
  const [ada, bob] = [await account(), await account()]
  const conversation = crypto.randomUUID()
  const keys = await e2e.generateKeyPair()
  const signed = await e2e.signConversationKey(ada.identity, ada.id, conversation, keys.publicJwk)
  assert.match(signed, /^\{"kty":"EC","crv":"P-256","x":"[\w-]{43}","y":"[\w-]{43}","signature":"[\w-]{86}"\}$/)
  assert.equal(signed.slice(0, signed.indexOf(',"signature"')) + "}", keys.publicJwk)
  assert.equal(await e2e.verifyConversationKey(ada.identity.publicKey, ada.id, conversation, signed), keys.publicJwk)
  const members = JSON.parse(signed)
  assert.equal(await e2e.verifyConversationKey(JSON.parse(ada.identity.publicKey), ada.id, conversation, members), keys.publicJwk, "objects")
  const reordered = JSON.stringify({signature: members.signature, y: members.y, x: members.x, crv: "P-256", kty: "EC", ext: true})
  assert.equal(await e2e.verifyConversationKey(ada.identity.publicKey, ada.id, conversation, reordered), keys.publicJwk, "any member order")
  // The statement is what docs/e2e.md says it is.
  const verifier = await subtle.importKey("jwk", JSON.parse(ada.identity.signing.publicJwk), {name: "ECDSA", namedCurve: "P-256"}, false, ["verify"])
  assert.ok(await subtle.verify({name: "ECDSA", hash: "SHA-256"}, verifier, Buffer.from(members.signature, "base64url"),
    utf8(`hearth/conversation-key|${ada.id}|${conversation}|${keys.publicJwk}`)))
  // Signing a signed key signs the key alone.
  const resigned = await e2e.signConversationKey(ada.identity, ada.id, conversation, signed)
  assert.equal(await e2e.verifyConversationKey(ada.identity.publicKey, ada.id, conversation, resigned), keys.publicJwk)

  const flipped = Buffer.from(members.signature, "base64url")
  flipped[10] ^= 1
  const other = await e2e.generateKeyPair()
  const otherMembers = JSON.parse(other.publicJwk)
  for(const [why, args] of [
    ["another user id", [ada.identity.publicKey, bob.id, conversation, signed]],
    ["another conversation id", [ada.identity.publicKey, ada.id, crypto.randomUUID(), signed]],
    ["another identity", [bob.identity.publicKey, ada.id, conversation, signed]],
    ["another key under the signature", [ada.identity.publicKey, ada.id, conversation, {...otherMembers, signature: members.signature}]],
    ["no signature", [ada.identity.publicKey, ada.id, conversation, keys.publicJwk]],
    ["a signature that is not a string", [ada.identity.publicKey, ada.id, conversation, {...members, signature: [...flipped]}]],
    ["a flipped bit", [ada.identity.publicKey, ada.id, conversation, {...members, signature: b64(flipped)}]],
    ["a 63-byte signature", [ada.identity.publicKey, ada.id, conversation, {...members, signature: b64(flipped.subarray(1))}]],
    ["a DER signature's length", [ada.identity.publicKey, ada.id, conversation, {...members, signature: b64(new Uint8Array(70))}]],
    ["padded base64", [ada.identity.publicKey, ada.id, conversation, {...members, signature: members.signature + "=="}]],
    ["a zero signature", [ada.identity.publicKey, ada.id, conversation, {...members, signature: b64(new Uint8Array(64))}]],
  ]){
    await refused(e2e.verifyConversationKey(...args), "signature", why)
  }
  for(const [why, args] of [
    ["a signed key that is not JSON", [ada.identity.publicKey, ada.id, conversation, "kty=EC"]],
    ["a signed key off the curve", [ada.identity.publicKey, ada.id, conversation, {...members, y: members.x}]],
    ["a signed key without x", [ada.identity.publicKey, ada.id, conversation, {...members, x: undefined}]],
    ["an identity key that is not one", [ada.identity.signing.publicJwk, ada.id, conversation, signed]],
  ]){
    await refused(e2e.verifyConversationKey(...args), "invalid_key", why)
  }
  await refused(e2e.verifyConversationKey(ada.identity.publicKey, "ada", conversation, signed), "invalid_argument", "a user id that is not a UUID")
  await refused(e2e.signConversationKey(ada.identity, ada.id, conversation, "{}"), "invalid_key", "signing no key")
  await refused(e2e.signConversationKey(keys, ada.id, conversation, keys.publicJwk), "invalid_argument", "a key pair, not an identity")
})

test("v2 messages round trip, padded to 256-byte buckets, to the recipient and to the sender itself", async () => {
  const [ada, bob] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const [adaId, bobId, conversation] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const bobUnwrapped = await e2e.unwrapPrivateKey(wrapKey, conversation, await e2e.wrapPrivateKey(wrapKey, conversation, bob), bob.publicJwk)
  const bobSigned = bob.publicJwk.slice(0, -1) + `,"signature":"${"A".repeat(86)}"}`
  for(const text of ["", "hi", "\uFEFFa byte order mark stays", "Grüße — ✓ 你好 🔐👋🏽", "\u0000\u001f\"\\/\u007f\u2028", "<script>alert(1)</script>", "x".repeat(70000)]){
    for(const message of [aMessage({text}), aMessage({text, edit_of: crypto.randomUUID(), seq: 2 ** 53 - 1, sent_at: 0})]){
      const toBob = await e2e.encryptMessage(ada, adaId, bobSigned, bobId, conversation, message)
      assert.match(toBob, /^v2\.[\w-]{16}\.[\w-]+$/)
      assert.deepEqual(await e2e.decryptMessage(bobUnwrapped, bobId, ada.publicJwk, adaId, conversation, toBob), message)
      const toSelf = await e2e.encryptMessage(ada, adaId, ada.publicJwk, adaId, conversation, message)
      assert.deepEqual(await e2e.decryptMessage(ada, adaId, ada.publicJwk, adaId, conversation, toSelf), message)
    }
  }
  const message = aMessage()
  const extra = {...message, extra: "not sent"}
  assert.deepEqual(await e2e.decryptMessage(bob, bobId, ada.publicJwk, adaId, conversation,
    await e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, extra)), message, "extra members are not sent")
  assert.notEqual(await e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, message),
    await e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, message), "a fresh nonce each time")
  // Padding: the sealed bytes are 256-byte blocks and the 16-byte tag (the 12-byte nonce is
  // apart); the JSON around the text takes 130 bytes here.
  const lengthOf = async text => {
    const [, , sealed] = (await e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, aMessage({text}))).split(".")
    return Buffer.from(sealed, "base64url").length - 16
  }
  const header = JSON.stringify(aMessage({text: ""})).length
  assert.equal(header, 130)
  assert.equal(await lengthOf(""), 256)
  assert.equal(await lengthOf("x".repeat(100)), 256)
  assert.equal(await lengthOf("x".repeat(200)), 512)
  assert.equal(await lengthOf("x".repeat(300)), 512)
  assert.equal(await lengthOf("x".repeat(400)), 768)
  assert.equal(await lengthOf("é".repeat(100)), 512, "bytes count, not characters")
  assert.equal(await lengthOf("x".repeat(255 - header)), 256, "the JSON and 0x80 fill one block exactly")
  assert.equal(await lengthOf("x".repeat(256 - header)), 512, "one more byte takes the next")
  // An independent reading of the spec gives the same bytes.
  const nonce = crypto.getRandomValues(new Uint8Array(12))
  const {id, sent_at, edit_of, stream, seq, text} = message
  const json = utf8(`{"id":"${id}","sent_at":${sent_at},"edit_of":null,"stream":"${stream}","seq":${seq},"text":"${text}"}`)
  assert.equal(JSON.stringify({id, sent_at, edit_of, stream, seq, text}), new TextDecoder().decode(json))
  assert.equal(await e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, message, {nonce}),
    await sealRaw("v2", ada.privateKey, adaId, bob.publicJwk, bobId, conversation, pad(json), nonce))
})

test("v2 messages are bound to conversation, sender, recipient and mode", async () => {
  const [ada, bob, eve] = [await account(), await account(), await account()]
  const [adaKeys, bobKeys] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const conversation = crypto.randomUUID()
  const message = aMessage()
  const toBob = await e2e.encryptMessage(adaKeys, ada.id, bobKeys.publicJwk, bob.id, conversation, message)
  const open = (keys, recipientId, senderJwk, senderId, conversationId, content = toBob) =>
    e2e.decryptMessage(keys, recipientId, senderJwk, senderId, conversationId, content)
  await refused(open(bobKeys, bob.id, adaKeys.publicJwk, ada.id, crypto.randomUUID()), "decrypt", "another conversation")
  await refused(open(bobKeys, bob.id, adaKeys.publicJwk, eve.id, conversation), "decrypt", "another sender id")
  await refused(open(bobKeys, eve.id, adaKeys.publicJwk, ada.id, conversation), "decrypt", "another recipient id")
  await refused(open(adaKeys, ada.id, bobKeys.publicJwk, bob.id, conversation), "decrypt", "sender and recipient swapped")
  await refused(open(bobKeys, bob.id, (await e2e.generateKeyPair()).publicJwk, ada.id, conversation), "decrypt", "another sender key")
  await refused(open(bobKeys, bob.id, adaKeys.publicJwk, ada.id, conversation, "v1" + toBob.slice(2)), "malformed", "relabelled v1")
  await refused(open(bobKeys, bob.id, adaKeys.publicJwk, ada.id, conversation, "v2i" + toBob.slice(2)), "malformed", "relabelled v2i")
  const v1 = await e2e.encrypt(adaKeys, ada.id, bobKeys.publicJwk, bob.id, conversation, JSON.stringify(message))
  await refused(open(bobKeys, bob.id, adaKeys.publicJwk, ada.id, conversation, "v2" + v1.slice(2)), "decrypt", "a v1 message relabelled v2")

  // Identity messages: the same shape under the identities' agreement keys.
  const toIdentity = await e2e.encryptToIdentity(ada.identity, ada.id, bob.identity.publicKey, bob.id, conversation, message)
  assert.match(toIdentity, /^v2i\.[\w-]{16}\.[\w-]+$/)
  assert.deepEqual(await e2e.decryptFromIdentity(bob.identity, bob.id, JSON.parse(ada.identity.publicKey), ada.id, conversation, toIdentity), message)
  const toSelf = await e2e.encryptToIdentity(ada.identity, ada.id, ada.identity.publicKey, ada.id, conversation, message)
  assert.deepEqual(await e2e.decryptFromIdentity(ada.identity, ada.id, ada.identity.publicKey, ada.id, conversation, toSelf), message)
  const fromIdentity = (identity, recipientId, senderKey, senderId, conversationId, content = toIdentity) =>
    e2e.decryptFromIdentity(identity, recipientId, senderKey, senderId, conversationId, content)
  await refused(fromIdentity(bob.identity, bob.id, ada.identity.publicKey, ada.id, crypto.randomUUID()), "decrypt", "v2i: another conversation")
  await refused(fromIdentity(bob.identity, bob.id, ada.identity.publicKey, eve.id, conversation), "decrypt", "v2i: another sender id")
  await refused(fromIdentity(bob.identity, eve.id, ada.identity.publicKey, ada.id, conversation), "decrypt", "v2i: another recipient id")
  await refused(fromIdentity(eve.identity, bob.id, ada.identity.publicKey, ada.id, conversation), "decrypt", "v2i: another recipient")
  await refused(fromIdentity(bob.identity, bob.id, ada.identity.publicKey, ada.id, conversation, toBob), "malformed", "a v2 message")
  // The mode is bound too: with the very same ECDH keys, v2 and v2i do not open each other.
  const sameKeys = {ada: ada.identity.agreement, bob: bob.identity.agreement}
  const asV2 = "v2" + toIdentity.slice(3)
  await refused(e2e.decryptMessage(sameKeys.bob, bob.id, sameKeys.ada.publicJwk, ada.id, conversation, asV2), "decrypt", "v2i relabelled v2")
  const v2 = await e2e.encryptMessage(sameKeys.ada, ada.id, sameKeys.bob.publicJwk, bob.id, conversation, message)
  await refused(fromIdentity(bob.identity, bob.id, ada.identity.publicKey, ada.id, conversation, "v2i" + v2.slice(2)), "decrypt", "v2 relabelled v2i")
  const nonce = crypto.getRandomValues(new Uint8Array(12))
  const {id, sent_at, edit_of, stream, seq, text} = message
  assert.equal(await e2e.encryptToIdentity(ada.identity, ada.id, bob.identity.publicKey, bob.id, conversation, message, {nonce}),
    await sealRaw("v2i", ada.identity.agreement.privateKey, ada.id, bob.identity.agreement.publicJwk, bob.id, conversation,
      pad(utf8(JSON.stringify({id, sent_at, edit_of, stream, seq, text}))), nonce), "an independent reading of the spec")
  await refused(e2e.encryptToIdentity(ada.identity, ada.id, bob.identity.agreement.publicJwk, bob.id, conversation, message), "invalid_key", "a JWK, not an identity key")
  await refused(e2e.encryptToIdentity(adaKeys, ada.id, bob.identity.publicKey, bob.id, conversation, message), "invalid_argument", "a key pair, not an identity")
})

test("v2 message objects are checked before encrypting and after decrypting", async () => {
  const [ada, bob] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const [adaId, bobId, conversation] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
  const invalid = [
    ["not an object", "hi"], ["null", null], ["an array", []],
    ["no id", aMessage({id: undefined})], ["an upper-case id", aMessage({id: crypto.randomUUID().toUpperCase()})],
    ["edit_of missing", aMessage({edit_of: undefined})], ["edit_of not an id", aMessage({edit_of: "x"})],
    ["a negative sent_at", aMessage({sent_at: -1})], ["a fractional sent_at", aMessage({sent_at: 1.5})],
    ["sent_at as text", aMessage({sent_at: "1733000000000"})], ["sent_at 2^53", aMessage({sent_at: 2 ** 53})],
    ["a negative seq", aMessage({seq: -1})], ["seq NaN", aMessage({seq: NaN})], ["seq as a BigInt", aMessage({seq: 1n})],
    ["a stream of 15 digits", aMessage({stream: "0123456789abcde"})], ["an upper-case stream", aMessage({stream: "0123456789ABCDEF"})],
    ["no text", aMessage({text: undefined})], ["text not a string", aMessage({text: 42})], ["a lone surrogate", aMessage({text: "\uD800"})],
  ]
  for(const [why, message] of invalid){
    await refused(e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, message), "invalid_argument", why)
  }
  await refused(e2e.encryptMessage(ada, adaId, bob.publicJwk, bobId, conversation, aMessage(), {nonce: new Uint8Array(11)}), "invalid_argument", "an 11-byte nonce")
  await refused(e2e.encryptMessage(ada, adaId, "{}", bobId, conversation, aMessage()), "invalid_key", "no recipient key")
  await refused(e2e.encryptMessage({publicJwk: ada.publicJwk}, adaId, bob.publicJwk, bobId, conversation, aMessage()), "invalid_argument", "not a key pair")

  // Decrypted plaintexts that are not a padded message.
  const sealed = bytes => sealRaw("v2", ada.privateKey, adaId, bob.publicJwk, bobId, conversation, bytes)
  const opened = async bytes => e2e.decryptMessage(bob, bobId, ada.publicJwk, adaId, conversation, await sealed(bytes))
  const message = aMessage()
  const json = JSON.stringify(message)
  const zeros = new Uint8Array(256)
  await refused(opened(new Uint8Array(0)), "malformed", "an empty plaintext")
  await refused(opened(zeros), "malformed", "only zeros")
  await refused(opened(utf8(json)), "malformed", "no padding")
  await refused(opened(Buffer.concat([utf8(json), Buffer.from([0x80, 1, 0])])), "malformed", "a byte after 0x80")
  await refused(opened(Buffer.concat([utf8(json), Buffer.from([0x81]), zeros.subarray(0, 10)])), "malformed", "another marker")
  await refused(opened(pad(utf8("not json"))), "malformed", "not JSON")
  await refused(opened(pad(Buffer.from([0xc3, 0x28]))), "not_text", "not UTF-8")
  await refused(opened(pad(Buffer.concat([utf8(json.slice(0, -2)), Buffer.from([0xff]), utf8('"}')]))), "not_text", "a bad byte in the text")
  for(const [why, bad] of invalid.slice(1)){
    if(typeof bad?.seq === "bigint"){ continue }
    await refused(opened(pad(utf8(JSON.stringify(bad) ?? "null"))), "malformed", `a header with ${why}`)
  }
  await refused(opened(pad(utf8(json.replace('"text":"hi"', '"text":"\\ud800"')))), "malformed", "an escaped lone surrogate")
  // What a reader accepts: extra members, any member order, padding that is not a whole block.
  const reordered = {text: message.text, seq: message.seq, extra: [1], stream: message.stream, edit_of: null, sent_at: message.sent_at, id: message.id}
  assert.deepEqual(await opened(pad(utf8(JSON.stringify(reordered)))), message)
  assert.deepEqual(await opened(Buffer.concat([utf8(json), Buffer.from([0x80])])), message, "0x80 alone")
  assert.deepEqual(await opened(Buffer.concat([utf8(json), Buffer.from([0x80]), zeros])), message, "more than a block of zeros")
})

test("the delivery checker flags substituted, redated and reordered messages", () => {
  const sender = crypto.randomUUID()
  const at = "2024-12-01T10:00:00Z"
  const sentAt = Date.UTC(2024, 11, 1, 10, 0, 0)
  const original = aMessage({sent_at: sentAt, seq: 5})
  const delivered = (message, fields = {}) => ({message_group: message.edit_of ?? message.id, sender, inserted_at: at, updated_at: at, ...fields})
  const check = steps => {
    const checker = new e2e.DeliveryChecker()
    return steps.map(([d, m]) => checker.check(d, m))
  }
  assert.deepEqual(check([[delivered(original), original]]), [[]], "genuine")
  // Substituted.
  assert.deepEqual(check([[delivered(original, {message_group: crypto.randomUUID()}), original]]), [["substituted"]], "copied into another message")
  assert.deepEqual(check([[delivered(original, {updated_at: "2024-12-01T10:00:00.001Z"}), original]]), [["substituted"]], "a message marked edited")
  const edit = aMessage({sent_at: sentAt + 60000, edit_of: original.id, seq: 6})
  const editedAt = {updated_at: "2024-12-01T10:01:00Z"}
  assert.deepEqual(check([[delivered(edit, editedAt), edit]]), [[]], "a genuine edit")
  assert.deepEqual(check([[delivered(edit), edit]]), [["substituted"]], "an edit not marked edited")
  assert.deepEqual(check([[delivered(edit, {...editedAt, message_group: crypto.randomUUID()}), edit]]), [["substituted"]], "an edit of another message")
  assert.deepEqual(check([[delivered(original, {...editedAt, message_group: edit.id}), edit]]), [["substituted"]], "an edit passed off as a message")
  // Redated: more than 15 minutes away, either way; exactly 15 minutes is fine.
  for(const [time, flags] of [["2024-12-01T10:15:00Z", []], ["2024-12-01T10:15:00.001Z", ["redated"]], ["2024-12-01T09:45:00Z", []],
    ["2024-12-01T09:44:59.999Z", ["redated"]], ["2024-12-01T10:15:00.000999999Z", []], ["2024-12-01T11:15:00+01:00", []],
    ["2024-12-01T08:45:00.0001-01:00", []], ["2024-12-01T08:44:59.9999-01:00", ["redated"]]]){
    assert.deepEqual(check([[delivered(original, {inserted_at: time, updated_at: time}), original]]), [flags], time)
  }
  assert.deepEqual(check([[delivered(edit, {updated_at: "2024-12-01T10:17:00Z"}), edit]]), [["redated"]], "an edit counts its updated_at")
  assert.deepEqual(check([[delivered(edit, {inserted_at: "2024-12-01T09:00:00Z", updated_at: "2024-12-01T10:01:00Z"}), edit]]), [[]], "not its inserted_at")
  // Reordered: per sender and stream, for messages that are not edits; the highest is kept.
  const next = (seq, fields = {}) => aMessage({sent_at: sentAt, seq, ...fields})
  const [m3, m4, m2, m5] = [3, 4, 2, 5].map(seq => next(seq))
  assert.deepEqual(check([m3, m4, m2, m5].map(m => [delivered(m), m])), [[], [], ["reordered"], []])
  const again = next(4)
  assert.deepEqual(check([m4, again].map(m => [delivered(m), m])), [[], ["reordered"]], "a repeated seq")
  const otherStream = next(1, {stream: "fedcba9876543210"})
  assert.deepEqual(check([m4, otherStream].map(m => [delivered(m), m])), [[], []], "another stream")
  assert.deepEqual(check([[delivered(m4), m4], [delivered(m2, {sender: crypto.randomUUID()}), m2]]), [[], []], "another sender")
  const lowEdit = aMessage({sent_at: sentAt, seq: 0, edit_of: m3.id})
  assert.deepEqual(check([[delivered(m4), m4], [delivered(lowEdit, {updated_at: "2024-12-01T10:00:01Z"}), lowEdit], [delivered(m5), m5]]), [[], [], []], "edits are not ordered")
  const all = aMessage({sent_at: sentAt - 3600000, seq: 1})
  assert.deepEqual(check([[delivered(m4), m4], [delivered(all, {message_group: crypto.randomUUID(), updated_at: "2024-12-01T10:00:00.5Z"}), all]]),
    [[], ["substituted", "redated", "reordered"]], "all three, in this order")
  // Times: 0 to 9 fraction digits truncated to milliseconds, Z or an offset; anything else is refused.
  assert.deepEqual(check([[delivered(original, {updated_at: "2024-12-01T10:00:00.000999Z"}), original]]), [[]], "the same millisecond")
  assert.deepEqual(check([[delivered(original, {updated_at: "2024-12-01T11:00:00+01:00"}), original]]), [[]], "the same time in another offset")
  assert.deepEqual(check([[delivered(original, {inserted_at: "2024-12-01T10:00:00.1234567Z", updated_at: "2024-12-01T10:00:00.123Z"}), original]]), [[]])
  const checker = new e2e.DeliveryChecker()
  for(const time of ["2024-12-01 10:00:00Z", "2024-12-01T10:00:00", "2024-12-01T10:00:00.Z", "2024-12-01T10:00:00.1234567890Z", "2024-02-30T10:00:00Z",
    "2024-12-01T24:00:00Z", "2024-12-01T10:00:00+1:00", "2024-12-01T10:00:00+24:00", 1733047200000, null]){
    assert.throws(() => checker.check(delivered(original, {inserted_at: time}), original), error => error.code === "invalid_argument", String(time))
  }
  assert.throws(() => checker.check(delivered(original, {sender: "bob"}), original), error => error.code === "invalid_argument", "a sender that is not an id")
  assert.throws(() => checker.check(delivered(original), {...original, seq: -1}), error => error.code === "invalid_argument", "not a message")
  assert.throws(() => checker.check(null, original), error => error.code === "invalid_argument", "nothing delivered")
  const leapDay = aMessage({sent_at: Date.UTC(2024, 1, 29, 10)})
  assert.deepEqual(check([[delivered(leapDay, {inserted_at: "2024-02-29T10:00:00Z", updated_at: "2024-02-29T10:00:00Z"}), leapDay]]), [[]], "a leap day")
  const epoch = aMessage({sent_at: 0})
  assert.deepEqual(check([[delivered(epoch, {inserted_at: "1970-01-01T00:00:00Z", updated_at: "1970-01-01T00:14:59.999999999Z"}), epoch]]), [["substituted"]], "the epoch")
  assert.deepEqual(check([[delivered(epoch, {inserted_at: "1970-01-01T00:10:00Z", updated_at: "1970-01-01T00:10:00Z"}), epoch]]), [[]], "near the epoch")
  assert.deepEqual(check([[delivered(epoch, {inserted_at: "1969-12-31T23:44:59.999Z", updated_at: "1969-12-31T23:44:59.999Z"}), epoch]]), [["redated"]], "before the epoch")
})

// ---------------------------------------------------------------------------------------------
// The v2 sections of the vectors (written by the Rust side; each check runs once its section exists)

/** `{skip}` for a test of these vector sections: a reason while one is missing. */
const needs = (...sections) => {
  const missing = sections.filter(section => !Array.isArray(VECTORS[section]))
  return {skip: missing.length ? `skipped: clients/e2e-vectors.json has no ${missing.join(", ")} section yet` : false}
}

/** The vector identities by name: {identity, id, public_key, …the entry}. */
async function identities(){
  const named = new Map()
  for(const entry of VECTORS.identities){
    const identity = await e2e.identityFromPrivateScalars(unhex(entry.signing_scalar_hex), unhex(entry.agreement_scalar_hex))
    named.set(entry.name, {...entry, identity})
  }
  return named
}

test("vectors: identities give their public keys and fingerprints, and their wrapped keys unwrap", needs("identities"), async () => {
  for(const entry of VECTORS.identities){
    const {name, id, signing_scalar_hex, agreement_scalar_hex, public_key, fingerprint, kdf, wrapped} = entry
    assert.match(id, UUID, name)
    const identity = await e2e.identityFromPrivateScalars(unhex(signing_scalar_hex), unhex(agreement_scalar_hex))
    assert.equal(identity.publicKey, public_key, name)
    assert.equal(await e2e.parseIdentityKey(public_key), public_key, name)
    assert.equal(await e2e.identityFingerprint(public_key), fingerprint, name)
    const wrapKey = await wrapKeyOf(kdf)
    const unwrapped = await e2e.unwrapIdentity(wrapKey, id, wrapped, public_key, {extractable: true})
    assert.deepEqual(await e2e.identityPrivateJwks(unwrapped), await e2e.identityPrivateJwks(identity), name)
    assert.equal((await e2e.unwrapIdentity(wrapKey, id, wrapped, public_key)).signing.privateKey.extractable, false, name)
    // WebCrypto's JWK text differs from the canonical one: what JS wraps with the vector IVs unwraps again.
    const again = await e2e.wrapIdentity(wrapKey, id, identity, {signingIv: unhex(entry.signing_iv_hex), agreementIv: unhex(entry.agreement_iv_hex)})
    assert.ok(again.signing.startsWith(wrapped.signing.slice(0, 20)) && again.agreement.startsWith(wrapped.agreement.slice(0, 20)), `${name}: the vector IVs`)
    assert.equal((await e2e.unwrapIdentity(wrapKey, id, again, public_key)).publicKey, public_key, name)
    const other = VECTORS.identities.find(e => e.name !== name)
    if(other){
      await refused(e2e.unwrapIdentity(wrapKey, id, wrapped, other.public_key), "invalid_key", `${name} with ${other.name}'s public key`)
      await refused(e2e.unwrapIdentity(wrapKey, other.id, wrapped, public_key), "decrypt", `${name} as ${other.name}`)
    }
  }
})

test("vectors: safety numbers, in both orders", needs("identities", "safety_numbers"), async () => {
  const named = await identities()
  for(const {a, b, safety_number} of VECTORS.safety_numbers){
    const [A, B] = [named.get(a), named.get(b)]
    assert.equal(await e2e.safetyNumber(A.id, A.public_key, B.id, B.public_key), safety_number, `${a}, ${b}`)
    assert.equal(await e2e.safetyNumber(B.id, B.public_key, A.id, A.public_key), safety_number, `${b}, ${a}`)
  }
})

test("vectors: signed conversation keys verify, and so do JS signatures of the same keys", needs("identities", "signed_conversation_keys"), async () => {
  const named = await identities()
  const pairs = new Map(VECTORS.key_pairs.map(pair => [pair.name, pair]))
  for(const {identity, conversation_id, key_pair, signed_public_key} of VECTORS.signed_conversation_keys){
    const {id, public_key, identity: keys} = named.get(identity)
    const {public_jwk} = pairs.get(key_pair)
    assert.equal(await e2e.verifyConversationKey(public_key, id, conversation_id, signed_public_key), public_jwk, `${identity}, ${key_pair}`)
    const signed = await e2e.signConversationKey(keys, id, conversation_id, public_jwk)
    assert.equal(signed.slice(0, signed.indexOf(',"signature"')), signed_public_key.slice(0, signed_public_key.indexOf(',"signature"')), "the same text but for the signature")
    assert.equal(await e2e.verifyConversationKey(public_key, id, conversation_id, signed), public_jwk, `${identity}, ${key_pair}: a JS signature`)
  }
})

test("vectors: rejected signed conversation keys are refused", needs("identities", "rejected_signed_conversation_keys"), async () => {
  const named = await identities()
  for(const {why, identity, user_id, conversation_id, signed_public_key, error} of VECTORS.rejected_signed_conversation_keys){
    await refused(e2e.verifyConversationKey(named.get(identity).public_key, user_id, conversation_id, signed_public_key), error, why)
  }
})

test("vectors: v2 messages match and decrypt", needs("messages_v2"), async () => {
  const pairs = await keyPairs()
  for(const {sender, recipient, conversation_id, nonce_hex, message, content} of VECTORS.messages_v2){
    const [from, to] = [pairs.get(sender), pairs.get(recipient)]
    assert.equal(await e2e.encryptMessage(from.keys, from.id, to.keys.publicJwk, to.id, conversation_id, message, {nonce: unhex(nonce_hex)}), content, `${sender} → ${recipient}`)
    assert.deepEqual(await e2e.decryptMessage(to.keys, to.id, from.keys.publicJwk, from.id, conversation_id, content), message, `${sender} → ${recipient}`)
  }
})

test("vectors: messages to identities match and decrypt", needs("identities", "messages_to_identity"), async () => {
  const named = await identities()
  for(const {sender, recipient, conversation_id, nonce_hex, message, content} of VECTORS.messages_to_identity){
    const [from, to] = [named.get(sender), named.get(recipient)]
    assert.equal(await e2e.encryptToIdentity(from.identity, from.id, to.public_key, to.id, conversation_id, message, {nonce: unhex(nonce_hex)}), content, `${sender} → ${recipient}`)
    assert.deepEqual(await e2e.decryptFromIdentity(to.identity, to.id, from.public_key, from.id, conversation_id, content), message, `${sender} → ${recipient}`)
  }
})

test("vectors: rejected v2 and v2i messages are refused", needs("rejected_messages_v2"), async () => {
  const pairs = await keyPairs()
  const named = Array.isArray(VECTORS.identities) ? await identities() : new Map()
  for(const {why, mode, recipient, recipient_id, sender, sender_id, conversation_id, content, error} of VECTORS.rejected_messages_v2){
    if(mode === "v2"){
      const {keys} = pairs.get(recipient)
      await refused(e2e.decryptMessage(keys, recipient_id, pairs.get(sender).keys.publicJwk, sender_id, conversation_id, content), error, why)
    } else {
      assert.equal(mode, "v2i", why)
      await refused(e2e.decryptFromIdentity(named.get(recipient).identity, recipient_id, named.get(sender).public_key, sender_id, conversation_id, content), error, why)
    }
  }
})

test("vectors: delivery checks", needs("delivery_checks"), () => {
  for(const {why, steps} of VECTORS.delivery_checks){
    const checker = new e2e.DeliveryChecker()
    steps.forEach(({delivered, message, flags}, i) => assert.deepEqual(checker.check(delivered, message), flags, `${why}, step ${i}`))
  }
})
