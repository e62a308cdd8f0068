// hearth with the official `phoenix` JavaScript client, unmodified: three users over REST and
// sockets, every seed-002 topic and event, presence with the privacy rules, binary frames, and
// a server restart that the clients ride out by themselves.
//
// The steps share state and run in order; after a failure the rest are skipped.
// Run by `cargo test -p hearth --test cli phoenix_js` (which sets HEARTH_URL and
// HEARTH_RESTART_URL), or by hand: `HEARTH_URL=http://127.0.0.1:4000 npm test` (the restart
// step is then skipped).

import {after} from "node:test"
import assert from "node:assert/strict"

import {RESTART_URL, SETTLE_MS, User, api, jwk, restartServer, sleep} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const SYSTEM = "system:general"
const STEP_TIMEOUT_MS = 20000

const step = scenario({timeout: STEP_TIMEOUT_MS})

let ann, bob, carol
let everyone = []
let privateId, groupId
const userTopic = user => `user:${user.id}`
const conversationTopic = id => `conversation:${id}`

after(async () => {
  await Promise.all(everyone.map(user => user.disconnect()))
})

step("three users register over REST", async () => {
  ;[ann, bob, carol] = await Promise.all(["ann", "bob", "carol"].map(name => User.register(name)))
  everyone = [ann, bob, carol]
  assert.equal(new Set(everyone.map(u => u.id)).size, 3)
  for(const user of everyone){
    assert.equal(user.session.user.display_name, user.name)
    assert.deepEqual(user.session.conversations, [])
  }
})

step("each connects, joins user:{own id} and system:general, and sees only themselves", async () => {
  for(const user of everyone){ user.connect() }
  await Promise.all(everyone.map(async user => {
    assert.deepEqual(await user.join(userTopic(user)), {})
    assert.deepEqual(await user.join(SYSTEM), {})
  }))
  await Promise.all(everyone.map(user => user.seesExactly([user])))
  const metas = ann.presence.list((id, {metas}) => metas)[0]
  assert.equal(metas.length, 1)
  assert.match(metas[0].phx_ref, /^[A-Za-z0-9_-]{16}$/)
})

step("refused joins: another user's topic, unknown topics", async () => {
  assert.equal(await carol.refusedJoin(userTopic(ann)), "you can only join your own user topic")
  assert.equal(await carol.refusedJoin("lobby:1"), "unknown topic")
  assert.equal(await carol.refusedJoin("conversation:00000000-0000-7000-8000-000000000000"), "conversation not found")
  // The socket is still in use afterwards.
  assert.match(await carol.refused(SYSTEM, "no_such_event"), /unknown event/)
})

step("binary frames round-trip (ArrayBuffer push, binary reply)", async () => {
  const bytes = Uint8Array.from({length: 256}, (_, i) => (i * 7 + 3) & 0xff)
  const {status, response} = await ann.push(SYSTEM, "echo_binary", bytes.buffer.slice(0))
  assert.equal(status, "ok")
  assert.ok(response instanceof ArrayBuffer, `a binary reply decodes to an ArrayBuffer, got ${response}`)
  assert.deepEqual(new Uint8Array(response), bytes)
  const empty = await ann.push(SYSTEM, "echo_binary", new ArrayBuffer(0))
  assert.equal(empty.status, "ok")
  assert.equal(empty.response.byteLength, 0)
  // Binary pushes to JSON events get a JSON error reply, which the client decodes as usual.
  const wrong = await ann.push(SYSTEM, "set_hidden", Uint8Array.of(1, 2, 3).buffer)
  assert.deepEqual(wrong, {status: "error", response: {error: "json_expected", reason: "expected a JSON payload"}})
  assert.match(await ann.refused(SYSTEM, "echo_binary", {not: "binary"}), /binary/)
})

step("a private conversation introduces ann and bob to each other, not to carol", async () => {
  const started = await ann.ok(SYSTEM, "start_private_conversation", {
    other_user_id: bob.id, public_key: jwk("ann"), private_key: {wrapped: "ann-private"},
  })
  privateId = started.conversation.id
  assert.equal(started.conversation.private, true)
  assert.equal(started.conversation.alias, null)
  for(const user of [ann, bob]){
    const announced = await user.expect(userTopic(user), "new_conversation")
    assert.equal(announced.conversation.id, privateId)
    assert.deepEqual([...announced.user_ids].sort(), [ann.id, bob.id].sort())
  }
  await ann.seesExactly([ann, bob])
  await bob.seesExactly([ann, bob])
  await sleep(SETTLE_MS)
  assert.deepEqual(carol.present(), [carol.id], "carol shares nothing with them")
  assert.equal(carol.received(userTopic(carol), "new_conversation").length, 0)
  assert.match(
    await ann.refused(SYSTEM, "start_private_conversation", {other_user_id: bob.id, public_key: {}, private_key: {}}),
    /already exists/,
  )
})

step("a hidden user is shown to nobody, not even new conversation partners", async () => {
  assert.equal(await carol.ok(SYSTEM, "set_hidden", {hidden: true}), "message_sent")
  await carol.seesExactly([])

  const started = await ann.ok(SYSTEM, "start_group_conversation", {
    user_ids: [bob.id, carol.id], public_key: jwk("ann"), private_key: {wrapped: "ann-group"}, alias: "Team",
  })
  groupId = started.conversation.id
  assert.equal(started.conversation.private, false)
  assert.equal(started.conversation.alias, "Team")
  for(const user of everyone){
    const announced = await user.expect(userTopic(user), "new_conversation", p => p.conversation.id === groupId)
    assert.deepEqual([...announced.user_ids].sort(), everyone.map(u => u.id).sort())
    assert.equal(announced.conversation.alias, "Team")
  }
  // carol, hidden, now sees her partners; they do not see her.
  await carol.seesExactly([ann, bob])
  await sleep(SETTLE_MS)
  assert.deepEqual(ann.present(), [ann.id, bob.id].sort())
  assert.deepEqual(bob.present(), [ann.id, bob.id].sort())
})

step("showing oneself appears to partners; hiding again disappears from their presence", async () => {
  await carol.ok(SYSTEM, "set_hidden", {hidden: false})
  await Promise.all(everyone.map(user => user.seesExactly(everyone)))
  await carol.ok(SYSTEM, "set_hidden", {hidden: true})
  await ann.seesExactly([ann, bob])
  await bob.seesExactly([ann, bob])
  await carol.ok(SYSTEM, "set_hidden", {hidden: false})
  await Promise.all(everyone.map(user => user.seesExactly(everyone)))
})

step("members join the group with conversation, read times, history and keys; keys are shared", async () => {
  const topic = conversationTopic(groupId)
  const replies = await Promise.all(everyone.map(user => user.join(topic)))
  for(const reply of replies){
    assert.deepEqual(
      Object.keys(reply).sort(),
      ["conversation", "delivered_times", "identity_keys", "messages", "private_key", "public_keys", "read_times"],
    )
    // Every member's identity: none has published one here.
    assert.deepEqual(reply.identity_keys, Object.fromEntries(everyone.map(u => [u.id, null])))
    assert.equal(reply.conversation.id, groupId)
    assert.equal(reply.conversation.alias, "Team")
    assert.deepEqual(reply.messages, {items: [], page_token: null})
    assert.deepEqual(Object.keys(reply.read_times).sort(), everyone.map(u => u.id).sort())
    assert.deepEqual(reply.public_keys[ann.id], jwk("ann"))
  }
  const [annJoin, bobJoin, carolJoin] = replies
  assert.deepEqual(annJoin.private_key, {wrapped: "ann-group"})
  assert.equal(bobJoin.private_key, null, "bob has not set keys yet")
  assert.equal(carolJoin.private_key, null)

  for(const [setter, others] of [[bob, [ann, carol]], [carol, [ann, bob]]]){
    await setter.ok(topic, "set_encryption_keys", {public_key: jwk(setter.name), private_key: {wrapped: setter.name}})
    for(const other of others){
      const keys = await other.expect(topic, "set_encryption_keys", p => p.user_id === setter.id)
      assert.deepEqual(keys, {user_id: setter.id, public_key: jwk(setter.name)})
    }
  }
  // A rejoin now carries everyone's keys and bob's own private key.
  await bob.leave(topic)
  const rejoined = await bob.join(topic)
  assert.deepEqual(rejoined.private_key, {wrapped: "bob"})
  assert.deepEqual(Object.keys(rejoined.public_keys).sort(), everyone.map(u => u.id).sort())
})

/** `{user id: "<prefix> for <name>"}` for `users`. */
const copies = (users, prefix = "") => Object.fromEntries(users.map(u => [u.id, `${prefix}for ${u.name}`]))

step("send, edit, delete: each member receives only their own copy", async () => {
  const topic = conversationTopic(groupId)
  const sent = await ann.ok(topic, "send_message", {encrypted_messages: copies(everyone)})
  assert.equal(sent.message.content, "for ann")
  assert.equal(sent.message.sender, ann.id)
  const group = sent.message.message_group
  for(const user of everyone){
    const delivered = await user.expect(userTopic(user), "new_message", p => p.message.message_group === group)
    assert.equal(delivered.conversation_id, groupId)
    assert.equal(delivered.message.content, `for ${user.name}`)
    assert.equal(delivered.message.sender, ann.id)
  }
  await sleep(SETTLE_MS)
  for(const user of everyone){
    const all = user.received(userTopic(user), "new_message", p => p.message.message_group === group)
    assert.deepEqual(all.map(p => p.message.content), [`for ${user.name}`], `${user.name} got only their copy`)
  }

  await ann.ok(topic, "edit_message", {message_group_id: group, encrypted_messages: copies(everyone, "edited ")})
  for(const user of everyone){
    const edited = await user.expect(userTopic(user), "edit_message", p => p.message.message_group === group)
    assert.equal(edited.message.content, `edited for ${user.name}`)
  }
  assert.equal(
    await bob.refused(topic, "edit_message", {message_group_id: group, encrypted_messages: copies(everyone)}),
    "not found",
    "only the sender edits",
  )

  await ann.ok(topic, "delete_message", {message_group_id: group})
  for(const user of [bob, carol]){
    assert.deepEqual(await user.expect(topic, "delete_message"), {message_group_id: group})
  }
  const history = await api("GET", `/api/messages?conversation_id=${groupId}`, {token: carol.token})
  assert.equal(history.status, 200)
  assert.deepEqual(history.body.items, [])
})

step("the wrong recipients are refused and the socket stays usable", async () => {
  const topic = conversationTopic(groupId)
  const missing = await ann.refused(topic, "send_message", {encrypted_messages: copies([ann, bob])})
  assert.match(missing, /exactly/)
  const outsider = {...copies(everyone), "00000000-0000-7000-8000-000000000000": "for nobody"}
  assert.match(await ann.refused(topic, "send_message", {encrypted_messages: outsider}), /exactly/)
  assert.match(await ann.refused(topic, "send_message", {encrypted_messages: "nope"}), /invalid payload/)
  const sent = await ann.ok(topic, "send_message", {encrypted_messages: copies(everyone, "still ")})
  assert.equal(
    (await carol.expect(userTopic(carol), "new_message", p => p.message.message_group === sent.message.message_group)).message.content,
    "still for carol",
  )
})

step("typing, reading and aliases reach the other members", async () => {
  const topic = conversationTopic(groupId)
  for(const event of ["start_typing", "finish_typing"]){
    await bob.ok(topic, event)
    for(const other of [ann, carol]){
      assert.deepEqual(await other.expect(topic, event), {user_id: bob.id})
    }
  }
  await carol.ok(topic, "read_conversation")
  for(const other of [ann, bob]){
    const read = await other.expect(topic, "read_conversation")
    assert.equal(read.user_id, carol.id)
    assert.ok(!Number.isNaN(Date.parse(read.read_at)), `read_at is a time: ${read.read_at}`)
  }
  const changed = await ann.ok(topic, "change_alias", {alias: "Team 2"})
  assert.equal(changed.conversation.alias, "Team 2")
  for(const other of [bob, carol]){
    assert.deepEqual(await other.expect(topic, "update_alias"), {conversation_id: groupId, alias: "Team 2"})
  }
})

step("a private conversation refuses changes, and non-members cannot join it", async () => {
  const topic = conversationTopic(privateId)
  const annJoin = await ann.join(topic)
  assert.deepEqual(annJoin.private_key, {wrapped: "ann-private"})
  await bob.join(topic)
  assert.match(await ann.refused(topic, "modify_conversation", {new_members: [carol.id]}), /./)
  assert.match(await ann.refused(topic, "change_alias", {alias: "no"}), /./)
  assert.match(await ann.refused(topic, "leave_conversation"), /./)
  assert.equal(await carol.refusedJoin(topic), "conversation not found")
  // carol's socket is unaffected.
  await carol.ok(conversationTopic(groupId), "start_typing")
})

step("leaving the group: the others are told, the leaver's channel is closed", async () => {
  const topic = conversationTopic(groupId)
  const channel = bob.channels.get(topic)
  const closed = new Promise(resolve => channel.onClose(resolve))
  await bob.ok(topic, "leave_conversation")
  for(const other of [ann, carol]){
    assert.deepEqual(await other.expect(topic, "leave_conversation"), {user_id: bob.id})
  }
  await closed
  assert.equal(channel.state, "closed", "phx_close: the client does not rejoin")
  const sent = await ann.ok(topic, "send_message", {encrypted_messages: copies([ann, carol], "after bob ")})
  const delivered = await carol.expect(userTopic(carol), "new_message", p => p.message.message_group === sent.message.message_group)
  assert.equal(delivered.message.content, "after bob for carol")
  assert.equal(bob.received(userTopic(bob), "new_message", p => p.message.message_group === sent.message.message_group).length, 0)
})

step("set_display_name reaches everyone on system:general", async () => {
  await carol.ok(SYSTEM, "set_display_name", {display_name: "Caroline"})
  for(const user of everyone){
    assert.deepEqual(await user.expect(SYSTEM, "set_display_name"), {user_id: carol.id, display_name: "Caroline"})
  }
  assert.match(await carol.refused(SYSTEM, "set_display_name", {display_name: ""}), /display_name/)
})

step("heartbeats are answered: no socket has reconnected", async () => {
  // Every second; one unanswered for a second closes and reopens the socket.
  await Promise.all(everyone.map(user => user.waitFor(() => user.heartbeats >= 2, "two heartbeat replies")))
  for(const user of everyone){
    assert.equal(user.opens, 1, `${user.name}'s socket opened once`)
    assert.equal(user.closes, 0, `${user.name}'s socket never closed`)
  }
})

step("a server restart: sockets reconnect and rejoin by themselves, nothing sent meanwhile is lost", async () => {
  const topic = conversationTopic(privateId)
  // bob goes away; ann sends three messages he does not see arrive.
  await bob.disconnect()
  const away = []
  for(let i = 1; i <= 3; i++){
    const sent = await ann.ok(topic, "send_message", {encrypted_messages: copies([ann, bob], `away ${i} `)})
    away.push(sent.message.message_group)
  }

  const before = {
    opens: ann.opens,
    joins: ann.joinReplies.get(topic).length,
    userJoins: ann.joinReplies.get(userTopic(ann)).length,
    states: ann.presenceStates,
    carolOpens: carol.opens,
  }
  await restartServer()

  // ann's socket, left connected, reconnects and every channel rejoins on its own.
  await ann.waitFor(() => ann.opens > before.opens, "a reconnect after the restart")
  assert.ok(ann.closes >= 1)
  await ann.waitFor(() => ann.joinReplies.get(topic).length > before.joins, "a rejoin of the conversation")
  await ann.waitFor(() => ann.joinReplies.get(userTopic(ann)).length > before.userJoins, "a rejoin of user:{id}")
  await ann.waitFor(() => ann.presenceStates > before.states, "a fresh presence_state")
  const annRejoin = ann.joinReplies.get(topic).at(-1)
  assert.deepEqual(annRejoin.private_key, {wrapped: "ann-private"}, "keys survive the restart")
  await carol.waitFor(() => carol.opens > before.carolOpens, "carol's reconnect")

  // bob comes back: the same Socket connects again and its channels rejoin; the join reply
  // of the conversation carries the three messages, his copies, newest first.
  const bobJoins = bob.joinReplies.get(topic).length
  bob.socket.connect()
  await bob.waitFor(() => bob.joinReplies.get(topic).length > bobJoins, "bob's rejoin of the conversation")
  const history = bob.joinReplies.get(topic).at(-1).messages.items
  assert.deepEqual(
    history.slice(0, 3).map(m => [m.message_group, m.content, m.sender]),
    [3, 2, 1].map(i => [away[i - 1], `away ${i} for bob`, ann.id]),
  )
  const rest = await api("GET", `/api/messages?conversation_id=${privateId}`, {token: bob.token})
  assert.equal(rest.status, 200)
  assert.deepEqual(rest.body.items.slice(0, 3).map(m => m.content), ["away 3 for bob", "away 2 for bob", "away 1 for bob"])

  // Presence is rebuilt from the rejoins, with the same rules.
  await ann.seesExactly(everyone)
  await bob.seesExactly([ann, bob])
  await carol.seesExactly([ann, carol])

  // Both can talk again, live.
  await bob.waitFor(() => bob.channels.get(userTopic(bob)).state === "joined", "bob's user channel joined")
  const again = await ann.ok(topic, "send_message", {encrypted_messages: copies([ann, bob], "back ")})
  const live = await bob.expect(userTopic(bob), "new_message", p => p.message.message_group === again.message.message_group)
  assert.equal(live.message.content, "back for bob")
  await bob.ok(topic, "start_typing")
  assert.deepEqual(await ann.expect(topic, "start_typing", p => p.user_id === bob.id), {user_id: bob.id})
}, {skip: RESTART_URL ? false : "HEARTH_RESTART_URL is not set (the Rust runner sets it)"})
