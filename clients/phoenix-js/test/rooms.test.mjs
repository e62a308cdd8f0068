// Rooms (issue 25) with the official `phoenix` JavaScript client, unmodified: rooms made,
// listed and joined over REST; `room:{id}` joined by members only (a private room is "not
// found" to anyone else); posts, edits, a moderator's deletion, typing and read marks pushed
// to the room; a member who leaves is cut off.
//
// The steps share state and run in order; after a failure the rest are skipped.
// Run by `cargo test -p hearth --test cli phoenix_js` (which sets HEARTH_URL), or by hand:
// `HEARTH_URL=http://127.0.0.1:4000 node --test test/rooms.test.mjs`.

import {after} from "node:test"
import assert from "node:assert/strict"

import {User, api} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const step = scenario({timeout: 20000})

let ann, bob, carol
let everyone = []
let lobby, secret
const roomTopic = id => `room:${id}`

after(async () => {
  await Promise.all(everyone.map(user => user.disconnect()))
})

async function createRoom(user, name, visibility){
  const {status, body} = await api("POST", "/api/rooms", {token: user.token, body: {name, visibility}})
  assert.equal(status, 201, JSON.stringify(body))
  return body.id
}

// The rooms of this test in `user`'s list (every page of it: the server may hold other
// tests' public rooms too).
const roomNames = async user => {
  const names = []
  let token = null
  do {
    const query = token ? `?page_token=${encodeURIComponent(token)}` : ""
    const {status, body} = await api("GET", `/api/rooms${query}`, {token: user.token})
    assert.equal(status, 200)
    for(const room of body.items.filter(room => [lobby, secret].includes(room.id))){
      names.push(`${room.name}${room.joined ? " (joined)" : ""}`)
    }
    token = body.page_token
  } while(token)
  return names
}

const history = async (user, id) => {
  const {status, body} = await api("GET", `/api/rooms/${id}/messages`, {token: user.token})
  assert.equal(status, 200, JSON.stringify(body))
  return body.items.map(post => post.text)
}

step("ann makes a public and a private room; bob sees only the public one", async () => {
  ;[ann, bob, carol] = await Promise.all(["ann", "bob", "carol"].map(name => User.register(name)))
  everyone = [ann, bob, carol]
  lobby = await createRoom(ann, "lobby", "public")
  secret = await createRoom(ann, "secret", "private")
  assert.deepEqual(await roomNames(ann), ["lobby (joined)", "secret (joined)"])
  assert.deepEqual(await roomNames(bob), ["lobby"])
  for(const user of everyone){ user.connect() }
})

step("only members join a room's topic; a private room is not found by anyone else", async () => {
  const joined = await ann.join(roomTopic(lobby))
  assert.equal(joined.room.name, "lobby")
  assert.deepEqual(joined.members, [{user_id: ann.id, moderator: true, read_at: null}])
  assert.deepEqual(joined.messages, {items: [], page_token: null})
  assert.equal(await carol.refusedJoin(roomTopic(lobby)), "you are not a member of this room")
  assert.equal(await carol.refusedJoin(roomTopic(secret)), "room not found")
  assert.equal(await carol.refusedJoin("room:00000000-0000-7000-8000-000000000000"), "room not found")
})

step("bob joins the public room; the room hears of it", async () => {
  const {status} = await api("POST", `/api/rooms/${lobby}/join`, {token: bob.token})
  assert.equal(status, 200)
  assert.deepEqual(await ann.expect(roomTopic(lobby), "member_joined"), {user_id: bob.id})
  const joined = await bob.join(roomTopic(lobby))
  assert.deepEqual(joined.members.map(m => m.user_id).sort(), [ann.id, bob.id].sort())
})

step("a post is acknowledged once stored and pushed to every member; a resend is stored once", async () => {
  const posted = await ann.ok(roomTopic(lobby), "post", {text: "welcome, bob", client_msg_id: "ann-1"})
  assert.equal(posted.sender, ann.id)
  assert.equal(posted.text, "welcome, bob")
  assert.deepEqual(await bob.expect(roomTopic(lobby), "new_post"), posted)
  const again = await ann.ok(roomTopic(lobby), "post", {text: "welcome, bob", client_msg_id: "ann-1"})
  assert.equal(again.id, posted.id)
  assert.deepEqual(await history(bob, lobby), ["welcome, bob"])
  assert.equal(await bob.refused(roomTopic(lobby), "post", {text: ""}), "text must be 1 to 4000 characters")
})

step("bob edits his post; ann, who moderates, deletes it; bob cannot delete hers", async () => {
  const topic = roomTopic(lobby)
  const posted = await bob.ok(topic, "post", {text: "thanks!"})
  await ann.expect(topic, "new_post", post => post.id === posted.id)
  const edited = await bob.ok(topic, "edit_post", {message_id: posted.id, text: "thanks, ann!"})
  assert.deepEqual(await ann.expect(topic, "edit_post"), edited)
  const mine = (await api("GET", `/api/rooms/${lobby}/messages`, {token: ann.token})).body.items.find(p => p.sender === ann.id)
  assert.equal(await bob.refused(topic, "delete_post", {message_id: mine.id}), "only the sender or a moderator may delete a post")
  assert.deepEqual(await ann.ok(topic, "delete_post", {message_id: posted.id}), {message_id: posted.id})
  assert.deepEqual(await bob.expect(topic, "delete_post"), {message_id: posted.id})
  assert.deepEqual(await history(ann, lobby), ["welcome, bob"])
})

step("typing and read marks reach the room", async () => {
  const topic = roomTopic(lobby)
  await bob.ok(topic, "start_typing")
  assert.deepEqual(await ann.expect(topic, "start_typing"), {user_id: bob.id})
  await bob.ok(topic, "finish_typing")
  assert.deepEqual(await ann.expect(topic, "finish_typing"), {user_id: bob.id})
  await bob.ok(topic, "read_room")
  const read = await ann.expect(topic, "read_room")
  assert.equal(read.user_id, bob.id)
  assert.ok(!Number.isNaN(Date.parse(read.read_at)))
})

step("search finds whole words of what was posted", async () => {
  const {status, body} = await api("GET", `/api/rooms/${lobby}/search?q=BOB`, {token: bob.token})
  assert.equal(status, 200)
  assert.deepEqual(body.items.map(post => post.text), ["welcome, bob"])
})

step("bob leaves: the room hears it, his channel is closed, and he cannot come back to a private room", async () => {
  const added = await api("POST", `/api/rooms/${secret}/members`, {token: ann.token, body: {user_ids: [bob.id]}})
  assert.deepEqual(added.body, {user_ids: [bob.id]})
  await ann.join(roomTopic(secret))
  await bob.join(roomTopic(secret))
  const channel = bob.channels.get(roomTopic(secret))
  const closed = new Promise(resolve => channel.onClose(resolve))
  const {status} = await api("POST", `/api/rooms/${secret}/leave`, {token: bob.token})
  assert.equal(status, 204)
  assert.deepEqual(await ann.expect(roomTopic(secret), "member_left"), {user_id: bob.id})
  await closed
  assert.equal(channel.state, "closed", "phx_close: the client does not rejoin")
  // A new channel on the topic: refused now.
  bob.channels.delete(roomTopic(secret))
  assert.equal(await bob.refusedJoin(roomTopic(secret)), "room not found")
  assert.deepEqual(await roomNames(bob), ["lobby (joined)"])
})
