// The web client's Keyring (web/js/keys.js) in Node.js, against a stand-in for the server: the
// same cases as the Rust client's Keyring tests (crates/hearth-client/src/trust/keyring.rs),
// which state the rules both clients keep (docs/e2e.md, "What clients keep and refuse").

import {test} from "node:test"
import assert from "node:assert/strict"

import * as e2e from "../../../web/js/e2e.js"
import {Keyring, TrustError, TrustStore, memoryStorage, uuidv7} from "../../../web/js/keys.js"

/** A person with an identity and a keyring of their own (pins in `storage`). */
async function person(storage = memoryStorage()){
  const id = crypto.randomUUID()
  const wrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const identity = await e2e.generateIdentity()
  return {id, wrapKey, identity, storage, keyring: new Keyring(id, wrapKey, identity, new TrustStore(id, storage))}
}

const identityJson = who => JSON.parse(who.identity.publicKey)

/** What the server stores of a conversation, as a join reply gives it. */
class Server {
  constructor(id, people){
    this.id = id
    this.assistant = false
    this.members = people.map(p => p.id)
    this.publicKeys = {}
    this.privateKeys = {}
    this.identities = Object.fromEntries(people.map(p => [p.id, identityJson(p)]))
    this.messages = []
  }

  store(user, keys){
    this.publicKeys[user] = keys.public_key
    this.privateKeys[user] = keys.private_key
  }

  joinReply(user, items = []){
    return {
      conversation: {id: this.id, private: false, alias: null, assistant: this.assistant,
        inserted_at: "2026-12-06T10:00:00Z", updated_at: "2026-12-06T10:00:00Z"},
      messages: {items, page_token: null},
      public_keys: {...this.publicKeys},
      private_key: this.privateKeys[user] ?? null,
      read_times: Object.fromEntries(this.members.map(m => [m, null])),
      identity_keys: {...this.identities},
    }
  }

  /** Joins `who`, storing the keys their keyring publishes; the notices. */
  async join(who, items = []){
    const joining = await who.keyring.join(this.joinReply(who.id, items))
    if(joining.publish){ this.store(who.id, joining.publish) }
    return joining.notices
  }
}

function delivered(outgoing, sender, to, at = new Date()){
  const time = at.toISOString()
  return {id: crypto.randomUUID(), message_group: outgoing.message_group_id, sender, content: outgoing.copies[to], inserted_at: time, updated_at: time}
}

/** Ada starts a conversation with Bob and joins it; Bob has not joined. */
async function started(ada, bob){
  const keys = await ada.keyring.startConversation()
  const server = new Server(keys.conversation_id, [ada, bob])
  server.store(ada.id, keys)
  assert.deepEqual(await server.join(ada), [])
  return server
}

async function refusedWith(promise, code, users){
  await assert.rejects(promise, error => {
    assert.ok(error instanceof TrustError, String(error))
    assert.equal(error.code, code)
    if(users){ assert.deepEqual(error.users, users) }
    return true
  })
}

test("uuidv7: version 7, variant 10, time first, in the order made", () => {
  const ids = Array.from({length: 5000}, () => uuidv7())
  for(const id of ids){ assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/) }
  assert.deepEqual([...ids].sort(), ids, "ids made one after another sort in that order")
  assert.equal(new Set(ids).size, ids.length)
  const at = uuidv7(Date.UTC(2030, 0, 1))
  assert.equal(parseInt(at.replace(/-/g, "").slice(0, 12), 16) >= Date.UTC(2030, 0, 1), true)
})

test("own private keys are used as non-extractable re-imports: started, joined, made anew", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  const own = () => ada.keyring.conversations.get(server.id).own.privateKey
  assert.equal(own().extractable, false, "the key of a conversation started here")
  await server.join(ada)
  assert.equal(own().extractable, false, "unwrapped from the join reply")
  await server.join(bob)
  assert.equal(bob.keyring.conversations.get(server.id).own.privateKey.extractable, false, "made on the first join")
  await ada.keyring.replaceOwnKey(server.id)
  assert.equal(own().extractable, false, "made anew")
})

test("a member who never joined gets a copy for their identity and reads it later", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  const sent = await ada.keyring.seal(server.id, "hello Bob")
  assert.match(sent.copies[bob.id], /^v2i\./)
  assert.match(sent.copies[ada.id], /^v2\./)
  const first = delivered(sent, ada.id, bob.id)
  assert.deepEqual(await server.join(bob), [])
  const opened = await bob.keyring.open(server.id, first)
  assert.deepEqual(opened, {text: "hello Bob", error: null, flags: [], unchecked: false, sentAt: opened.sentAt})
  assert.ok(Math.abs(opened.sentAt - Date.now()) < 60000)
  // Bob published a signed key: Ada's next copies use it.
  await server.join(ada)
  assert.equal(ada.keyring.memberKeyState(server.id, bob.id), "verified")
  const next = await ada.keyring.seal(server.id, "again")
  assert.match(next.copies[bob.id], /^v2\./)
  assert.equal((await bob.keyring.open(server.id, delivered(next, ada.id, bob.id))).text, "again")
  assert.equal((await ada.keyring.open(server.id, delivered(next, ada.id, ada.id))).text, "again")
})

test("the join's page is opened oldest first and its checker goes on with live messages", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  const sent = []
  for(const text of ["one", "two", "three"]){ sent.push(await ada.keyring.seal(server.id, text)) }
  // The server lists a page newest first.
  const page = sent.map(s => delivered(s, ada.id, bob.id)).reverse()
  const joining = await bob.keyring.join(server.joinReply(bob.id, page))
  assert.deepEqual(joining.opened.map(o => [o.text, o.flags]), [["three", []], ["two", []], ["one", []]])
  // A copy of "two" delivered live again after the page is out of order (and moved).
  const replayed = {...delivered(sent[1], ada.id, bob.id), message_group: uuidv7()}
  assert.deepEqual((await bob.keyring.open(server.id, replayed)).flags, ["substituted", "reordered"])
})

test("a key published with a token alone is refused and not written to", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  await server.join(bob)
  await server.join(ada)
  // Someone with Bob's access token sets a key of their own: unsigned, or signed by an
  // identity that is not Bob's.
  const attacker = await e2e.generateKeyPair()
  assert.deepEqual(await ada.keyring.memberKeySet(server.id, bob.id, attacker.publicJwk), {kind: "key_refused", conversation: server.id, user: bob.id})
  const forged = await e2e.signConversationKey(await e2e.generateIdentity(), bob.id, server.id, attacker.publicJwk)
  assert.notEqual(await ada.keyring.memberKeySet(server.id, bob.id, JSON.parse(forged)), null, "as an object too")
  assert.equal(ada.keyring.memberKeyState(server.id, bob.id), "refused")
  const sent = await ada.keyring.seal(server.id, "door code is 4711")
  // Not to the attacker's key: to Bob's identity, which only Bob opens.
  assert.match(sent.copies[bob.id], /^v2i\./)
  const adaPublic = await e2e.verifyConversationKey(identityJson(ada), ada.id, server.id, server.publicKeys[ada.id])
  await assert.rejects(e2e.decryptMessage(attacker, bob.id, adaPublic, ada.id, server.id, sent.copies[bob.id]))
  assert.equal((await bob.keyring.open(server.id, delivered(sent, ada.id, bob.id))).text, "door code is 4711")
})

test("a changed identity blocks sending until acknowledged, and verified contacts say so", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  await server.join(bob)
  await server.join(ada)
  assert.deepEqual(ada.keyring.contactState(bob.id), {kind: "trusted", verified: false})
  const number = await ada.keyring.safetyNumber(bob.id)
  assert.match(number, /^(\d{5} ){11}\d{5}$/)
  assert.equal(number, await bob.keyring.safetyNumber(ada.id))
  ada.keyring.markVerified(bob.id)
  // The server presents another identity for Bob (a reset, or someone replacing it).
  server.identities[bob.id] = JSON.parse((await e2e.generateIdentity()).publicKey)
  const refused = {kind: "key_refused", conversation: server.id, user: bob.id}
  // His key was signed by the old identity, so it is not used either.
  assert.deepEqual(await server.join(ada), [{kind: "identity_changed", user: bob.id, wasVerified: true}, refused])
  await refusedWith(ada.keyring.seal(server.id, "hi"), "blocked", [bob.id])
  // Told once, not on every join.
  assert.deepEqual(await server.join(ada), [refused])
  ada.keyring.acknowledge(bob.id)
  assert.deepEqual(ada.keyring.contactState(bob.id), {kind: "trusted", verified: false})
  const sent = await ada.keyring.seal(server.id, "hi")
  assert.match(sent.copies[bob.id], /^v2i\./, "Bob's old key is not signed by his new identity")
  // A removed identity (a password reset) is a change too, reported live.
  assert.deepEqual(await ada.keyring.learnIdentity(bob.id, null), {kind: "identity_changed", user: bob.id, wasVerified: false})
  await refusedWith(ada.keyring.seal(server.id, "hi"), "blocked", [bob.id])
})

test("pins survive a new keyring of the same account, and a changed identity is seen after a reload", async () => {
  const storage = memoryStorage()
  const [ada, bob] = [await person(storage), await person()]
  const server = await started(ada, bob)
  await server.join(bob)
  await server.join(ada)
  ada.keyring.markVerified(bob.id)
  const reloaded = new Keyring(ada.id, ada.wrapKey, ada.identity, new TrustStore(ada.id, storage))
  assert.deepEqual(await reloaded.learnIdentity(bob.id, identityJson(bob)), null)
  assert.deepEqual(reloaded.contactState(bob.id), {kind: "trusted", verified: true})
  const other = await e2e.generateIdentity()
  assert.deepEqual(await reloaded.learnIdentity(bob.id, other.publicKey), {kind: "identity_changed", user: bob.id, wasVerified: true})
  // Another account in the same browser has pins of its own.
  const carol = new Keyring(crypto.randomUUID(), ada.wrapKey, ada.identity, new TrustStore(crypto.randomUUID(), storage))
  assert.equal(await carol.learnIdentity(bob.id, other.publicKey), null)
})

test("the server cannot turn a conversation into plain text", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  server.assistant = true
  assert.deepEqual(await server.join(ada), [{kind: "downgrade_refused", conversation: server.id}])
  assert.equal(ada.keyring.plaintextAllowed(server.id), false)
  assert.equal(ada.keyring.downgradeRefused(server.id), true)
  await ada.keyring.seal(server.id, "still encrypted")
  // A conversation first seen as the assistant's, with only the person in it, is plain.
  const plain = new Server(uuidv7(), [ada])
  plain.assistant = true
  assert.deepEqual(await plain.join(ada), [])
  assert.equal(ada.keyring.plaintextAllowed(plain.id), true)
  await refusedWith(ada.keyring.seal(plain.id, "x"), "not_end_to_end")
  // Even the assistant's conversation stops being plain once someone else is in it.
  plain.members.push(bob.id)
  plain.identities[bob.id] = identityJson(bob)
  assert.deepEqual(await plain.join(ada), [{kind: "downgrade_refused", conversation: plain.id}])
  assert.equal(ada.keyring.plaintextAllowed(plain.id), false)
  // And once seen end-to-end, never plain again, even alone.
  plain.members.pop()
  assert.deepEqual(await plain.join(ada), [{kind: "downgrade_refused", conversation: plain.id}])
})

test("an own key that does not open is reported, not replaced", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  // A key wrapped for another conversation (the old provisional trick) does not open here.
  const other = await e2e.generateKeyPair()
  server.privateKeys[ada.id] = await e2e.wrapPrivateKey(ada.wrapKey, uuidv7(), other)
  server.publicKeys[ada.id] = await e2e.signConversationKey(ada.identity, ada.id, server.id, other.publicJwk)
  const joining = await ada.keyring.join(server.joinReply(ada.id))
  assert.equal(joining.publish, null, "nothing is replaced silently")
  assert.deepEqual(joining.notices, [{kind: "own_key_unopenable", conversation: server.id}])
  assert.equal(ada.keyring.ownKeyState(server.id), "unopenable")
  await refusedWith(ada.keyring.seal(server.id, "x"), "own_key_unopenable")
  const replaced = await ada.keyring.replaceOwnKey(server.id)
  assert.equal(replaced.conversation_id, server.id)
  const unwrapped = await e2e.unwrapPrivateKey(ada.wrapKey, server.id, replaced.private_key, replaced.public_key)
  assert.equal(await e2e.verifyConversationKey(identityJson(ada), ada.id, server.id, replaced.public_key), unwrapped.publicJwk)
  await ada.keyring.seal(server.id, "x")
})

test("an unsigned key is signed on the next join, and old messages stay readable", async () => {
  const [ada, bob] = [await person(), await person()]
  const id = uuidv7()
  // Both set keys before identities existed.
  const [adaKey, bobKey] = [await e2e.generateKeyPair(), await e2e.generateKeyPair()]
  const server = new Server(id, [ada, bob])
  server.identities = {}
  for(const [who, key] of [[ada, adaKey], [bob, bobKey]]){
    server.publicKeys[who.id] = key.publicJwk
    server.privateKeys[who.id] = await e2e.wrapPrivateKey(who.wrapKey, id, key)
  }
  const old = await e2e.encrypt(bobKey, bob.id, adaKey.publicJwk, ada.id, id, "from before")
  const oldMessage = {id: uuidv7(), message_group: uuidv7(), sender: bob.id, content: old, inserted_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z"}
  // Ada's browser now has an identity; Bob's has not signed in since.
  server.identities[ada.id] = identityJson(ada)
  const joining = await ada.keyring.join(server.joinReply(ada.id))
  assert.ok(joining.publish, "Ada's key is signed now")
  assert.equal(joining.publish.private_key, server.privateKeys[ada.id], "the same wrapped key")
  assert.equal(await e2e.verifyConversationKey(identityJson(ada), ada.id, id, joining.publish.public_key), adaKey.publicJwk)
  server.store(ada.id, joining.publish)
  assert.equal(ada.keyring.memberKeyState(id, bob.id), "legacy")
  const opened = await ada.keyring.open(id, oldMessage)
  assert.deepEqual([opened.text, opened.unchecked], ["from before", true])
  await refusedWith(ada.keyring.seal(id, "x"), "waiting", [bob.id])
  // Bob signs in with a current client: his identity is published, his key signed.
  server.identities[bob.id] = identityJson(bob)
  await server.join(bob)
  await server.join(ada)
  assert.match((await ada.keyring.seal(id, "x")).copies[bob.id], /^v2\./)
  // From now on an unsigned key for Bob is refused.
  assert.notEqual(await ada.keyring.memberKeySet(id, bob.id, (await e2e.generateKeyPair()).publicJwk), null)
})

test("copies moved or redated by the server are flagged", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  await server.join(bob)
  await server.join(ada)
  const first = await ada.keyring.seal(server.id, "Yes, I approve the transfer of 10 EUR")
  const second = await ada.keyring.seal(server.id, "second")
  const genuine = [delivered(first, ada.id, bob.id), delivered(second, ada.id, bob.id)]
  const opened = await bob.keyring.openPage(server.id, [...genuine].reverse())
  assert.ok(opened.every(o => o.flags.length === 0), JSON.stringify(opened))
  await bob.keyring.join(server.joinReply(bob.id, [...genuine].reverse()))
  const replayed = delivered(first, ada.id, bob.id, new Date(Date.now() + 86400000))
  replayed.message_group = uuidv7()
  assert.deepEqual((await bob.keyring.open(server.id, replayed)).flags, ["substituted", "redated", "reordered"])
  // Newest first as listed: "first" listed as the newer one.
  const swapped = await bob.keyring.openPage(server.id, [genuine[0], genuine[1]])
  assert.deepEqual(swapped.map(o => o.flags), [["reordered"], []])
  // An edit: a new id, edit_of the group, and the server marks the message edited.
  const edit = await ada.keyring.seal(server.id, "first, edited", first.message_group_id)
  assert.equal(edit.message_group_id, first.message_group_id)
  const later = new Date(Date.now() + 1000).toISOString()
  const editCopy = {...delivered(edit, ada.id, bob.id), updated_at: later}
  assert.deepEqual(await bob.keyring.open(server.id, editCopy), {text: "first, edited", error: null, flags: [], unchecked: false, sentAt: (await bob.keyring.open(server.id, editCopy)).sentAt})
  // The edit passed off as a new message, and the original rolled back over the edit.
  assert.deepEqual((await bob.keyring.open(server.id, {...editCopy, updated_at: editCopy.inserted_at})).flags, ["substituted"])
  assert.deepEqual((await bob.keyring.open(server.id, {...genuine[0], updated_at: later})).flags, ["substituted", "reordered"])
})

test("a keyring whose identity does not open reads what its keys open and writes nothing", async () => {
  const [ada, bob] = [await person(), await person()]
  const server = await started(ada, bob)
  await server.join(bob)
  await server.join(ada)
  const sent = await ada.keyring.seal(server.id, "hello")
  const locked = new Keyring(bob.id, bob.wrapKey, null, new TrustStore(bob.id, bob.storage))
  const joining = await locked.join(server.joinReply(bob.id, [delivered(sent, ada.id, bob.id)]))
  assert.equal(joining.publish, null)
  assert.equal(joining.opened[0].text, "hello")
  await refusedWith(locked.seal(server.id, "x"), "identity_unopenable")
  await refusedWith(locked.startConversation(), "identity_unopenable")
})
