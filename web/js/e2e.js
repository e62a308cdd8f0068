// hearth's end-to-end encryption (docs/ARCHITECTURE.md) with WebCrypto, in the browser and in Node.js
// 20+ (`globalThis.crypto`). A plain ES module without dependencies.
//
// The scheme is written down in crates/hearth-client/src/e2e/mod.rs; this file implements it
// byte for byte like the Rust client. clients/e2e-vectors.json holds fixed inputs and exact
// outputs that both test suites check (clients/phoenix-js/test/e2e.test.mjs here), and
// crates/hearth-client/tests/cross.rs runs the two against each other.
//
// In short: master = PBKDF2-HMAC-SHA256(password, "hearth:" + lowercase(email), 600 000);
// authSecret = HKDF(master, "hearth/auth") is sent as the password; wrapKey =
// HKDF(master, "hearth/wrap") never leaves the device and wraps each conversation's private
// JWK (AES-256-GCM, associated data "hearth/private-key|" + conversation id); a message from S
// to R in C is AES-256-GCM under HKDF(ECDH(S, R), salt C, info S.id + R.id), associated data
// C + S.id + R.id. Encrypted values are "v1.<b64url nonce>.<b64url ciphertext‖tag>".
//
// Every function is async. Whatever is malformed rejects with an E2eError whose `code` is
// "invalid_key", "malformed", "decrypt" or "not_text" (the same cases as the Rust client's
// E2eError), "invalid_argument" (a wrong type, an id that is not a lowercase hyphenated UUID,
// a nonce that is not 12 bytes) or "unsupported" (no WebCrypto: it needs a secure context).

/** PBKDF2-HMAC-SHA256 iterations of the master key. */
export const PBKDF2_ITERATIONS = 600000
/** AES-GCM IV and nonce length, in bytes. */
export const NONCE_LENGTH = 12

const ECDH = Object.freeze({name: "ECDH", namedCurve: "P-256"})
const VERSION = "v1"
const TAG_LENGTH = 16
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
const ALPHABET_INDEX = new Map(Array.from(ALPHABET, (c, i) => [c, i]))
/** PKCS #8 of a P-256 private key without its public key, up to the 32 bytes of the scalar. */
const PKCS8_P256_PREFIX = Uint8Array.from([
  0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01,
  0x01, 0x04, 0x20,
])

/** Why an E2E operation failed; `code` is one of the names above. Never carries secrets. */
export class E2eError extends Error {
  constructor(code, message){
    super(message)
    this.name = "E2eError"
    this.code = code
  }
}

const fail = (code, message) => { throw new E2eError(code, message) }

function subtle(){
  const subtle = globalThis.crypto?.subtle
  if(!subtle){ fail("unsupported", "WebCrypto is not available here (it needs https or localhost)") }
  return subtle
}

const encoder = new TextEncoder()

/** The UTF-8 of a well-formed string (lone surrogates are refused: Rust strings cannot hold them). */
function utf8(text, what){
  if(typeof text !== "string"){ fail("invalid_argument", `${what} is not a string`) }
  const wellFormed = typeof text.isWellFormed === "function"
    ? text.isWellFormed()
    : new TextDecoder().decode(encoder.encode(text)) === text
  if(!wellFormed){ fail("invalid_argument", `${what} contains a lone surrogate`) }
  return encoder.encode(text)
}

function checkId(id, what){
  if(typeof id !== "string" || !ID.test(id)){ fail("invalid_argument", `${what} is not a lowercase hyphenated UUID`) }
  return id
}

function checkWrapKey(wrapKey){
  const usable = wrapKey?.type === "secret" && wrapKey.algorithm?.name === "AES-GCM" && wrapKey.algorithm.length === 256
    && ["encrypt", "decrypt"].every(usage => wrapKey.usages?.includes(usage))
  if(!usable){ fail("invalid_argument", "the wrap key is not an AES-256-GCM key from derive or importWrapKey") }
  return wrapKey
}

function checkNonce(nonce, what){
  if(nonce === undefined){ return globalThis.crypto.getRandomValues(new Uint8Array(NONCE_LENGTH)) }
  if(!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH){
    fail("invalid_argument", `${what} is not a Uint8Array of ${NONCE_LENGTH} bytes`)
  }
  return nonce
}

/** base64url without padding. */
function b64(bytes){
  let out = ""
  let value = 0
  let bits = 0
  for(const byte of bytes){
    value = (value << 8) | byte
    bits += 8
    while(bits >= 6){
      bits -= 6
      out += ALPHABET[(value >> bits) & 63]
    }
    value &= (1 << bits) - 1
  }
  if(bits > 0){ out += ALPHABET[(value << (6 - bits)) & 63] }
  return out
}

/** Decodes canonical base64url without padding (no "=", no whitespace, unused bits zero); null otherwise. */
function unb64(text){
  if(typeof text !== "string" || text.length % 4 === 1){ return null }
  const out = new Uint8Array(Math.floor(text.length * 3 / 4))
  let value = 0
  let bits = 0
  let at = 0
  for(const c of text){
    const digit = ALPHABET_INDEX.get(c)
    if(digit === undefined){ return null }
    value = (value << 6) | digit
    bits += 6
    if(bits >= 8){
      bits -= 8
      out[at++] = (value >> bits) & 0xff
    }
    value &= (1 << bits) - 1
  }
  return value === 0 ? out : null
}

const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("")

/** `v1.<b64url nonce>.<b64url ciphertext‖tag>`: AES-256-GCM of `plaintext` bound to `aad`. */
async function seal(key, nonce, aad, plaintext){
  const sealed = await subtle().encrypt({name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128}, key, plaintext)
  return `${VERSION}.${b64(nonce)}.${b64(new Uint8Array(sealed))}`
}

/** Decodes and decrypts what `seal` made. */
async function open(key, aad, encoded){
  if(typeof encoded !== "string"){ fail("malformed", "the encrypted value is not a string") }
  const parts = encoded.split(".")
  if(parts.length !== 3){ fail("malformed", "not three dot-separated parts") }
  if(parts[0] !== VERSION){ fail("malformed", "unknown version") }
  const nonce = unb64(parts[1])
  if(!nonce){ fail("malformed", "the nonce is not base64url") }
  if(nonce.length !== NONCE_LENGTH){ fail("malformed", "the nonce is not 12 bytes") }
  const sealed = unb64(parts[2])
  if(!sealed){ fail("malformed", "the ciphertext is not base64url") }
  if(sealed.length < TAG_LENGTH){ fail("malformed", "the ciphertext is shorter than its tag") }
  try {
    return new Uint8Array(await subtle().decrypt({name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128}, key, sealed))
  } catch {
    fail("decrypt", "the encrypted value could not be decrypted")
  }
}

/** The members of a JWK object (a repeated member keeps its last value). */
function jwkMembers(text){
  if(typeof text !== "string"){ fail("invalid_key", "the JWK is not a string") }
  let members
  try { members = JSON.parse(text) } catch { fail("invalid_key", "the JWK is not a JSON object") }
  if(members === null || typeof members !== "object" || Array.isArray(members)){
    fail("invalid_key", "the JWK is not a JSON object")
  }
  return members
}

const member = (members, name) => Object.hasOwn(members, name) ? members[name] : undefined

/** The 32-byte x and y of a P-256 JWK, checked for shape (the curve is checked by importing). */
function coordinates(members){
  const [kty, crv, x, y] = ["kty", "crv", "x", "y"].map(name => member(members, name))
  if(![kty, crv, x, y].every(value => typeof value === "string")){
    fail("invalid_key", "the JWK lacks a string kty, crv, x or y")
  }
  if(kty !== "EC"){ fail("invalid_key", "the JWK's kty is not EC") }
  if(crv !== "P-256"){ fail("invalid_key", "the JWK's crv is not P-256") }
  const [xBytes, yBytes] = [x, y].map(unb64)
  if(xBytes?.length !== 32 || yBytes?.length !== 32){ fail("invalid_key", "x or y is not the base64url of 32 bytes") }
  return {x: xBytes, y: yBytes}
}

const canonicalPublic = ({x, y}) => `{"kty":"EC","crv":"P-256","x":"${b64(x)}","y":"${b64(y)}"}`

async function importPublic(point){
  try {
    return await subtle().importKey("jwk", {kty: "EC", crv: "P-256", x: b64(point.x), y: b64(point.y)}, ECDH, true, [])
  } catch {
    fail("invalid_key", "the point is not on the curve")
  }
}

/** A JWK member exported by WebCrypto as exactly 32 bytes (left-padded if an engine drops leading zeros). */
function exported32(value){
  const bytes = unb64(value)
  if(!bytes || bytes.length > 32){ fail("invalid_key", "WebCrypto exported an unexpected JWK") }
  const out = new Uint8Array(32)
  out.set(bytes, 32 - bytes.length)
  return out
}

function keyPairOf(privateKey, point){
  return Object.freeze({publicJwk: canonicalPublic(point), privateKey})
}

function checkKeyPair(keyPair, what){
  const key = keyPair?.privateKey
  const usable = key?.type === "private" && key.algorithm?.name === "ECDH" && key.algorithm.namedCurve === "P-256"
    && key.usages?.includes("deriveBits") && key.extractable
  if(!usable || typeof keyPair.publicJwk !== "string"){
    fail("invalid_argument", `${what} is not a key pair from this module`)
  }
  return keyPair
}

/**
 * Derives the secrets of an email and password, keeping the wrap key's bytes (for test
 * vectors and for keeping it on the device): `{authSecret, wrapKeyBytes}`. Prefer `derive`.
 */
export async function deriveSecrets(email, password){
  if(typeof email !== "string"){ fail("invalid_argument", "the email is not a string") }
  const salt = utf8("hearth:" + email.toLowerCase(), "the email")
  const passwordKey = await subtle().importKey("raw", utf8(password, "the password"), "PBKDF2", false, ["deriveBits"])
  const master = new Uint8Array(await subtle().deriveBits(
    {name: "PBKDF2", hash: "SHA-256", salt, iterations: PBKDF2_ITERATIONS}, passwordKey, 256))
  const masterKey = await subtle().importKey("raw", master, "HKDF", false, ["deriveBits"])
  master.fill(0)
  const expand = async info => new Uint8Array(await subtle().deriveBits(
    {name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: encoder.encode(info)}, masterKey, 256))
  const auth = await expand("hearth/auth")
  const wrapKeyBytes = await expand("hearth/wrap")
  const authSecret = b64(auth)
  auth.fill(0)
  return {authSecret, wrapKeyBytes}
}

/**
 * Derives `{authSecret, wrapKey}` from an email and password: `authSecret` (base64url, 43
 * characters) is sent to `/auth/*` as the password; `wrapKey` is a non-extractable AES-GCM
 * CryptoKey that wraps private keys and never leaves the device. Slow on purpose (PBKDF2).
 */
export async function derive(email, password){
  const {authSecret, wrapKeyBytes} = await deriveSecrets(email, password)
  try {
    return Object.freeze({authSecret, wrapKey: await importWrapKey(wrapKeyBytes)})
  } finally {
    wrapKeyBytes.fill(0)
  }
}

/** The non-extractable AES-GCM wrap key of 32 bytes (as `deriveSecrets` gives). */
export async function importWrapKey(bytes){
  if(!(bytes instanceof Uint8Array) || bytes.length !== 32){ fail("invalid_argument", "a wrap key is 32 bytes") }
  return subtle().importKey("raw", bytes, {name: "AES-GCM"}, false, ["encrypt", "decrypt"])
}

/** A fresh ECDH P-256 key pair: `{publicJwk, privateKey}` (publicJwk is the canonical JWK text). */
export async function generateKeyPair(){
  const {privateKey} = await subtle().generateKey(ECDH, true, ["deriveBits"])
  const jwk = await subtle().exportKey("jwk", privateKey)
  return keyPairOf(privateKey, {x: exported32(jwk.x), y: exported32(jwk.y)})
}

/** The key pair of a private scalar (a Uint8Array of 32 big-endian bytes): for test vectors. */
export async function keyPairFromPrivateScalar(scalar){
  if(!(scalar instanceof Uint8Array) || scalar.length !== 32){ fail("invalid_argument", "a private scalar is 32 bytes") }
  const pkcs8 = new Uint8Array(PKCS8_P256_PREFIX.length + 32)
  pkcs8.set(PKCS8_P256_PREFIX)
  pkcs8.set(scalar, PKCS8_P256_PREFIX.length)
  let privateKey
  try {
    privateKey = await subtle().importKey("pkcs8", pkcs8, ECDH, true, ["deriveBits"])
  } catch {
    fail("invalid_key", "the private scalar is zero or not below the group order")
  } finally {
    pkcs8.fill(0)
  }
  const jwk = await subtle().exportKey("jwk", privateKey)
  return keyPairOf(privateKey, {x: exported32(jwk.x), y: exported32(jwk.y)})
}

/** The key pair of a private JWK text (any member order, extra members ignored). */
export async function keyPairFromPrivateJwk(text){
  const members = jwkMembers(text)
  const point = coordinates(members)
  const d = member(members, "d")
  if(typeof d !== "string"){ fail("invalid_key", "the private JWK has no string d") }
  if(unb64(d)?.length !== 32){ fail("invalid_key", "d is not the base64url of 32 bytes") }
  let privateKey
  try {
    privateKey = await subtle().importKey("jwk", {kty: "EC", crv: "P-256", x: b64(point.x), y: b64(point.y), d}, ECDH, true, ["deriveBits"])
  } catch {
    fail("invalid_key", "d is not the private key of x and y")
  }
  return keyPairOf(privateKey, point)
}

/** The canonical public JWK text of a key pair: what the server stores as `public_key`. */
export async function publicJwk(keyPair){
  return checkKeyPair(keyPair, "the key pair").publicJwk
}

/** The canonical private JWK text of a key pair. Secret: only `wrapPrivateKey` needs it. */
export async function privateJwk(keyPair){
  checkKeyPair(keyPair, "the key pair")
  const jwk = await subtle().exportKey("jwk", keyPair.privateKey)
  const [x, y, d] = [jwk.x, jwk.y, jwk.d].map(exported32).map(b64)
  return `{"kty":"EC","crv":"P-256","x":"${x}","y":"${y}","d":"${d}"}`
}

/**
 * Encrypts a key pair's private JWK under the wrap key for a conversation: the `private_key`
 * to store on the server. `options.iv` (12 bytes) is for test vectors only.
 */
export async function wrapPrivateKey(wrapKey, conversationId, keyPair, {iv} = {}){
  checkWrapKey(wrapKey)
  checkId(conversationId, "the conversation id")
  checkKeyPair(keyPair, "the key pair")
  const nonce = checkNonce(iv, "the IV")
  const jwk = encoder.encode(await privateJwk(keyPair))
  try {
    return await seal(wrapKey, nonce, encoder.encode("hearth/private-key|" + conversationId), jwk)
  } finally {
    jwk.fill(0)
  }
}

/** Decrypts a `private_key` that `wrapPrivateKey` made for this conversation: a key pair. */
export async function unwrapPrivateKey(wrapKey, conversationId, wrapped){
  checkWrapKey(wrapKey)
  checkId(conversationId, "the conversation id")
  const jwk = await open(wrapKey, encoder.encode("hearth/private-key|" + conversationId), wrapped)
  let text
  try {
    text = new TextDecoder("utf-8", {fatal: true, ignoreBOM: true}).decode(jwk)
  } catch {
    fail("invalid_key", "the private JWK is not UTF-8")
  } finally {
    jwk.fill(0)
  }
  return keyPairFromPrivateJwk(text)
}

/** The AES-GCM key of messages from senderId to recipientId in conversationId. */
/**
 * Message keys already derived, per own private key: the ECDH and HKDF steps cost several
 * WebCrypto round trips, and a conversation's keys do not change between its messages. Held
 * no longer than the private key itself; the derived keys are non-extractable.
 */
const derivedKeys = new WeakMap()

function messageKey(own, theirPublicJwk, senderId, recipientId, conversationId){
  let cache = derivedKeys.get(own.privateKey)
  if(!cache){
    cache = new Map()
    derivedKeys.set(own.privateKey, cache)
  }
  const id = JSON.stringify([theirPublicJwk, senderId, recipientId, conversationId])
  let key = cache.get(id)
  if(!key){
    key = deriveMessageKey(own, theirPublicJwk, senderId, recipientId, conversationId)
    cache.set(id, key)
    key.catch(() => cache.delete(id))
  }
  return key
}

async function deriveMessageKey(own, theirPublicJwk, senderId, recipientId, conversationId){
  const theirPublic = await importPublic(coordinates(jwkMembers(theirPublicJwk)))
  const shared = await subtle().deriveBits({name: "ECDH", public: theirPublic}, own.privateKey, 256)
  const ikm = await subtle().importKey("raw", shared, "HKDF", false, ["deriveKey"])
  new Uint8Array(shared).fill(0)
  return subtle().deriveKey(
    {name: "HKDF", hash: "SHA-256", salt: encoder.encode(conversationId), info: encoder.encode(senderId + recipientId)},
    ikm, {name: "AES-GCM", length: 256}, false, ["encrypt", "decrypt"])
}

/**
 * Encrypts a message from `sender` (a key pair; its id `senderId`) to the member
 * `recipientId` whose public JWK is `recipientPublicJwk`, in `conversationId`: the `content`
 * for that recipient. The sender encrypts its own copy the same way, to itself.
 * `options.nonce` (12 bytes) is for test vectors only.
 */
export async function encrypt(sender, senderId, recipientPublicJwk, recipientId, conversationId, plaintext, {nonce} = {}){
  checkKeyPair(sender, "the sender")
  checkId(senderId, "the sender id")
  checkId(recipientId, "the recipient id")
  checkId(conversationId, "the conversation id")
  const bytes = utf8(plaintext, "the plaintext")
  const iv = checkNonce(nonce, "the nonce")
  const key = await messageKey(sender, recipientPublicJwk, senderId, recipientId, conversationId)
  return seal(key, iv, encoder.encode(conversationId + senderId + recipientId), bytes)
}

/**
 * Decrypts a message `content` to `recipient` (a key pair; its id `recipientId`) from the
 * member `senderId` whose public JWK is `senderPublicJwk`, in `conversationId`. Anything sent
 * to someone else, by someone else or in another conversation rejects with code "decrypt".
 */
export async function decrypt(recipient, recipientId, senderPublicJwk, senderId, conversationId, content){
  checkKeyPair(recipient, "the recipient")
  checkId(recipientId, "the recipient id")
  checkId(senderId, "the sender id")
  checkId(conversationId, "the conversation id")
  const key = await messageKey(recipient, senderPublicJwk, senderId, recipientId, conversationId)
  const plaintext = await open(key, encoder.encode(conversationId + senderId + recipientId), content)
  try {
    return new TextDecoder("utf-8", {fatal: true, ignoreBOM: true}).decode(plaintext)
  } catch {
    fail("not_text", "the decrypted message is not UTF-8 text")
  }
}

/**
 * The fingerprint of a public JWK that people compare: SHA-256 of the uncompressed point
 * (0x04‖x‖y), its first 16 bytes in lowercase hex, in 8 groups of 4 digits.
 */
export async function fingerprint(publicJwk){
  const point = coordinates(jwkMembers(publicJwk))
  await importPublic(point)
  const uncompressed = new Uint8Array(65)
  uncompressed[0] = 0x04
  uncompressed.set(point.x, 1)
  uncompressed.set(point.y, 33)
  const digest = hex(new Uint8Array(await subtle().digest("SHA-256", uncompressed)).subarray(0, 16))
  return digest.match(/.{4}/g).join(" ")
}
