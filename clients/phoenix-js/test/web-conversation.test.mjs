// The web client's conversation list and view in a real browser (Debian's Chromium, driven by
// playwright-core), as issue 24 asks (§1, §4, §5):
//
// - a message to people who are signed out shows as sending…, then sent (never "waiting");
//   delivered once they sign in, read once they open it; a group says how many and who;
// - the page title counts unread messages; opt-in notifications while the tab is hidden name
//   the sender, and show the text only when the person allows previews;
// - the list is ordered by last activity, with its time and a preview decrypted in the page;
//   history has date separators;
// - Edit and Delete live in a per-message menu, Delete asks first, the editing hint goes
//   when the edit is saved, a sender's consecutive messages are grouped, web addresses are
//   links (http and https only), joining, being added and leaving are lines in the history;
// - on a phone, Back returns to the list; an informing dialog has one way to close; a
//   generated image has its size before it loads.
//
// The steps share state and run in order; after a failure the rest are skipped. Screenshots
// go to target/screenshots/web-conversation-*.png. Needs /usr/bin/chromium; the date step
// edits the server's SQLite database (HEARTH_DATA_DIR, sqlite3), the image step needs the fake
// provider (HEARTH_ASSISTANT): the Rust runner sets both.

import {after} from "node:test"
import assert from "node:assert/strict"
import {execFileSync} from "node:child_process"
import {existsSync, readdirSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {join} from "node:path"
import {fileURLToPath} from "node:url"

import {CHROMIUM, LIVE_MS, PASSWORD, conversationButton, keysSet, launch, openConversation, person, pick, register} from "../lib/browser.mjs"
import {HEARTH_URL as BASE_URL} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
const STEP_TIMEOUT_MS = 60000
const DATA_DIR = process.env.HEARTH_DATA_DIR
const PHONE = {width: 390, height: 760}
const DAY_MS = 86400000

const hasSqlite = () => {
  try {
    execFileSync("sqlite3", ["-version"], {stdio: "ignore"})
    return true
  } catch {
    return false
  }
}

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`
const noDatabase = skip || (DATA_DIR ? false : "HEARTH_DATA_DIR is not set (the Rust runner sets it)")
  || (hasSqlite() ? false : "the sqlite3 command-line tool is missing (apt-get install sqlite3)")
const step = scenario({timeout: STEP_TIMEOUT_MS, skip})

let browser
const people = {}
after(async () => { if(browser){ await browser.close() } })

async function newPerson(name, viewport){
  browser ??= await launch()
  const who = await person(browser, name, viewport)
  people[name] = who
  return who
}

const screenshot = async (who, name) => {
  await mkdir(SCREENSHOTS, {recursive: true})
  await who.page.screenshot({path: fileURLToPath(new URL(`web-conversation-${name}.png`, SCREENSHOTS))})
}

const box = who => who.page.locator("main textarea[name=message]")

async function send(who, text){
  await box(who).fill(text)
  await box(who).press("Enter")
  await who.page.locator("article.message:not(.pending) .text").filter({hasText: text}).waitFor({timeout: LIVE_MS})
}

async function seesMessage(who, text){
  await who.page.waitForFunction(text => [...document.querySelectorAll("article.message .text")].some(e => e.textContent === text), text, {timeout: LIVE_MS})
}

const article = (who, text) => who.page.locator("article.message", {has: who.page.locator(".text", {hasText: text})})

/** Waits until the receipt under the person's latest message is in `state` and says `text`. */
async function receipt(who, state, text){
  await who.page.waitForFunction(([state, text]) => {
    const shown = document.querySelector(".receipt")
    return shown?.dataset.state === state && shown.textContent === text
  }, [state, text], {timeout: LIVE_MS}).catch(async error => {
    const shown = await who.page.$eval(".receipt", e => `${e.dataset.state}: ${e.textContent}`).catch(() => "no receipt")
    throw new Error(`${who.name}: expected the receipt "${state}: ${text}", shown: "${shown}" (${error.message})`)
  })
}

async function signOut(who){
  await who.page.getByRole("button", {name: "Sign out"}).click()
  await who.page.waitForSelector("form.auth")
}

async function signIn(who){
  await who.page.goto(BASE_URL)
  await who.page.fill('input[name="email"]', who.email)
  await who.page.fill('input[name="password"]', PASSWORD)
  await who.page.click('form.auth button[type="submit"]')
  await who.page.waitForSelector(".layout", {timeout: LIVE_MS})
}

/** The conversation list as shown: title, time and preview of each row, top first. */
const listed = who => who.page.$$eval("button[data-conversation]", rows => rows.map(row => ({
  name: row.querySelector(".name").textContent,
  time: row.querySelector("time")?.textContent ?? "",
  preview: row.querySelector(".preview").textContent,
})))

const systemLines = who => who.page.locator(".messages .system").allTextContents()

/** Runs SQL on the server's database (SQLite in WAL mode takes the write while it runs). */
function sql(query){
  const database = readdirSync(DATA_DIR).find(name => name.endsWith(".db"))
  return execFileSync("sqlite3", ["-cmd", ".timeout 5000", join(DATA_DIR, database), query], {encoding: "utf8"}).trim()
}
const blob = uuid => `X'${uuid.replace(/-/g, "")}'`

step("§1 people who are signed out are written to: sending…, then sent, with no waiting", async () => {
  const [ann, bob, carol] = [await newPerson("Ann"), await newPerson("Bob"), await newPerson("Carol")]
  await Promise.all([register(ann, BASE_URL), register(bob, BASE_URL), register(carol, BASE_URL)])
  await Promise.all([signOut(bob), signOut(carol)])

  await pick(ann, "New chat", [bob.email])
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Bob")
  // Every state the receipt is shown in, in order.
  await ann.page.evaluate(() => {
    window.__receipts = []
    new MutationObserver(() => {
      const shown = document.querySelector(".receipt")?.dataset.state
      if(shown && shown !== window.__receipts.at(-1)){ window.__receipts.push(shown) }
    }).observe(document.querySelector("main"), {childList: true, subtree: true})
  })
  await send(ann, "Are you there, Bob?")
  await receipt(ann, "sent", "Sent")
  assert.deepEqual(await ann.page.evaluate(() => window.__receipts), ["sending", "sent"])
  assert.doesNotMatch(await ann.page.locator("main").textContent(), /waiting/i)
  assert.equal(await ann.page.locator("main .status").textContent(), "")

  await pick(ann, "New group", [bob.email, carol.email], {alias: "Team"})
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Team")
  await send(ann, "Hello team")
  await receipt(ann, "sent", "Sent")
  assert.doesNotMatch(await ann.page.locator("main").textContent(), /waiting/i)
  await screenshot(ann, "sent")
})

step("§1 delivered once they sign in, read once they open it; a group says how many and who", async () => {
  const {Ann: ann, Bob: bob, Carol: carol} = people
  // Bob signs in and looks at the list only: both conversations reached his device.
  await signIn(bob)
  // In part: the state is the one every member reached; the text says how far it got.
  await receipt(ann, "sent", "Delivered to 1 of 2")
  await openConversation(ann, "Bob")
  await receipt(ann, "delivered", "Delivered")
  await openConversation(bob, "Ann")
  await seesMessage(bob, "Are you there, Bob?")
  await receipt(ann, "read", "Read")

  await openConversation(ann, "Team")
  await openConversation(bob, "Team")
  await receipt(ann, "sent", "Delivered to 1 of 2 · read by Bob")
  await signIn(carol)
  await receipt(ann, "delivered", "Delivered · read by Bob")
  await openConversation(carol, "Team")
  await receipt(ann, "read", "Read by everyone")
  await screenshot(ann, "read")
})

step("§4 the list is ordered by last activity, with its time and a preview decrypted in the page", async () => {
  const {Ann: ann, Bob: bob} = people
  await send(bob, "Team news from Bob")
  await seesMessage(ann, "Team news from Bob")
  const clock = /^\d{1,2}[:.]\d{2}/
  let rows = await listed(ann)
  assert.deepEqual(rows.map(row => [row.name, row.preview]), [["Team", "Bob: Team news from Bob"], ["Bob", "You: Are you there, Bob?"]])
  assert.ok(rows.every(row => clock.test(row.time)), JSON.stringify(rows))
  await openConversation(bob, "Ann")
  await send(bob, "Private reply, multi\nline")
  await ann.page.waitForFunction(() => document.querySelector("button[data-conversation] .name")?.textContent === "Bob", null, {timeout: LIVE_MS})
  rows = await listed(ann)
  assert.deepEqual(rows.map(row => [row.name, row.preview]), [["Bob", "Private reply, multi line"], ["Team", "Bob: Team news from Bob"]])
  await screenshot(ann, "list")
})

step("§4 the page title counts unread messages; notifications are opt-in, name the sender, and show text only with previews", async () => {
  const {Ann: ann, Bob: bob} = people
  // Bob's page notes every notification it makes (the browser's own stays as it is).
  await bob.context.grantPermissions(["notifications"], {origin: BASE_URL})
  await bob.context.addInitScript(() => {
    window.__notifications = []
    const Real = window.Notification
    window.Notification = class extends Real {
      constructor(title, options){
        super(title, options)
        window.__notifications.push({title, body: options?.body})
      }
    }
  })
  await bob.page.reload()
  await openConversation(bob, "Ann")
  await openConversation(ann, "Bob")
  const hide = hidden => bob.page.evaluate(hidden => {
    Object.defineProperty(document, "visibilityState", {value: hidden ? "hidden" : "visible", configurable: true})
    document.dispatchEvent(new Event("visibilitychange"))
  }, hidden)
  const notifications = () => bob.page.evaluate(() => window.__notifications)
  const title = text => bob.page.waitForFunction(text => document.title === text, text, {timeout: LIVE_MS})

  await hide(true)
  await send(ann, "before opting in")
  await title("(1) hearth")
  assert.deepEqual(await notifications(), [], "no notification before the person turns them on")

  await bob.page.getByRole("button", {name: "Notifications"}).click()
  const dialog = bob.page.locator("dialog[open]")
  await dialog.locator("input[name=notify]").check()
  await screenshot(bob, "notifications")
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached"})
  await send(ann, "the secret plan")
  await title("(2) hearth")
  await bob.page.waitForFunction(() => window.__notifications.length === 1, null, {timeout: LIVE_MS})
  assert.deepEqual(await notifications(), [{title: "Ann", body: "New message"}], "the sender, not the text")

  await bob.page.getByRole("button", {name: "Notifications"}).click()
  await dialog.locator("input[name=previews]").check()
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached"})
  await openConversation(ann, "Team")
  await send(ann, "in the group")
  await title("(3) hearth")
  await bob.page.waitForFunction(() => window.__notifications.length === 2, null, {timeout: LIVE_MS})
  assert.deepEqual((await notifications())[1], {title: "Ann in Team", body: "in the group"})

  // Back in the tab: the open conversation is read, the title says so.
  await hide(false)
  await title("(1) hearth")
  await openConversation(bob, "Team")
  await title("hearth")
  await receipt(ann, "read", "Read by everyone")
})

step("§5 Edit and Delete are in a per-message menu; Delete asks first; the editing hint goes when saved", async () => {
  const {Ann: ann, Bob: bob} = people
  await send(ann, "a typo herre")
  await seesMessage(bob, "a typo herre")
  const mine = article(ann, "a typo herre")
  assert.equal(await mine.getByRole("button", {name: "Edit message"}).count(), 0, "not on the message itself")
  assert.equal(await article(bob, "a typo herre").getByRole("button", {name: "Message actions"}).count(), 0, "only on one's own")
  await mine.getByRole("button", {name: "Message actions"}).click()
  await screenshot(ann, "menu")
  await mine.getByRole("button", {name: "Edit message"}).click()
  await ann.page.waitForFunction(() => /Editing a message/.test(document.querySelector("main .editing")?.textContent), null, {timeout: LIVE_MS})
  await box(ann).fill("a typo here")
  await box(ann).press("Enter")
  await seesMessage(bob, "a typo here")
  // Gone once Ann's page has its reply, which can come after Bob's page has the edit.
  await ann.page.waitForFunction(() => document.querySelector("main .editing")?.textContent === "", null, {timeout: LIVE_MS})
  assert.equal(await ann.page.locator("main .status").textContent(), "")

  const edited = article(ann, "a typo here")
  await edited.getByRole("button", {name: "Message actions"}).click()
  await edited.getByRole("button", {name: "Delete message"}).click()
  const dialog = ann.page.locator("dialog[open]")
  assert.match(await dialog.textContent(), /Delete this message\?/)
  await screenshot(ann, "delete")
  await dialog.getByRole("button", {name: "Cancel"}).click()
  await dialog.waitFor({state: "detached"})
  assert.equal(await edited.count(), 1, "kept when the person cancels")
  await edited.getByRole("button", {name: "Message actions"}).click()
  await edited.getByRole("button", {name: "Delete message"}).click()
  await dialog.getByRole("button", {name: "Delete"}).click()
  const gone = () => ![...document.querySelectorAll("article.message .text")].some(e => e.textContent === "a typo here")
  for(const who of [ann, bob]){ await who.page.waitForFunction(gone, null, {timeout: LIVE_MS}) }
})

step("§5 a sender's consecutive messages are grouped; web addresses are links, built as nodes", async () => {
  const {Ann: ann, Bob: bob} = people
  const text = "see https://example.org/wiki/Fire_(disambiguation). or <a href=x>http://example.net/a?b=1</a>, not javascript:alert(1)"
  await send(bob, "ok")
  await seesMessage(ann, "ok")
  await send(ann, "first of two")
  await send(ann, text)
  await seesMessage(bob, text)
  assert.equal(await article(bob, "first of two").evaluate(e => e.classList.contains("grouped")), false)
  const second = article(bob, "see https://")
  assert.equal(await second.evaluate(e => e.classList.contains("grouped")), true)
  assert.equal(await second.locator(".sender").isVisible(), false, "the name once per group")
  const links = await second.locator(".text a").evaluateAll(links => links.map(a => [a.getAttribute("href"), a.textContent, a.rel, a.target]))
  assert.deepEqual(links, [
    ["https://example.org/wiki/Fire_(disambiguation)", "https://example.org/wiki/Fire_(disambiguation)", "noopener noreferrer", "_blank"],
    ["http://example.net/a?b=1", "http://example.net/a?b=1", "noopener noreferrer", "_blank"],
  ])
  assert.equal(await second.locator(".text").textContent(), text, "the text is unchanged")
  assert.equal(await bob.page.evaluate(() => window.__pwned), undefined)
  await screenshot(bob, "links")
})

step("§5 being added, joining and leaving are lines in the history; on a phone, Back returns to the list", async () => {
  const {Ann: ann, Bob: bob} = people
  const dan = await newPerson("Dan", PHONE)
  await register(dan, BASE_URL)
  await openConversation(ann, "Team")
  await ann.page.getByRole("button", {name: "Add people"}).click()
  const dialog = ann.page.locator("dialog[open]")
  // Dan is no contact of Ann's yet: his address shows once typed (a private directory).
  await dialog.locator('input[type="search"]').fill(dan.email)
  await dialog.locator(`label[data-user="${dan.email}"] input`).check()
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached", timeout: LIVE_MS})
  await ann.page.locator(".messages .system", {hasText: "You added Dan"}).waitFor({timeout: LIVE_MS})
  await bob.page.locator(".messages .system", {hasText: "Dan was added"}).waitFor({timeout: LIVE_MS})

  await conversationButton(dan, "Team").waitFor({timeout: LIVE_MS})
  await openConversation(dan, "Team")
  assert.equal(await dan.page.isVisible(".sidebar"), false, "the conversation alone at phone width")
  for(const who of [ann, bob]){ await who.page.locator(".messages .system", {hasText: "Dan joined"}).waitFor({timeout: LIVE_MS}) }
  // The browser's (or the phone's) Back returns to the list, not away from hearth.
  await dan.page.goBack()
  await dan.page.waitForSelector(".sidebar", {state: "visible"})
  assert.equal(new URL(dan.page.url()).pathname, "/")
  assert.equal(await dan.page.isVisible("main textarea[name=message]"), false)
  await dan.page.goForward()
  await dan.page.waitForSelector("main textarea[name=message]", {state: "visible"})
  await dan.page.getByRole("button", {name: "Back to conversations"}).click()
  await dan.page.waitForSelector(".sidebar", {state: "visible"})
  assert.equal(new URL(dan.page.url()).pathname, "/")
  await screenshot(dan, "phone-list")
  await openConversation(dan, "Team")
  await dan.page.getByRole("button", {name: "Leave"}).click()
  await dan.page.locator('dialog[open] button[type="submit"]').click()
  for(const who of [ann, bob]){ await who.page.locator(".messages .system", {hasText: "Dan left"}).waitFor({timeout: LIVE_MS}) }
  assert.deepEqual(await systemLines(ann), ["Bob joined", "Carol joined", "You added Dan", "Dan joined", "Dan left"])
  await screenshot(ann, "system-lines")
})

step("§5 a dialog that only informs has one way to close", async () => {
  const {Ann: ann} = people
  await ann.page.getByRole("button", {name: "Devices"}).click()
  const dialog = ann.page.locator("dialog[open]")
  await dialog.locator(".devices li").first().waitFor()
  assert.deepEqual(await dialog.locator(".buttons button").allTextContents(), ["Close"])
  await dialog.getByRole("button", {name: "Close"}).click()
  await dialog.waitFor({state: "detached"})
  // The safety number of someone already verified: nothing to do but close.
  await openConversation(ann, "Bob")
  await ann.page.click(".members summary")
  await keysSet(ann, 2)
  const row = ann.page.locator('.members li[data-member]:not([data-trust="you"])')
  await row.getByRole("button", {name: "Safety number with Bob"}).click()
  assert.deepEqual(await dialog.locator(".buttons button").allTextContents(), ["Cancel", "Mark as verified"])
  await dialog.getByRole("button", {name: "Mark as verified"}).click()
  await dialog.waitFor({state: "detached"})
  await row.getByRole("button", {name: "Safety number with Bob"}).click()
  assert.deepEqual(await dialog.locator(".buttons button").allTextContents(), ["Close"])
  await dialog.getByRole("button", {name: "Close"}).click()
  await dialog.waitFor({state: "detached"})
})

step("§4 history has date separators", async () => {
  // Erin's browser lives three days ago while she writes; the server's times of those
  // messages are then set to match, as if they had been sent then.
  const erin = await newPerson("Erin")
  await erin.context.clock.install({time: Date.now() - 3 * DAY_MS})
  await register(erin, BASE_URL)
  const {Ann: ann} = people
  await pick(erin, "New chat", [ann.email])
  await erin.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Ann")
  const conversationId = new URL(erin.page.url()).pathname.split("/").pop()
  // Erin's own page flags them as redated (her clock is off): counted, not read as text.
  const write = async (text, count) => {
    await box(erin).fill(text)
    await box(erin).press("Enter")
    await erin.page.waitForFunction(count => document.querySelectorAll("article.message:not(.pending)").length === count, count, {timeout: LIVE_MS})
  }
  await write("three days ago", 1)
  await write("still three days ago", 2)
  const shift = `- ${3 * DAY_MS}`
  sql(`UPDATE message_groups SET inserted_at = inserted_at ${shift}, updated_at = updated_at ${shift} WHERE conversation_id = ${blob(conversationId)};
       UPDATE messages SET inserted_at = inserted_at ${shift}, updated_at = updated_at ${shift}
         WHERE message_group_id IN (SELECT id FROM message_groups WHERE conversation_id = ${blob(conversationId)});`)
  await erin.context.clock.setSystemTime(Date.now())
  await write("today", 3)
  await ann.page.reload()
  await openConversation(ann, "Erin")
  await seesMessage(ann, "today")
  const shown = await ann.page.$$eval(".messages > .day, .messages > article.message", nodes => nodes.map(node =>
    node.classList.contains("day") ? `— ${node.textContent} —` : node.querySelector(".text").textContent))
  const threeDaysAgo = await ann.page.evaluate(days => new Intl.DateTimeFormat([], {weekday: "long", day: "numeric", month: "long", year: "numeric"})
    .format(new Date(Date.now() - days * 86400000)), 3)
  assert.deepEqual(shown, [`— ${threeDaysAgo} —`, "three days ago", "still three days ago", "— Today —", "today"])
  assert.equal(await ann.page.locator("article.message.flagged").count(), 0, "the times match their sender's: nothing is flagged")
  await screenshot(ann, "days")
}, {skip: noDatabase})

step("§5 a generated image has its size before it loads, and the view ends below it", async () => {
  const {Ann: ann} = people
  // The image's bytes are held back until the page has laid it out.
  let release
  const held = new Promise(resolve => { release = resolve })
  await ann.page.route("**/api/assistant/images/*", async route => { await held; await route.continue() })
  await ann.page.getByRole("button", {name: "Assistant", exact: true}).click()
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Assistant")
  await box(ann).fill("/image a lighthouse at dusk")
  await box(ann).press("Enter")
  const image = ann.page.locator("article.message img[data-image]")
  await image.waitFor({timeout: LIVE_MS})
  const before = await image.evaluate(img => ({loaded: img.complete && img.naturalWidth > 0, height: img.getBoundingClientRect().height}))
  assert.equal(before.loaded, false)
  assert.ok(before.height > 100, `the image takes its room before it loads: ${before.height}px`)
  release()
  await ann.page.waitForFunction(() => document.querySelector("article.message img[data-image]")?.naturalWidth > 0, null, {timeout: LIVE_MS})
  await ann.page.waitForFunction(() => {
    const list = document.querySelector(".messages")
    return list.scrollHeight - list.scrollTop - list.clientHeight < 2
  }, null, {timeout: LIVE_MS})
  await screenshot(ann, "image")
}, {skip: skip || (process.env.HEARTH_ASSISTANT ? false : "HEARTH_ASSISTANT is not set (no fake provider behind the server)")})

step("no page logged an error or broke the Content-Security-Policy", async () => {
  for(const who of Object.values(people)){ assert.deepEqual(who.problems, [], `${who.name}'s page`) }
})
