// hearth's end-to-end encryption (docs/ARCHITECTURE.md) with WebCrypto, in the browser and in Node.js
// 20+ (`globalThis.crypto`). A plain ES module without dependencies.
//
// The v1 scheme is written down in crates/hearth-client/src/e2e/mod.rs, the v2 scheme on top of
// it (identities, signed conversation keys, authenticated and padded messages, delivery checks)
// in docs/e2e.md; this file implements both byte for byte like the Rust client.
// clients/e2e-vectors.json holds fixed inputs and exact outputs that both test suites check
// (clients/phoenix-js/test/e2e.test.mjs here), and crates/hearth-client/tests/cross.rs runs the
// two against each other.
//
// In short (v1): master = PBKDF2-HMAC-SHA256(password, "hearth:" + lowercase(email), 600 000);
// authSecret = HKDF(master, "hearth/auth") is sent as the password; wrapKey =
// HKDF(master, "hearth/wrap") never leaves the device and wraps each conversation's private
// JWK (AES-256-GCM, associated data "hearth/private-key|" + conversation id); a message from S
// to R in C is AES-256-GCM under HKDF(ECDH(S, R), salt C, info S.id + R.id), associated data
// C + S.id + R.id. Encrypted values are "v1.<b64url nonce>.<b64url ciphertext‖tag>".
// v2 adds an identity per account (ECDSA and ECDH P-256) that signs conversation keys, messages
// "v2.…" (to a conversation key) and "v2i.…" (to an identity) whose padded plaintext is a JSON
// header plus the text, and DeliveryChecker, which compares that header with what the server
// says about the message.
//
// Keys script cannot read: the wrap key only wraps and unwraps (no encrypt, decrypt or
// export), and private keys are unwrapped as non-extractable CryptoKeys. Only fresh keys (from
// generateKeyPair, generateIdentity), test keys (from scalars or JWK texts) and keys unwrapped
// with {extractable: true} (which the web client does only to wrap them again for a new
// password) are extractable, since wrapping needs that.
//
// Every function is async (DeliveryChecker.check, which does no cryptography, is not).
// Whatever is malformed rejects with an E2eError whose `code` is "invalid_key", "malformed",
// "decrypt" or "not_text" (the same cases as the Rust client's E2eError), "signature" (a
// conversation key whose signature is missing or does not verify), "invalid_argument" (a wrong
// type, an id that is not a lowercase hyphenated UUID, a nonce that is not 12 bytes, a key
// that is not extractable where it must be, a message object that is not valid) or
// "unsupported" (no WebCrypto: it needs a secure context).

/** PBKDF2-HMAC-SHA256 iterations of the master key. */
export const PBKDF2_ITERATIONS = 600000
/** AES-GCM IV and nonce length, in bytes. */
export const NONCE_LENGTH = 12
/** A v2 plaintext is padded to a multiple of this many bytes (docs/e2e.md § Messages). */
export const PADDING_BLOCK = 256
/** How far the server's time of a message may be from its sender's clock before it is "redated". */
export const DELIVERY_TOLERANCE_MS = 15 * 60 * 1000

const ECDH = Object.freeze({name: "ECDH", namedCurve: "P-256"})
const ECDSA = Object.freeze({name: "ECDSA", namedCurve: "P-256"})
const ECDSA_SHA256 = Object.freeze({name: "ECDSA", hash: "SHA-256"})
const VERSION = "v1"
const TAG_LENGTH = 16
const SIGNATURE_LENGTH = 64
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const STREAM = /^[0-9a-f]{16}$/
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

const isWellFormed = text => typeof text.isWellFormed === "function"
  ? text.isWellFormed()
  : new TextDecoder().decode(encoder.encode(text)) === text

/** The UTF-8 of a well-formed string (lone surrogates are refused: Rust strings cannot hold them). */
function utf8(text, what){
  if(typeof text !== "string"){ fail("invalid_argument", `${what} is not a string`) }
  if(!isWellFormed(text)){ fail("invalid_argument", `${what} contains a lone surrogate`) }
  return encoder.encode(text)
}

/** UTF-8 bytes as text, or null if they are not UTF-8 (a byte order mark stays: it is text). */
function decodeUtf8(bytes){
  try {
    return new TextDecoder("utf-8", {fatal: true, ignoreBOM: true}).decode(bytes)
  } catch {
    return null
  }
}

function checkId(id, what){
  if(typeof id !== "string" || !ID.test(id)){ fail("invalid_argument", `${what} is not a lowercase hyphenated UUID`) }
  return id
}

function checkWrapKey(wrapKey){
  const usable = wrapKey?.type === "secret" && wrapKey.algorithm?.name === "AES-GCM" && wrapKey.algorithm.length === 256
    && ["wrapKey", "unwrapKey"].every(usage => wrapKey.usages?.includes(usage))
  if(!usable){ fail("invalid_argument", "the wrap key is not an AES-256-GCM wrapping key from derive or importWrapKey") }
  return wrapKey
}

function checkNonce(nonce, what){
  if(nonce === undefined){ return globalThis.crypto.getRandomValues(new Uint8Array(NONCE_LENGTH)) }
  if(!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH){
    fail("invalid_argument", `${what} is not a Uint8Array of ${NONCE_LENGTH} bytes`)
  }
  return nonce
}

function checkExtractableOption(extractable){
  if(typeof extractable !== "boolean"){ fail("invalid_argument", "the extractable option is not a boolean") }
  return extractable
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

function concat(...parts){
  const out = new Uint8Array(parts.reduce((length, part) => length + part.length, 0))
  let at = 0
  for(const part of parts){
    out.set(part, at)
    at += part.length
  }
  return out
}

const gcm = (iv, aad) => ({name: "AES-GCM", iv, additionalData: aad, tagLength: 128})

const envelopeOf = (tag, nonce, sealed) => `${tag}.${b64(nonce)}.${b64(new Uint8Array(sealed))}`

/** `<tag>.<b64url nonce>.<b64url ciphertext‖tag>`: AES-256-GCM of `plaintext` bound to `aad`. */
async function seal(key, nonce, aad, plaintext, tag = VERSION){
  return envelopeOf(tag, nonce, await subtle().encrypt(gcm(nonce, aad), key, plaintext))
}

/**
 * The nonce and sealed bytes of an encrypted value with this tag, checked for shape before any
 * decryption, so that a malformed value is told apart from one that does not decrypt.
 */
function envelope(encoded, tag){
  if(typeof encoded !== "string"){ fail("malformed", "the encrypted value is not a string") }
  const parts = encoded.split(".")
  if(parts.length !== 3){ fail("malformed", "not three dot-separated parts") }
  if(parts[0] !== tag){ fail("malformed", "unknown version") }
  const nonce = unb64(parts[1])
  if(!nonce){ fail("malformed", "the nonce is not base64url") }
  if(nonce.length !== NONCE_LENGTH){ fail("malformed", "the nonce is not 12 bytes") }
  const sealed = unb64(parts[2])
  if(!sealed){ fail("malformed", "the ciphertext is not base64url") }
  if(sealed.length < TAG_LENGTH){ fail("malformed", "the ciphertext is shorter than its tag") }
  return {nonce, sealed}
}

/** Decodes and decrypts what `seal` made. */
async function open(key, aad, encoded, tag = VERSION){
  const {nonce, sealed} = envelope(encoded, tag)
  try {
    return new Uint8Array(await subtle().decrypt(gcm(nonce, aad), key, sealed))
  } catch {
    fail("decrypt", "the encrypted value could not be decrypted")
  }
}

/** A private CryptoKey as its JWK encrypted under the wrap key: `v1.<iv>.<ciphertext‖tag>`. */
async function wrapJwk(wrapKey, nonce, aad, privateKey){
  return envelopeOf(VERSION, nonce, await subtle().wrapKey("jwk", privateKey, wrapKey, gcm(nonce, aad)))
}

/**
 * The private key in a value `wrapJwk` (or v1's AES-GCM of a canonical private JWK) made:
 * unwrapped inside WebCrypto, so that a non-extractable key's bytes never reach script.
 */
async function unwrapJwk(wrapKey, aad, sealedEnvelope, algorithm, usages, extractable){
  const {nonce, sealed} = sealedEnvelope
  try {
    return await subtle().unwrapKey("jwk", sealed, wrapKey, gcm(nonce, aad), algorithm, extractable, usages)
  } catch {
    // unwrapKey fails alike when AES-GCM refuses the bytes and when they decrypt to something
    // that is not such a JWK. Unwrapping the same bytes as an HMAC key, which takes any
    // non-empty bytes and stays inside WebCrypto, tells the two apart: only a wrong key, IV,
    // associated data or tag fails with OperationError there.
    const undecryptable = await subtle().unwrapKey("raw", sealed, wrapKey, gcm(nonce, aad),
      {name: "HMAC", hash: "SHA-256"}, false, ["sign"]).then(() => false, error => error?.name === "OperationError")
    if(undecryptable){ fail("decrypt", "the wrapped private key could not be decrypted") }
    fail("invalid_key", "the wrapped value is not a private P-256 JWK whose d belongs to its x and y")
  }
}

/** The members of a JWK object (a repeated member keeps its last value). */
function jwkMembers(text){
  if(typeof text !== "string"){ fail("invalid_key", "the JWK is not a string") }
  let members
  try { members = JSON.parse(text) } catch { fail("invalid_key", "the JWK is not a JSON object") }
  if(!isObject(members)){ fail("invalid_key", "the JWK is not a JSON object") }
  return members
}

const isObject = value => value !== null && typeof value === "object" && !Array.isArray(value)

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

/** The uncompressed SEC1 point, 0x04‖x‖y (65 bytes). */
const uncompressed = ({x, y}) => concat([0x04], x, y)

async function importPublic(point, algorithm = ECDH, usages = []){
  try {
    return await subtle().importKey("jwk", {kty: "EC", crv: "P-256", x: b64(point.x), y: b64(point.y)}, algorithm, true, usages)
  } catch {
    fail("invalid_key", "the point is not on the curve")
  }
}

/** The point of a public JWK text (extra members, such as a signature, ignored), checked on the curve. */
async function publicPoint(text){
  const point = coordinates(jwkMembers(text))
  await importPublic(point)
  return point
}

/** A JWK member exported by WebCrypto as exactly 32 bytes (left-padded if an engine drops leading zeros). */
function exported32(value){
  const bytes = unb64(value)
  if(!bytes || bytes.length > 32){ fail("invalid_key", "WebCrypto exported an unexpected JWK") }
  const out = new Uint8Array(32)
  out.set(bytes, 32 - bytes.length)
  return out
}

/** The point of an extractable private key, read from its JWK. */
async function pointOf(privateKey){
  const jwk = await subtle().exportKey("jwk", privateKey)
  return {x: exported32(jwk.x), y: exported32(jwk.y)}
}

/** The canonical private JWK text of an extractable private key. */
async function canonicalPrivate(privateKey){
  const jwk = await subtle().exportKey("jwk", privateKey)
  const [x, y, d] = [jwk.x, jwk.y, jwk.d].map(exported32).map(b64)
  return `{"kty":"EC","crv":"P-256","x":"${x}","y":"${y}","d":"${d}"}`
}

/** An extractable private key of a 32-byte big-endian scalar, for test vectors. */
async function importScalar(scalar, algorithm, usages){
  if(!(scalar instanceof Uint8Array) || scalar.length !== 32){ fail("invalid_argument", "a private scalar is 32 bytes") }
  const pkcs8 = new Uint8Array(PKCS8_P256_PREFIX.length + 32)
  pkcs8.set(PKCS8_P256_PREFIX)
  pkcs8.set(scalar, PKCS8_P256_PREFIX.length)
  let privateKey
  try {
    privateKey = await subtle().importKey("pkcs8", pkcs8, algorithm, true, usages)
  } catch {
    fail("invalid_key", "the private scalar is zero or not below the group order")
  } finally {
    pkcs8.fill(0)
  }
  return {privateKey, point: await pointOf(privateKey)}
}

/** An extractable private key of a private JWK text (any member order, extra members ignored). */
async function importPrivateJwk(text, algorithm, usages){
  const members = jwkMembers(text)
  const point = coordinates(members)
  const d = member(members, "d")
  if(typeof d !== "string"){ fail("invalid_key", "the private JWK has no string d") }
  if(unb64(d)?.length !== 32){ fail("invalid_key", "d is not the base64url of 32 bytes") }
  let privateKey
  try {
    privateKey = await subtle().importKey("jwk", {kty: "EC", crv: "P-256", x: b64(point.x), y: b64(point.y), d}, algorithm, true, usages)
  } catch {
    fail("invalid_key", "d is not the private key of x and y")
  }
  return {privateKey, point}
}

const equalBytes = (a, b) => a.length === b.length && a.every((byte, i) => byte === b[i])

/**
 * Whether an ECDH private key belongs to a point, without reading the private key (it may be
 * non-extractable): with a throwaway key pair E, ECDH(private, E.public) equals
 * ECDH(E.private, point) exactly when the point is the private key's public key.
 */
async function agreementMatches(privateKey, point){
  const publicKey = await importPublic(point)
  const probe = await subtle().generateKey(ECDH, false, ["deriveBits"])
  const [ours, theirs] = (await Promise.all([
    subtle().deriveBits({name: "ECDH", public: probe.publicKey}, privateKey, 256),
    subtle().deriveBits({name: "ECDH", public: publicKey}, probe.privateKey, 256),
  ])).map(bits => new Uint8Array(bits))
  try {
    return equalBytes(ours, theirs)
  } finally {
    ours.fill(0)
    theirs.fill(0)
  }
}

/** Whether an ECDSA private key belongs to a point: a signature of a random challenge verifies under it. */
async function signingMatches(privateKey, point){
  const publicKey = await importPublic(point, ECDSA, ["verify"])
  const challenge = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const signature = await subtle().sign(ECDSA_SHA256, privateKey, challenge)
  return subtle().verify(ECDSA_SHA256, publicKey, signature, challenge)
}

function keyPairOf(privateKey, point){
  return Object.freeze({publicJwk: canonicalPublic(point), privateKey})
}

const isP256Private = (key, name, usage) => key?.type === "private" && key.algorithm?.name === name
  && key.algorithm.namedCurve === "P-256" && key.usages?.includes(usage)

/** A key pair (or an identity's agreement half); its private key may be non-extractable. */
function checkKeyPair(keyPair, what){
  if(!isP256Private(keyPair?.privateKey, "ECDH", "deriveBits") || typeof keyPair.publicJwk !== "string"){
    fail("invalid_argument", `${what} is not a key pair from this module`)
  }
  return keyPair
}

function checkIdentity(identity, what){
  const usable = typeof identity?.publicKey === "string"
    && isP256Private(identity.signing?.privateKey, "ECDSA", "sign") && typeof identity.signing.publicJwk === "string"
    && isP256Private(identity.agreement?.privateKey, "ECDH", "deriveBits") && typeof identity.agreement.publicJwk === "string"
  if(!usable){ fail("invalid_argument", `${what} is not an identity from this module`) }
  return identity
}

function checkExtractable(privateKey, what){
  if(!privateKey.extractable){ fail("invalid_argument", `${what} is not extractable (it was unwrapped)`) }
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

/**
 * The wrap key of 32 bytes (as `deriveSecrets` gives): a non-extractable AES-GCM CryptoKey
 * with only the wrapKey and unwrapKey usages, so that a script in the page can neither export
 * it nor decrypt a wrapped private key's bytes into script with it.
 */
export async function importWrapKey(bytes){
  if(!(bytes instanceof Uint8Array) || bytes.length !== 32){ fail("invalid_argument", "a wrap key is 32 bytes") }
  return subtle().importKey("raw", bytes, {name: "AES-GCM"}, false, ["wrapKey", "unwrapKey"])
}

/**
 * A fresh ECDH P-256 key pair: `{publicJwk, privateKey}` (publicJwk is the canonical JWK text).
 * Extractable, to be wrapped once; then use the non-extractable key `unwrapPrivateKey` gives.
 */
export async function generateKeyPair(){
  const {privateKey} = await subtle().generateKey(ECDH, true, ["deriveBits"])
  return keyPairOf(privateKey, await pointOf(privateKey))
}

/** The key pair of a private scalar (a Uint8Array of 32 big-endian bytes): for test vectors. */
export async function keyPairFromPrivateScalar(scalar){
  const {privateKey, point} = await importScalar(scalar, ECDH, ["deriveBits"])
  return keyPairOf(privateKey, point)
}

/** The key pair of a private JWK text (any member order, extra members ignored). */
export async function keyPairFromPrivateJwk(text){
  const {privateKey, point} = await importPrivateJwk(text, ECDH, ["deriveBits"])
  return keyPairOf(privateKey, point)
}

/** The canonical public JWK text of a key pair: what the server stores as `public_key`. */
export async function publicJwk(keyPair){
  return checkKeyPair(keyPair, "the key pair").publicJwk
}

/**
 * The canonical private JWK text of an extractable key pair (fresh or a test key; an
 * unwrapped one is not extractable: invalid_argument). Secret: for tests and harnesses.
 */
export async function privateJwk(keyPair){
  checkKeyPair(keyPair, "the key pair")
  checkExtractable(keyPair.privateKey, "the key pair's private key")
  return canonicalPrivate(keyPair.privateKey)
}

const privateKeyAad = conversationId => encoder.encode("hearth/private-key|" + conversationId)

/**
 * Encrypts a key pair's private key under the wrap key for a conversation: the `private_key`
 * to store on the server. The key pair must be extractable (fresh from generateKeyPair): the
 * JWK is written by WebCrypto's wrapKey, never exposed to script. `options.iv` (12 bytes) is
 * for tests only (WebCrypto's JWK text is not the canonical one, so the bytes differ from the
 * Rust client's for the same IV; both read either).
 */
export async function wrapPrivateKey(wrapKey, conversationId, keyPair, {iv} = {}){
  checkWrapKey(wrapKey)
  checkId(conversationId, "the conversation id")
  checkKeyPair(keyPair, "the key pair")
  checkExtractable(keyPair.privateKey, "the key pair's private key")
  const nonce = checkNonce(iv, "the IV")
  return wrapJwk(wrapKey, nonce, privateKeyAad(conversationId), keyPair.privateKey)
}

/**
 * Decrypts a `private_key` wrapped for this conversation (by either client, v1 included): a
 * key pair whose private key is non-extractable unless `options.extractable`. A non-extractable
 * key cannot give its public key, so the caller passes the member's `public_key` from the
 * server (a signature member is ignored), and it is checked to belong to the private key:
 * otherwise invalid_key.
 *
 * With `options.extractable` (only to wrap the key again, as a password change does) the
 * public JWK may be left out (undefined or null): the public key is then read from the
 * unwrapped key itself, so that a client can re-wrap every stored private key without first
 * fetching each conversation's public keys. A non-extractable unwrap always needs it.
 */
export async function unwrapPrivateKey(wrapKey, conversationId, wrapped, publicJwk, {extractable = false} = {}){
  checkWrapKey(wrapKey)
  checkId(conversationId, "the conversation id")
  checkExtractableOption(extractable)
  const sealed = envelope(wrapped, VERSION)
  const privateKey = await unwrapJwk(wrapKey, privateKeyAad(conversationId), sealed, ECDH, ["deriveBits"], extractable)
  if(extractable && (publicJwk === undefined || publicJwk === null)){
    return keyPairOf(privateKey, await pointOf(privateKey))
  }
  const point = await publicPoint(publicJwk)
  if(!await agreementMatches(privateKey, point)){ fail("invalid_key", "the public key does not belong to the wrapped private key") }
  return keyPairOf(privateKey, point)
}

/**
 * Message keys already derived, per own private key: the ECDH and HKDF steps cost several
 * WebCrypto round trips, and a conversation's keys do not change between its messages. Held
 * no longer than the private key itself; the derived keys are non-extractable.
 */
const derivedKeys = new WeakMap()

/** The info of HKDF and the associated data of a message, per scheme (`mode` is its envelope tag). */
function binding(mode, senderId, recipientId, conversationId){
  if(mode === VERSION){
    return {info: senderId + recipientId, aad: conversationId + senderId + recipientId}
  }
  return {
    info: `hearth/${mode}|${senderId}|${recipientId}`,
    aad: `hearth/${mode}|${conversationId}|${senderId}|${recipientId}`,
  }
}

/** The AES-GCM key of messages from senderId to recipientId in conversationId under `mode`. */
function messageKey(own, theirPublicJwk, senderId, recipientId, conversationId, mode = VERSION){
  let cache = derivedKeys.get(own.privateKey)
  if(!cache){
    cache = new Map()
    derivedKeys.set(own.privateKey, cache)
  }
  const id = JSON.stringify([mode, theirPublicJwk, senderId, recipientId, conversationId])
  let key = cache.get(id)
  if(!key){
    key = deriveMessageKey(own, theirPublicJwk, conversationId, binding(mode, senderId, recipientId, conversationId).info)
    cache.set(id, key)
    key.catch(() => cache.delete(id))
  }
  return key
}

async function deriveMessageKey(own, theirPublicJwk, conversationId, info){
  const theirPublic = await importPublic(coordinates(jwkMembers(theirPublicJwk)))
  const shared = await subtle().deriveBits({name: "ECDH", public: theirPublic}, own.privateKey, 256)
  const ikm = await subtle().importKey("raw", shared, "HKDF", false, ["deriveKey"])
  new Uint8Array(shared).fill(0)
  return subtle().deriveKey(
    {name: "HKDF", hash: "SHA-256", salt: encoder.encode(conversationId), info: encoder.encode(info)},
    ikm, {name: "AES-GCM", length: 256}, false, ["encrypt", "decrypt"])
}

/**
 * Encrypts a message from `sender` (a key pair; its id `senderId`) to the member
 * `recipientId` whose public JWK is `recipientPublicJwk`, in `conversationId`: the `content`
 * for that recipient. The sender encrypts its own copy the same way, to itself.
 * `options.nonce` (12 bytes) is for test vectors only. Scheme v1: write v2 with encryptMessage.
 */
export async function encrypt(sender, senderId, recipientPublicJwk, recipientId, conversationId, plaintext, {nonce} = {}){
  checkKeyPair(sender, "the sender")
  checkId(senderId, "the sender id")
  checkId(recipientId, "the recipient id")
  checkId(conversationId, "the conversation id")
  const bytes = utf8(plaintext, "the plaintext")
  const iv = checkNonce(nonce, "the nonce")
  const key = await messageKey(sender, recipientPublicJwk, senderId, recipientId, conversationId)
  return seal(key, iv, encoder.encode(binding(VERSION, senderId, recipientId, conversationId).aad), bytes)
}

/**
 * Decrypts a message `content` to `recipient` (a key pair; its id `recipientId`) from the
 * member `senderId` whose public JWK is `senderPublicJwk`, in `conversationId`. Anything sent
 * to someone else, by someone else or in another conversation rejects with code "decrypt".
 * Scheme v1, still read for history from before v2.
 */
export async function decrypt(recipient, recipientId, senderPublicJwk, senderId, conversationId, content){
  checkKeyPair(recipient, "the recipient")
  checkId(recipientId, "the recipient id")
  checkId(senderId, "the sender id")
  checkId(conversationId, "the conversation id")
  const key = await messageKey(recipient, senderPublicJwk, senderId, recipientId, conversationId)
  const plaintext = await open(key, encoder.encode(binding(VERSION, senderId, recipientId, conversationId).aad), content)
  const text = decodeUtf8(plaintext)
  if(text === null){ fail("not_text", "the decrypted message is not UTF-8 text") }
  return text
}

/**
 * The fingerprint of a public JWK that people compare: SHA-256 of the uncompressed point
 * (0x04‖x‖y), its first 16 bytes in lowercase hex, in 8 groups of 4 digits.
 */
export async function fingerprint(publicJwk){
  const point = await publicPoint(publicJwk)
  const digest = hex(new Uint8Array(await subtle().digest("SHA-256", uncompressed(point))).subarray(0, 16))
  return digest.match(/.{4}/g).join(" ")
}

// ---------------------------------------------------------------------------------------------
// Identities (docs/e2e.md § Identity keys)

function identityOf(signing, agreement){
  const signingJwk = canonicalPublic(signing.point)
  const agreementJwk = canonicalPublic(agreement.point)
  return Object.freeze({
    publicKey: `{"signing":${signingJwk},"agreement":${agreementJwk}}`,
    signing: Object.freeze({privateKey: signing.privateKey, publicJwk: signingJwk}),
    agreement: keyPairOf(agreement.privateKey, agreement.point),
  })
}

/**
 * The two points of an identity's public form, given as the object or its JSON text (extra
 * members ignored; each member a public P-256 JWK object on the curve), and its canonical text.
 */
async function parseIdentity(publicKey){
  let members = publicKey
  if(typeof publicKey === "string"){
    try { members = JSON.parse(publicKey) } catch { fail("invalid_key", "the identity key is not a JSON object") }
  }
  if(!isObject(members)){ fail("invalid_key", "the identity key is not a JSON object") }
  const [signing, agreement] = ["signing", "agreement"].map(name => {
    const jwk = member(members, name)
    if(!isObject(jwk)){ fail("invalid_key", `the identity key has no ${name} JWK object`) }
    return coordinates(jwk)
  })
  await importPublic(signing, ECDSA, ["verify"])
  await importPublic(agreement)
  return {
    signing,
    agreement,
    text: `{"signing":${canonicalPublic(signing)},"agreement":${canonicalPublic(agreement)}}`,
  }
}

/**
 * A fresh identity: `{publicKey, signing: {privateKey, publicJwk}, agreement: {privateKey,
 * publicJwk}}`, publicKey being the canonical public form to publish (`identity_key`), signing
 * an ECDSA P-256 key and agreement an ECDH P-256 key (usable as a key pair). Extractable, to
 * be wrapped once with wrapIdentity; then use the non-extractable one unwrapIdentity gives.
 */
export async function generateIdentity(){
  const signing = (await subtle().generateKey(ECDSA, true, ["sign", "verify"])).privateKey
  const agreement = (await subtle().generateKey(ECDH, true, ["deriveBits"])).privateKey
  return identityOf({privateKey: signing, point: await pointOf(signing)}, {privateKey: agreement, point: await pointOf(agreement)})
}

/** The identity of two private scalars (Uint8Arrays of 32 big-endian bytes): for test vectors. */
export async function identityFromPrivateScalars(signingScalar, agreementScalar){
  return identityOf(await importScalar(signingScalar, ECDSA, ["sign"]), await importScalar(agreementScalar, ECDH, ["deriveBits"]))
}

/** The identity of two private JWK texts (any member order, extra members ignored): for tests. */
export async function identityFromPrivateJwks(signingJwkText, agreementJwkText){
  return identityOf(await importPrivateJwk(signingJwkText, ECDSA, ["sign"]), await importPrivateJwk(agreementJwkText, ECDH, ["deriveBits"]))
}

/**
 * The canonical private JWK texts of an extractable identity: `{signing, agreement}`. An
 * unwrapped identity is not extractable (invalid_argument). Secret: for tests and harnesses.
 */
export async function identityPrivateJwks(identity){
  checkIdentity(identity, "the identity")
  checkExtractable(identity.signing.privateKey, "the identity's signing key")
  checkExtractable(identity.agreement.privateKey, "the identity's agreement key")
  return {signing: await canonicalPrivate(identity.signing.privateKey), agreement: await canonicalPrivate(identity.agreement.privateKey)}
}

const identityAad = (half, userId) => encoder.encode(`hearth/identity-${half}|${userId}`)

/**
 * Encrypts an extractable identity's private keys under the wrap key for the account
 * `userId`: `{signing: "v1.…", agreement: "v1.…"}`, the `identity_private_key` to store on
 * the server. `options.signingIv`, `options.agreementIv` (12 bytes) are for tests only.
 */
export async function wrapIdentity(wrapKey, userId, identity, {signingIv, agreementIv} = {}){
  checkWrapKey(wrapKey)
  checkId(userId, "the user id")
  checkIdentity(identity, "the identity")
  checkExtractable(identity.signing.privateKey, "the identity's signing key")
  checkExtractable(identity.agreement.privateKey, "the identity's agreement key")
  const signingNonce = checkNonce(signingIv, "the signing IV")
  const agreementNonce = checkNonce(agreementIv, "the agreement IV")
  return {
    signing: await wrapJwk(wrapKey, signingNonce, identityAad("signing", userId), identity.signing.privateKey),
    agreement: await wrapJwk(wrapKey, agreementNonce, identityAad("agreement", userId), identity.agreement.privateKey),
  }
}

/**
 * Decrypts an account's `identity_private_key` (the object wrapIdentity gives, or its JSON
 * text) with its published `publicKey` (object or text): the identity, non-extractable unless
 * `options.extractable`. Both private keys are checked to belong to the public key (a
 * signature of a random challenge; an ECDH comparison): otherwise invalid_key.
 */
export async function unwrapIdentity(wrapKey, userId, wrapped, publicKey, {extractable = false} = {}){
  checkWrapKey(wrapKey)
  checkId(userId, "the user id")
  checkExtractableOption(extractable)
  let halves = wrapped
  if(typeof wrapped === "string"){
    try { halves = JSON.parse(wrapped) } catch { fail("malformed", "the wrapped identity is not a JSON object") }
  }
  if(!isObject(halves)){ fail("malformed", "the wrapped identity is not an object") }
  const signingSealed = envelope(member(halves, "signing"), VERSION)
  const agreementSealed = envelope(member(halves, "agreement"), VERSION)
  const signing = await unwrapJwk(wrapKey, identityAad("signing", userId), signingSealed, ECDSA, ["sign"], extractable)
  const agreement = await unwrapJwk(wrapKey, identityAad("agreement", userId), agreementSealed, ECDH, ["deriveBits"], extractable)
  const identity = await parseIdentity(publicKey)
  if(!await signingMatches(signing, identity.signing)){ fail("invalid_key", "the identity key's signing key does not belong to the wrapped one") }
  if(!await agreementMatches(agreement, identity.agreement)){ fail("invalid_key", "the identity key's agreement key does not belong to the wrapped one") }
  return identityOf({privateKey: signing, point: identity.signing}, {privateKey: agreement, point: identity.agreement})
}

/** The canonical text of an identity's public form (the object or its JSON text); else invalid_key. */
export async function parseIdentityKey(publicKey){
  return (await parseIdentity(publicKey)).text
}

/**
 * The identity fingerprint a client pins: SHA-256("hearth/identity|" ‖ signing point ‖
 * agreement point), 64 lowercase hex digits.
 */
export async function identityFingerprint(publicKey){
  const {signing, agreement} = await parseIdentity(publicKey)
  const bytes = concat(encoder.encode("hearth/identity|"), uncompressed(signing), uncompressed(agreement))
  return hex(new Uint8Array(await subtle().digest("SHA-256", bytes)))
}

/** One party's 30 digits of a safety number: six 5-digit groups of its digest. */
async function safetyDigits(id, {signing, agreement}){
  const bytes = concat(encoder.encode(`hearth/safety-number|${id}|`), uncompressed(signing), uncompressed(agreement))
  const digest = new Uint8Array(await subtle().digest("SHA-256", bytes))
  const groups = []
  for(let i = 0; i < 6; i++){
    // 40 bits: exact in a double (below 2^53) with * and +, which bitwise operators (32 bits) are not.
    const value = digest.subarray(5 * i, 5 * i + 5).reduce((value, byte) => value * 256 + byte, 0)
    groups.push(String(value % 100000).padStart(5, "0"))
  }
  return groups.join("")
}

/**
 * The safety number of two accounts (ids and identity keys, object or text), which both people
 * compare: 60 digits in 12 groups of 5 separated by single spaces, the digits of the party
 * whose id sorts first before the other's, so that it is the same in either argument order.
 */
export async function safetyNumber(idA, publicKeyA, idB, publicKeyB){
  checkId(idA, "the first id")
  checkId(idB, "the second id")
  const a = await safetyDigits(idA, await parseIdentity(publicKeyA))
  const b = await safetyDigits(idB, await parseIdentity(publicKeyB))
  // Equal ids (one account, not two) keep the argument order, as the Rust client does.
  return (idA <= idB ? a + b : b + a).match(/.{5}/g).join(" ")
}

// ---------------------------------------------------------------------------------------------
// Signed conversation keys (docs/e2e.md § Signed conversation keys)

const conversationKeyStatement = (userId, conversationId, canonical) =>
  encoder.encode(`hearth/conversation-key|${userId}|${conversationId}|${canonical}`)

/**
 * Signs a conversation public JWK (text; extra members ignored) with the identity of the
 * account `userId` for `conversationId`: the `public_key` to set, the canonical JWK with a
 * last member `"signature"` (ECDSA P-256/SHA-256, r‖s, base64url).
 */
export async function signConversationKey(identity, userId, conversationId, publicJwk){
  checkIdentity(identity, "the identity")
  checkId(userId, "the user id")
  checkId(conversationId, "the conversation id")
  const canonical = canonicalPublic(await publicPoint(publicJwk))
  const signature = new Uint8Array(await subtle().sign(ECDSA_SHA256, identity.signing.privateKey,
    conversationKeyStatement(userId, conversationId, canonical)))
  return `${canonical.slice(0, -1)},"signature":"${b64(signature)}"}`
}

/**
 * Checks a member's signed conversation key (text or object) against that member's identity
 * key (object or text; the pinned one), user id and conversation id: the canonical public JWK
 * (without the signature) to encrypt to. A key that is not a P-256 public JWK rejects with
 * invalid_key; a signature that is missing, not 64 bytes of base64url or does not verify, with
 * "signature".
 */
export async function verifyConversationKey(identityPublicKey, userId, conversationId, signedPublicKey){
  checkId(userId, "the user id")
  checkId(conversationId, "the conversation id")
  const identity = await parseIdentity(identityPublicKey)
  let members = signedPublicKey
  if(typeof signedPublicKey === "string"){ members = jwkMembers(signedPublicKey) }
  if(!isObject(members)){ fail("invalid_key", "the signed key is not a JSON object") }
  const point = coordinates(members)
  await importPublic(point)
  const canonical = canonicalPublic(point)
  const encoded = member(members, "signature")
  if(typeof encoded !== "string"){ fail("signature", "the key has no signature") }
  const signature = unb64(encoded)
  if(signature?.length !== SIGNATURE_LENGTH){ fail("signature", "the signature is not the base64url of 64 bytes") }
  const verifier = await importPublic(identity.signing, ECDSA, ["verify"])
  const valid = await subtle().verify(ECDSA_SHA256, verifier, signature, conversationKeyStatement(userId, conversationId, canonical))
  if(!valid){ fail("signature", "the signature does not verify for this identity, user and conversation") }
  return canonical
}

// ---------------------------------------------------------------------------------------------
// Messages v2 (docs/e2e.md § Messages)

const isCount = value => Number.isSafeInteger(value) && value >= 0

/** Whether a message object has the header docs/e2e.md requires (extra members are not looked at). */
const validMessage = message => isObject(message)
  && typeof message.id === "string" && ID.test(message.id)
  && (message.edit_of === null || (typeof message.edit_of === "string" && ID.test(message.edit_of)))
  && isCount(message.sent_at) && isCount(message.seq)
  && typeof message.stream === "string" && STREAM.test(message.stream)
  && typeof message.text === "string" && isWellFormed(message.text)

/**
 * The padded plaintext of a message: its JSON with exactly these members in this order (as
 * serde_json writes the Rust client's struct), then 0x80 and zeros to a multiple of 256 bytes,
 * so that the server learns a message's length only to 256-byte buckets.
 */
function padded(message){
  if(!validMessage(message)){
    fail("invalid_argument", "the message is not {id, sent_at, edit_of, stream, seq, text} with ids, counts from 0 to 2^53 - 1, 16 hex digits and a well-formed string")
  }
  const {id, sent_at, edit_of, stream, seq, text} = message
  const json = encoder.encode(JSON.stringify({id, sent_at, edit_of, stream, seq, text}))
  const out = new Uint8Array(Math.ceil((json.length + 1) / PADDING_BLOCK) * PADDING_BLOCK)
  out.set(json)
  out[json.length] = 0x80
  json.fill(0)
  return out
}

/** The message of a decrypted padded plaintext: malformed (bad padding or header) or not_text. */
function unpadded(plaintext){
  let end = plaintext.length - 1
  while(end >= 0 && plaintext[end] === 0){ end-- }
  if(end < 0 || plaintext[end] !== 0x80){ fail("malformed", "the plaintext is not padded with 0x80 and zeros") }
  const json = decodeUtf8(plaintext.subarray(0, end))
  if(json === null){ fail("not_text", "the decrypted message is not UTF-8 text") }
  let message
  try { message = JSON.parse(json) } catch { fail("malformed", "the decrypted message is not JSON") }
  if(!validMessage(message)){ fail("malformed", "the decrypted message's header is not valid") }
  const {id, sent_at, edit_of, stream, seq, text} = message
  return {id, sent_at, edit_of, stream, seq, text}
}

async function sealMessage(mode, own, theirPublicJwk, senderId, recipientId, conversationId, message, nonce){
  const iv = checkNonce(nonce, "the nonce")
  const plaintext = padded(message)
  try {
    const key = await messageKey(own, theirPublicJwk, senderId, recipientId, conversationId, mode)
    return await seal(key, iv, encoder.encode(binding(mode, senderId, recipientId, conversationId).aad), plaintext, mode)
  } finally {
    plaintext.fill(0)
  }
}

async function openMessage(mode, own, theirPublicJwk, senderId, recipientId, conversationId, content){
  const key = await messageKey(own, theirPublicJwk, senderId, recipientId, conversationId, mode)
  const plaintext = await open(key, encoder.encode(binding(mode, senderId, recipientId, conversationId).aad), content, mode)
  try {
    return unpadded(plaintext)
  } finally {
    plaintext.fill(0)
  }
}

/**
 * Encrypts a message object `{id, sent_at, edit_of, stream, seq, text}` from `sender` (a key
 * pair; its id `senderId`) to the member `recipientId` whose conversation public JWK (accepted
 * by verifyConversationKey; a signature member is ignored) is `recipientPublicJwk`, in
 * `conversationId`: the `content` "v2.…" for that recipient (and the same way to the sender
 * itself). `options.nonce` (12 bytes) is for test vectors only.
 */
export async function encryptMessage(sender, senderId, recipientPublicJwk, recipientId, conversationId, message, {nonce} = {}){
  checkKeyPair(sender, "the sender")
  checkId(senderId, "the sender id")
  checkId(recipientId, "the recipient id")
  checkId(conversationId, "the conversation id")
  return sealMessage("v2", sender, recipientPublicJwk, senderId, recipientId, conversationId, message, nonce)
}

/**
 * Decrypts a "v2.…" `content` to `recipient` (a key pair, possibly non-extractable; its id
 * `recipientId`) from `senderId` whose conversation public JWK is `senderPublicJwk`, in
 * `conversationId`: the message object, to be checked with a DeliveryChecker.
 */
export async function decryptMessage(recipient, recipientId, senderPublicJwk, senderId, conversationId, content){
  checkKeyPair(recipient, "the recipient")
  checkId(recipientId, "the recipient id")
  checkId(senderId, "the sender id")
  checkId(conversationId, "the conversation id")
  return openMessage("v2", recipient, senderPublicJwk, senderId, recipientId, conversationId, content)
}

/**
 * Encrypts a message object from `senderIdentity` (its account `senderId`) to the identity
 * key (object or text) of `recipientId`, who has no accepted conversation key yet, in
 * `conversationId`: the `content` "v2i.…". `options.nonce` (12 bytes) is for test vectors only.
 */
export async function encryptToIdentity(senderIdentity, senderId, recipientIdentityKey, recipientId, conversationId, message, {nonce} = {}){
  checkIdentity(senderIdentity, "the sender identity")
  checkId(senderId, "the sender id")
  checkId(recipientId, "the recipient id")
  checkId(conversationId, "the conversation id")
  const recipient = canonicalPublic((await parseIdentity(recipientIdentityKey)).agreement)
  return sealMessage("v2i", senderIdentity.agreement, recipient, senderId, recipientId, conversationId, message, nonce)
}

/**
 * Decrypts a "v2i.…" `content` to `recipientIdentity` (its account `recipientId`) from
 * `senderId` whose identity key (object or text) is `senderIdentityKey`, in `conversationId`.
 */
export async function decryptFromIdentity(recipientIdentity, recipientId, senderIdentityKey, senderId, conversationId, content){
  checkIdentity(recipientIdentity, "the recipient identity")
  checkId(recipientId, "the recipient id")
  checkId(senderId, "the sender id")
  checkId(conversationId, "the conversation id")
  const sender = canonicalPublic((await parseIdentity(senderIdentityKey)).agreement)
  return openMessage("v2i", recipientIdentity.agreement, sender, senderId, recipientId, conversationId, content)
}

// ---------------------------------------------------------------------------------------------
// Checking what the server delivered (docs/e2e.md § Checking what the server delivered)

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year, month, day){
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146097 + dayOfEra - 719468
}

const daysInMonth = (year, month) => month === 2
  ? ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28)
  : [4, 6, 9, 11].includes(month) ? 30 : 31

/**
 * Milliseconds since the epoch of a server time (RFC 3339, 0 to 9 fraction digits, Z or an
 * offset), truncated: parsed here because Date.parse is not required to take more than 3
 * fraction digits, and rounds where the Rust client truncates.
 */
function parseTime(text, what){
  const match = typeof text === "string" ? RFC3339.exec(text) : null
  if(!match){ fail("invalid_argument", `${what} is not an RFC 3339 time`) }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number)
  const millis = Number((match[7] ?? "").padEnd(3, "0").slice(0, 3))
  const offset = match[8] ? 0 : (match[9] === "-" ? -1 : 1) * (Number(match[10]) * 60 + Number(match[11]))
  const valid = month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month)
    && hour <= 23 && minute <= 59 && second <= 59 && Number(match[10] ?? 0) <= 23 && Number(match[11] ?? 0) <= 59
  if(!valid){ fail("invalid_argument", `${what} is not a valid RFC 3339 time`) }
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offset) * 60000 + second * 1000 + millis
}

/**
 * Checks each decrypted message against what the server says about it, in the order the
 * server lists a conversation's messages (oldest first): one checker per conversation view,
 * since "reordered" depends on the messages seen before.
 */
export class DeliveryChecker {
  /** The highest seq seen per sender + "|" + stream, for messages that are not edits. */
  #highest = new Map()

  /**
   * The flags of one message, in this order, each at most once: "substituted" (its header
   * does not fit its message_group or edited state), "redated" (the server's time is more
   * than 15 minutes from sent_at), "reordered" (not after the sender's stream's last seq).
   * `delivered` is `{message_group, sender, inserted_at, updated_at}` as the server sends it;
   * `message` what decryptMessage or decryptFromIdentity gave. Synchronous: it does no
   * cryptography, and the order of the calls is what it checks.
   */
  check(delivered, message){
    if(!isObject(delivered)){ fail("invalid_argument", "the delivered message is not an object") }
    const group = checkId(delivered.message_group, "the message group")
    const sender = checkId(delivered.sender, "the sender")
    const inserted = parseTime(delivered.inserted_at, "inserted_at")
    const updated = parseTime(delivered.updated_at, "updated_at")
    if(!validMessage(message)){ fail("invalid_argument", "the message is not a decrypted message object") }
    const flags = []
    const edited = inserted !== updated
    const isEdit = message.edit_of !== null
    const genuine = isEdit ? message.edit_of === group && edited : message.id === group && !edited
    if(!genuine){ flags.push("substituted") }
    if(Math.abs((isEdit ? updated : inserted) - message.sent_at) > DELIVERY_TOLERANCE_MS){ flags.push("redated") }
    if(!isEdit){
      const stream = sender + "|" + message.stream
      const highest = this.#highest.get(stream)
      if(highest !== undefined && message.seq <= highest){
        flags.push("reordered")
      } else {
        this.#highest.set(stream, message.seq)
      }
    }
    return flags
  }
}
