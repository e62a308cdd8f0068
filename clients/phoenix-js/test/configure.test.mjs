// The configure page in a real browser (Debian's Chromium, driven by playwright-core):
// `/configure` in the assistant conversation is answered with a one-time link; the page,
// under a strict Content-Security-Policy and talking to no other origin, encrypts the pasted
// key in the browser, so the key never crosses the wire in the clear; the assistant
// acknowledges the key and answers the next prompt with it; then the link works no more.
// Needs the Rust runner's fake provider behind the server (HEARTH_ASSISTANT=1, as
// assistant.test.mjs) and /usr/bin/chromium (`apt-get install chromium`; CI installs it).

import {test, after} from "node:test"
import assert from "node:assert/strict"
import {randomInt} from "node:crypto"
import {existsSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {fileURLToPath} from "node:url"

import {chromium} from "playwright-core"

import {User} from "../lib/hearth.mjs"

const SYSTEM = "system:general"
const CHROMIUM = "/usr/bin/chromium"
const LINK = /https?:\/\/\S+\/configure\/[0-9a-f]{64}\.[0-9a-f-]{36}/
const INVALID = "This configure link is not valid any more."
/** `target/screenshots/` at the repository root (the runner's cwd is clients/phoenix-js). */
const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
/** How long the assistant may take to answer `/configure`, acknowledge a key or reply. */
const REPLY_MS = 10000

const skip = !process.env.HEARTH_ASSISTANT
  ? "HEARTH_ASSISTANT is not set (no fake provider behind the server)"
  : !existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`
    : false

const ALPHANUMERICS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** A fresh key in Anthropic's shape. */
const anthropicKey = () =>
  "sk-ant-api03-" + Array.from({length: 40}, () => ALPHANUMERICS[randomInt(ALPHANUMERICS.length)]).join("")

const screenshot = async (page, name) => {
  await mkdir(SCREENSHOTS, {recursive: true})
  await page.screenshot({path: fileURLToPath(new URL(name, SCREENSHOTS)), fullPage: true})
}

let erin
let browser
after(async () => {
  if(browser){ await browser.close() }
  if(erin){ await erin.disconnect() }
})

test("a key pasted on the configure page is encrypted in the browser, saved once, and answers", {skip, timeout: 60000}, async () => {
  erin = await User.register("erin")
  erin.connect()
  await erin.join(SYSTEM)
  const started = await erin.ok(SYSTEM, "start_assistant_conversation")
  const topic = `conversation:${started.conversation.id}`
  const inbox = `user:${erin.id}`
  await erin.join(topic)
  await erin.join(inbox)
  const fromAssistant = p => p.message.sender !== erin.id

  // `/configure` is answered with a one-time link.
  await erin.ok(topic, "send_message", {encrypted_messages: {[erin.id]: "/configure"}})
  const answer = await erin.expect(inbox, "new_message", fromAssistant, REPLY_MS)
  const link = answer.message.content.match(LINK)?.[0]
  assert.ok(link, `the assistant's answer carries a configure link: ${JSON.stringify(answer.message.content)}`)
  const origin = new URL(link).origin

  browser = await chromium.launch({executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"]})
  const context = await browser.newContext({viewport: {width: 390, height: 760}})
  const page = await context.newPage()
  const requests = []
  page.on("request", request => requests.push(request))
  // CSP violations are reported on the console; script errors as page errors.
  const problems = []
  page.on("console", message => {
    if(/Content.Security.Policy/i.test(message.text())){ problems.push(message.text()) }
  })
  page.on("pageerror", error => problems.push(String(error)))

  const response = await page.goto(link)
  assert.equal(response.status(), 200)
  assert.match(response.headers()["content-security-policy"] ?? "", /default-src 'none'/,
    "the page is served with a strict Content-Security-Policy")

  const key = anthropicKey()
  await page.selectOption("#provider", "anthropic")
  await page.fill("#key", key)
  await screenshot(page, "configure-form.png")
  await page.click("#submit")
  await page.waitForSelector('#result[data-state="ok"], #result[data-state="error"]', {timeout: REPLY_MS})
  const result = page.locator("#result")
  assert.equal(await result.getAttribute("data-state"), "ok", `the page says: ${await result.textContent()}`)
  await screenshot(page, "configure-saved.png")
  assert.equal(await page.inputValue("#key"), "", "the key is cleared from the page")
  assert.ok(await page.isDisabled("#submit"), "the form is done")

  const posts = requests.filter(request => request.method() === "POST")
  assert.equal(posts.length, 1, "one POST")
  assert.equal(posts[0].url(), link, "to the link itself")
  const sent = posts[0].postData()
  assert.ok(sent.includes("envelope"), `the POST carries an envelope: ${sent}`)
  assert.ok(!sent.includes(key) && !sent.includes(key.slice(-8)), "the key does not leave the browser in the clear")
  const {provider, envelope} = JSON.parse(sent)
  assert.equal(provider, "anthropic")
  assert.deepEqual(Object.keys(envelope).sort(), ["ciphertext", "epk", "kid", "nonce"])
  const elsewhere = requests.map(request => request.url()).filter(url => new URL(url).origin !== origin)
  assert.deepEqual(elsewhere, [], "the page asks nothing of any other origin")
  assert.deepEqual(problems, [], "no CSP violation, no script error")

  // The assistant acknowledges the key, then answers with it: the person's own keys come
  // before the free tier (whose only key is groq's).
  const ack = await erin.expect(inbox, "new_message", fromAssistant, REPLY_MS)
  assert.match(ack.message.content, /anthropic/i, "the acknowledgement names the provider")
  assert.ok(ack.message.content.includes(key.slice(-4)), `the acknowledgement shows the key's last four: ${ack.message.content}`)
  assert.ok(!ack.message.content.includes(key.slice(-8)), "and no more of it")

  const prompt = "hello through my own key"
  await erin.ok(topic, "send_message", {encrypted_messages: {[erin.id]: prompt}})
  const reply = await erin.expect(inbox, "new_message", fromAssistant, REPLY_MS)
  assert.equal(reply.message.content, `anthropic reply to: ${prompt}`)

  // The link worked once: the page is gone, and so is the POST (replayed as sent).
  const reused = await context.newPage()
  const reusedResponse = await reused.goto(link)
  assert.equal(reusedResponse.status(), 404)
  const invalidText = await reused.innerText("body")
  assert.ok(invalidText.includes(INVALID), `the invalid page says so: ${invalidText}`)
  await screenshot(reused, "configure-invalid.png")
  const replay = await fetch(link, {method: "POST", headers: {"content-type": "application/json"}, body: sent})
  assert.equal(replay.status, 404)
  assert.equal((await replay.json()).error, "invalid_link")

  // A tampered link looks exactly like a used one.
  const at = link.lastIndexOf("/configure/") + "/configure/".length + 17
  const tampered = link.slice(0, at) + (link[at] === "0" ? "1" : "0") + link.slice(at + 1)
  const forged = await context.newPage()
  const forgedResponse = await forged.goto(tampered)
  assert.equal(forgedResponse.status(), 404)
  assert.equal(await forged.innerText("body"), invalidText)
})
