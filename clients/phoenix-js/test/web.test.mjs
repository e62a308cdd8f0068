// The web client at `/` in a real browser (Debian's Chromium, driven by playwright-core):
// three people in their own browser contexts register, start a private conversation and a
// group, exchange, edit and delete messages and see them live, with typing, read receipts,
// presence and safety numbers; a reload keeps the session and the history; a message made
// of markup shows as text and runs nothing; the database holds no message in the clear;
// settings, devices, the phone layout and the assistant work. Screenshots of the main views
// go to target/screenshots/.
//
// The steps share state and run in order; after a failure the rest are skipped.
// Needs /usr/bin/chromium (`apt-get install chromium`; CI installs it). The Rust runner sets
// HEARTH_DATA_DIR (for the plaintext check) and HEARTH_ASSISTANT (for the assistant steps).

import {after} from "node:test"
import assert from "node:assert/strict"
import {existsSync, readdirSync, readFileSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {join} from "node:path"
import {fileURLToPath} from "node:url"

import {CHROMIUM, LIVE_MS, PASSWORD, conversationButton, keysSet, launch, openConversation, person, pick, register, safetyNumber} from "../lib/browser.mjs"
import {HEARTH_URL as BASE_URL} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
const STEP_TIMEOUT_MS = 60000
const DATA_DIR = process.env.HEARTH_DATA_DIR
const ASSISTANT = process.env.HEARTH_ASSISTANT

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`

const step = scenario({timeout: STEP_TIMEOUT_MS, skip})

let browser
const people = {}
const texts = []

after(async () => { if(browser){ await browser.close() } })

const screenshot = async (page, name) => {
  await mkdir(SCREENSHOTS, {recursive: true})
  await page.screenshot({path: fileURLToPath(new URL(name, SCREENSHOTS))})
}

async function newPerson(name, viewport){
  const who = await person(browser, name, viewport)
  people[name] = who
  return who
}

async function send(who, text){
  texts.push(text)
  const box = who.page.locator("main textarea[name=message]")
  await box.fill(text)
  await box.press("Enter")
  await messageWith(who, text).waitFor({timeout: LIVE_MS})
}

const messageWith = (who, text) => who.page.locator("article.message .text").filter({hasText: text})

async function seesMessage(who, text){
  await who.page.waitForFunction(text => [...document.querySelectorAll("article.message .text")].some(e => e.textContent === text), text, {timeout: LIVE_MS})
}


/** The id of the one other member of the open conversation. */
const otherMember = who => who.page.$eval('.members li[data-member]:not([data-trust="you"])', li => li.dataset.member)


step("two people register in their own browsers; the page is ours alone", async () => {
  browser = await launch()
  const ann = await newPerson("Ann")
  const bob = await newPerson("Bob")
  await Promise.all([register(ann, BASE_URL), register(bob, BASE_URL)])
  await screenshot(ann.page, "web-empty.png")
  for(const who of [ann, bob]){
    const elsewhere = who.requests.filter(url => new URL(url).origin !== new URL(BASE_URL).origin)
    assert.deepEqual(elsewhere, [], "no request leaves the server's origin")
  }
  // The password never left the browser: the session holds what was derived from it.
  const stored = await ann.page.evaluate(() => JSON.stringify(localStorage))
  assert.ok(!stored.includes(PASSWORD))
})

step("ann starts a private conversation with bob; both set keys, see the same safety number, and ann marks bob verified", async () => {
  const {Ann: ann, Bob: bob} = people
  await pick(ann, "New chat", [bob.email])
  await ann.page.waitForSelector("main h2")
  assert.equal(await ann.page.textContent("main h2"), "Bob")
  await conversationButton(bob, "Ann").waitFor({timeout: LIVE_MS})
  await openConversation(bob, "Ann")
  for(const who of [ann, bob]){
    await who.page.click(".members summary")
    await keysSet(who, 2)
  }
  const [bobId, annId] = [await otherMember(ann), await otherMember(bob)]
  const number = await safetyNumber(ann, bobId)
  assert.match(number, /^(\d{5} ){11}\d{5}$/, "12 groups of 5 digits")
  assert.equal(await safetyNumber(bob, annId), number, "both see the same safety number")
  const row = ann.page.locator(`.members li[data-member="${bobId}"]`)
  assert.equal(await row.getAttribute("data-trust"), "trusted")
  await row.getByRole("button", {name: "Safety number with Bob"}).click()
  await ann.page.locator("dialog[open]").getByRole("button", {name: "Mark as verified"}).click()
  await ann.page.waitForSelector(`.members li[data-member="${bobId}"][data-trust="verified"]`, {timeout: LIVE_MS})
  assert.match(await row.textContent(), /verified ✓/)
})

step("messages arrive live, decrypted, with typing and read receipts", async () => {
  const {Ann: ann, Bob: bob} = people
  await send(ann, "Hello Bob — ünïcödé ✓ 🔥")
  await seesMessage(bob, "Hello Bob — ünïcödé ✓ 🔥")
  await send(bob, "Hi Ann!")
  await seesMessage(ann, "Hi Ann!")
  // bob has the conversation open: ann's last message is seen.
  await send(ann, "Did you see this?")
  await ann.page.waitForSelector('.receipt[data-state="read"]', {timeout: LIVE_MS})
  assert.equal(await ann.page.textContent(".receipt"), "Read")

  await bob.page.locator("main textarea[name=message]").pressSequentially("typing slowly", {delay: 20})
  await ann.page.waitForFunction(() => document.querySelector(".typing")?.textContent === "Bob is typing…", null, {timeout: LIVE_MS})
  await screenshot(ann.page, "web-conversation.png")
  await bob.page.locator("main textarea[name=message]").fill("")
  await ann.page.waitForFunction(() => document.querySelector(".typing")?.textContent === "", null, {timeout: LIVE_MS})
})

step("an unread count shows for a conversation that is not open", async () => {
  const {Ann: ann, Bob: bob} = people
  // bob goes back to the list, with no conversation open.
  await bob.page.goto(BASE_URL)
  await conversationButton(bob, "Ann").waitFor({timeout: LIVE_MS})
  await send(ann, "first while away")
  await send(ann, "second while away")
  await bob.page.waitForFunction(() => document.querySelector("button[data-conversation] .badge")?.textContent === "2", null, {timeout: LIVE_MS})
  await screenshot(bob.page, "web-unread.png")
  // The count is the server's too: it survives a reload.
  await bob.page.reload()
  await bob.page.waitForFunction(() => document.querySelector("button[data-conversation] .badge")?.textContent === "2", null, {timeout: LIVE_MS})
  await openConversation(bob, "Ann")
  await seesMessage(bob, "second while away")
  await bob.page.waitForFunction(() => !document.querySelector("button[data-conversation] .badge"), null, {timeout: LIVE_MS})
})

step("only the sender edits and deletes; the other side sees both live", async () => {
  const {Ann: ann, Bob: bob} = people
  const original = messageWith(ann, "Did you see this?").locator("xpath=..")
  await original.getByRole("button", {name: "Message actions"}).click()
  await original.getByRole("button", {name: "Edit message"}).click()
  const box = ann.page.locator("main textarea[name=message]")
  await box.fill("Did you see this? (edited)")
  texts.push("Did you see this? (edited)")
  await box.press("Enter")
  await seesMessage(bob, "Did you see this? (edited)")
  const edited = messageWith(bob, "Did you see this? (edited)").locator("xpath=..")
  assert.match(await edited.locator(".meta").textContent(), /edited/)
  assert.equal(await edited.getByRole("button", {name: "Message actions"}).count(), 0, "bob cannot edit ann's message")

  const away = messageWith(ann, "first while away").locator("xpath=..")
  await away.getByRole("button", {name: "Message actions"}).click()
  await away.getByRole("button", {name: "Delete message"}).click()
  await ann.page.locator("dialog[open]").getByRole("button", {name: "Delete"}).click()
  // Gone from both pages; the sender's own copy goes when the server's event reaches her
  // page, which need not be before the recipient's.
  const gone = () => ![...document.querySelectorAll("article.message .text")].some(e => e.textContent === "first while away")
  for(const who of [bob, ann]) await who.page.waitForFunction(gone, null, {timeout: LIVE_MS})
})

step("markup in a message is shown as text and runs nothing", async () => {
  const {Ann: ann, Bob: bob} = people
  const hostile = `<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned = 'img'"> <b>bold?</b>`
  await send(ann, hostile)
  await seesMessage(bob, hostile)
  for(const who of [ann, bob]){
    assert.equal(await who.page.evaluate(() => window.__pwned), undefined)
    assert.equal(await who.page.locator("article.message img, article.message script, article.message b").count(), 0)
  }
  await screenshot(bob.page, "web-markup-as-text.png")
})

step("a group of three: started, joined by a third, renamed, written to, left", async () => {
  const {Ann: ann, Bob: bob} = people
  const carol = await newPerson("Carol", {width: 390, height: 760})
  await register(carol, BASE_URL)
  await pick(ann, "New group", [bob.email], {alias: "Team"})
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Team")
  await ann.page.getByRole("button", {name: "Add people"}).click()
  const dialog = ann.page.locator("dialog[open]")
  // Carol is no contact of Ann's yet: her address shows once typed (a private directory).
  await dialog.locator('input[type="search"]').fill(carol.email)
  await dialog.locator(`label[data-user="${carol.email}"] input`).check()
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached", timeout: LIVE_MS})

  // carol is on a phone: the list first, then the conversation alone.
  await conversationButton(carol, "Team").waitFor({timeout: LIVE_MS})
  await screenshot(carol.page, "web-phone-list.png")
  await openConversation(carol, "Team")
  assert.ok(!(await carol.page.isVisible(".sidebar")), "at phone width the list gives way to the conversation")
  await openConversation(bob, "Team")
  await ann.page.click(".members summary")
  await keysSet(ann, 3)

  await send(ann, "Welcome, both of you")
  await seesMessage(bob, "Welcome, both of you")
  await seesMessage(carol, "Welcome, both of you")
  await send(carol, "Thanks from my phone")
  await seesMessage(ann, "Thanks from my phone")
  await seesMessage(bob, "Thanks from my phone")
  await screenshot(carol.page, "web-phone-conversation.png")
  await screenshot(ann.page, "web-group.png")

  await ann.page.getByRole("button", {name: "Rename"}).click()
  await ann.page.locator("dialog[open] input[name=alias]").fill("Team ☕")
  await ann.page.locator('dialog[open] button[type="submit"]').click()
  for(const who of [bob, carol]){
    await who.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Team ☕", null, {timeout: LIVE_MS})
  }

  await carol.page.getByRole("button", {name: "Leave"}).click()
  await carol.page.locator('dialog[open] button[type="submit"]').click()
  await conversationButton(carol, "Team").waitFor({state: "detached", timeout: LIVE_MS})
  await ann.page.waitForFunction(() => document.querySelectorAll(".members li[data-member]").length === 2, null, {timeout: LIVE_MS})
  await send(ann, "Just us two now")
  await seesMessage(bob, "Just us two now")
})

step("history pages back: older messages load on request", async () => {
  const {Ann: ann, Bob: bob} = people
  // More than the first page (50) that a join brings.
  const box = ann.page.locator("main textarea[name=message]")
  for(let i = 1; i <= 50; i++){
    await box.fill(`filler ${i}`)
    await box.press("Enter")
  }
  await seesMessage(ann, "filler 50")
  await bob.page.reload()
  await openConversation(bob, "Team ☕")
  await seesMessage(bob, "filler 50")
  assert.equal(await messageWith(bob, "Welcome, both of you").count(), 0, "not in the first page")
  await bob.page.getByRole("button", {name: "Load older messages"}).click()
  await seesMessage(bob, "Welcome, both of you")
  assert.equal(await bob.page.locator("article.message").count(), 53, "the three messages before the fillers, and the 50")
})

step("a reload keeps the session and the history, decrypted", async () => {
  const {Bob: bob} = people
  await bob.page.reload()
  await openConversation(bob, "Ann")
  for(const text of ["Hello Bob — ünïcödé ✓ 🔥", "Hi Ann!", "Did you see this? (edited)", "second while away"]){
    await seesMessage(bob, text)
  }
  assert.equal(await bob.page.locator("article.message.undecryptable").count(), 0)
})

step("the database holds none of the messages in the clear", async () => {
  const files = readdirSync(DATA_DIR).filter(name => /\.db(-wal)?$/.test(name))
  assert.ok(files.length > 0, `SQLite files in ${DATA_DIR}`)
  const bytes = Buffer.concat(files.map(name => readFileSync(join(DATA_DIR, name))))
  for(const text of texts){
    for(const probe of [text, text.slice(0, 12)]){
      assert.equal(bytes.indexOf(Buffer.from(probe, "utf8")), -1, `"${probe}" is not in the database`)
    }
  }
}, {skip: skip || (DATA_DIR ? false : "HEARTH_DATA_DIR is not set (the Rust runner sets it)")})

step("settings: theme, text size and hidden apply at once and survive a reload", async () => {
  const {Ann: ann, Bob: bob} = people
  await bob.page.getByRole("button", {name: "Settings"}).click()
  const dialog = bob.page.locator("dialog[open]")
  await dialog.locator("select[name=theme]").selectOption("night")
  await dialog.locator("input[name=magnification]").fill("1.3")
  await dialog.locator("input[name=hidden]").check()
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached", timeout: LIVE_MS})
  const applied = () => bob.page.evaluate(() => [document.documentElement.dataset.theme, getComputedStyle(document.documentElement).fontSize])
  assert.deepEqual(await applied(), ["night", "20.8px"])
  // Hidden: ann no longer sees bob online.
  await ann.page.waitForFunction(() => {
    const dot = [...document.querySelectorAll("button[data-conversation]")].find(b => b.textContent.includes("Bob"))?.querySelector(".dot")
    return dot && !dot.classList.contains("online")
  }, null, {timeout: LIVE_MS})
  await screenshot(bob.page, "web-night.png")
  await bob.page.reload()
  await bob.page.waitForSelector(".layout")
  assert.deepEqual(await applied(), ["night", "20.8px"])
})

step("signing out and in again: the keys come back from the password", async () => {
  const {Bob: bob} = people
  await bob.page.getByRole("button", {name: "Sign out"}).click()
  await bob.page.waitForSelector("form.auth")
  assert.equal(await bob.page.evaluate(() => localStorage.getItem("hearth.session")), null, "nothing is kept")
  await bob.page.fill('input[name="email"]', bob.email)
  await bob.page.fill('input[name="password"]', PASSWORD)
  await bob.page.click('form.auth button[type="submit"]')
  await openConversation(bob, "Ann")
  await seesMessage(bob, "Hi Ann!")
  assert.equal(await bob.page.locator("article.message.undecryptable").count(), 0)
})

step("devices: a second browser is listed and signed out from the first", async () => {
  const {Bob: bob} = people
  const laptop = await newPerson("Bob's laptop")
  laptop.email = bob.email
  await laptop.page.goto(BASE_URL)
  await laptop.page.fill('input[name="email"]', bob.email)
  await laptop.page.fill('input[name="password"]', PASSWORD)
  await laptop.page.click('form.auth button[type="submit"]')
  await laptop.page.waitForSelector(".layout", {timeout: LIVE_MS})

  await bob.page.getByRole("button", {name: "Devices"}).click()
  const dialog = bob.page.locator("dialog[open]")
  await dialog.locator(".devices li").nth(1).waitFor()
  assert.match(await dialog.textContent(), /this device/)
  await screenshot(bob.page, "web-devices.png")
  await dialog.getByRole("button", {name: "Sign out"}).click()
  await dialog.locator(".devices li").nth(1).waitFor({state: "detached"})
  await dialog.getByRole("button", {name: "Close"}).click()
  // The other browser finds out on its own: its socket is closed and its token refused.
  await laptop.page.waitForSelector("form.auth", {timeout: LIVE_MS})
  assert.match(await laptop.page.textContent("form.auth"), /signed out/)
})

step("a password change re-wraps the keys on the device: history stays readable", async () => {
  const {Ann: ann} = people
  await ann.page.getByRole("button", {name: "Settings"}).click()
  const dialog = ann.page.locator("dialog[open]")
  await dialog.locator("summary", {hasText: "Change password"}).click()
  await dialog.locator("input[name=password]").fill(PASSWORD)
  await dialog.locator("input[name=new_password]").fill(`${PASSWORD} 2`)
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached", timeout: LIVE_MS})
  await ann.page.reload()
  await openConversation(ann, "Bob")
  for(const text of ["Hello Bob — ünïcödé ✓ 🔥", "Hi Ann!", "second while away"]){
    await seesMessage(ann, text)
  }
  assert.equal(await ann.page.locator("article.message.undecryptable").count(), 0)
  await send(ann, "Still me, new password")
  await seesMessage(people.Bob, "Still me, new password")
})

step("the assistant answers in its conversation, streamed, and draws images", async () => {
  const {Ann: ann} = people
  await ann.page.getByRole("button", {name: "Assistant", exact: true}).click()
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Assistant")
  // Notes each state the reply is shown in while it streams.
  await ann.page.evaluate(() => {
    window.__streamed = []
    new MutationObserver(() => {
      const streaming = document.querySelector("article.message.streaming .text")
      if(streaming && streaming.textContent !== window.__streamed.at(-1)){ window.__streamed.push(streaming.textContent) }
    }).observe(document.querySelector("main"), {childList: true, subtree: true, characterData: true})
  })
  const prompt = "tell me in many words how replies stream here"
  const box = ann.page.locator("main textarea[name=message]")
  await box.fill(prompt)
  await box.press("Enter")
  const reply = `groq reply to: ${prompt}`
  await seesMessage(ann, reply)
  const streamed = await ann.page.evaluate(() => window.__streamed)
  assert.ok(streamed.length > 1, `the reply was shown growing as it streamed: ${JSON.stringify(streamed)}`)
  assert.ok(streamed.every((text, i) => reply.startsWith(text) && (i === 0 || text.length > streamed[i - 1].length)), JSON.stringify(streamed))
  // The streamed text can be whole a moment before the stored message takes its place.
  await ann.page.waitForFunction(() => !document.querySelector("article.message.streaming"), null, {timeout: LIVE_MS})
    .catch(() => assert.fail("the streamed reply was not replaced by the stored message"))
  await box.fill("/image a lighthouse at dusk")
  await box.press("Enter")
  await ann.page.waitForFunction(() => document.querySelector("article.message img[data-image]")?.src.startsWith("blob:"), null, {timeout: LIVE_MS})
  // `/configure` is answered with a link to this server's page, shown as a link.
  await box.fill("/configure")
  await box.press("Enter")
  const link = ann.page.locator('article.message a[href^="/configure/"]')
  await link.waitFor({timeout: LIVE_MS})
  assert.equal(await link.getAttribute("rel"), "noopener noreferrer")
  await screenshot(ann.page, "web-assistant.png")
}, {skip: skip || (ASSISTANT ? false : "HEARTH_ASSISTANT is not set (no fake provider behind the server)")})

step("no page logged an error or broke the Content-Security-Policy", async () => {
  for(const who of Object.values(people)){
    // The signed-out laptop's refresh was refused (401): that is how it learnt.
    const problems = who.name === "Bob's laptop" ? who.problems.filter(p => !/status of 401/.test(p)) : who.problems
    assert.deepEqual(problems, [], `${who.name}'s page`)
  }
})
