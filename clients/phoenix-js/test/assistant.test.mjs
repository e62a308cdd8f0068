// The assistant conversation with the official `phoenix` client: it is created once, marked
// `assistant: true`, takes a prompt as an ordinary `send_message`, streams the reply as
// `assistant_delta` events in order, and ends it as an ordinary `new_message` from the
// assistant. Needs a server whose free tier points at the fake provider (the Rust runner
// sets it up; run by hand, set HEARTH_ASSISTANT=1 only against such a server).

import {test, after} from "node:test"
import assert from "node:assert/strict"

import {User} from "../lib/hearth.mjs"

const SYSTEM = "system:general"
const skip = process.env.HEARTH_ASSISTANT ? false : "HEARTH_ASSISTANT is not set (no fake provider behind the server)"

let dana
after(async () => { if(dana){ await dana.disconnect() } })

test("the assistant's reply streams to the official client in order", {skip, timeout: 20000}, async () => {
  dana = await User.register("dana")
  dana.connect()
  await dana.join(`user:${dana.id}`)
  await dana.join(SYSTEM)

  const started = await dana.ok(SYSTEM, "start_assistant_conversation")
  assert.equal(started.conversation.assistant, true)
  assert.deepEqual(started.user_ids, [dana.id])
  const again = await dana.ok(SYSTEM, "start_assistant_conversation")
  assert.equal(again.conversation.id, started.conversation.id, "one assistant conversation per person")
  const id = started.conversation.id
  const topic = `conversation:${id}`
  const joined = await dana.join(topic)
  assert.equal(joined.conversation.assistant, true)

  const prompt = "please tell me, word by word, how streaming replies arrive in the right order"
  const sent = await dana.ok(topic, "send_message", {encrypted_messages: {[dana.id]: prompt}})
  assert.equal(sent.message.content, prompt)

  const reply = await dana.expect(`user:${dana.id}`, "new_message", p => p.message.sender !== dana.id)
  const deltas = dana.received(topic, "assistant_delta", p => p.reply_id === reply.message.message_group)
  const expected = `groq reply to: ${prompt}`
  assert.equal(reply.message.content, expected)
  assert.ok(deltas.length > 5, `one delta per word, got ${deltas.length}`)
  assert.deepEqual(deltas.map(d => d.index), deltas.map((_, i) => i), "deltas arrive numbered in order")
  assert.equal(deltas.map(d => d.delta).join(""), expected)
  assert.ok(deltas.every(d => d.prompt_group === sent.message.message_group))
})
