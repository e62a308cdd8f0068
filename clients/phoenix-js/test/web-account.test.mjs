// The web client's account pages in a real browser (Debian's Chromium, driven by
// playwright-core), each reached through the link the server really emailed (read from the
// `.eml` files of `$HEARTH_DATA_DIR/outbox/`):
// - `/#/confirm-email/<token>` confirms the address (`confirmed_at` is set) and says so; the
//   code in the email confirms from Settings;
// - "Forgot password?" → the emailed `/#/reset-password/<token>` page (also reached with the
//   code) sets a new password, says plainly that older messages cannot be read any more, and
//   makes new keys: the person writes again at once, their contact sees the key change;
// - Settings → "Change the address" → the emailed `/#/change-email/<token>` page moves the
//   account, its keys wrapped again, so history stays readable under the new address (its
//   code, entered in Settings, leads to the same page);
// - the New chat picker finds people by name and by their exact address (the directory shows
//   only contacts' addresses), filters as typed, and does not cut addresses at phone width;
// - the `hidden` attribute hides (the sign-in form's "Display name (optional)").
// Screenshots of the new pages go to target/screenshots/account-*.png.
//
// The steps share state and run in order; after a failure the rest are skipped. Needs
// /usr/bin/chromium, the sqlite3 tool and HEARTH_DATA_DIR (set by the Rust runner).

import {after} from "node:test"
import assert from "node:assert/strict"
import {execFileSync} from "node:child_process"
import {existsSync, readdirSync, readFileSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {join} from "node:path"
import {setTimeout as delay} from "node:timers/promises"
import {fileURLToPath} from "node:url"

import {CHROMIUM, LIVE_MS, PASSWORD, conversationButton, keysSet, launch, openConversation, person, pick, register} from "../lib/browser.mjs"
import {HEARTH_URL as BASE_URL} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
const DATA_DIR = process.env.HEARTH_DATA_DIR
const NEW_PASSWORD = "a brand new passphrase"
const UNREADABLE = "This message cannot be decrypted on this device."

const sqlite3 = () => {
  try {
    execFileSync("sqlite3", ["-version"], {stdio: "ignore"})
    return true
  } catch {
    return false
  }
}
const skip = (existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`)
  || (DATA_DIR ? false : "HEARTH_DATA_DIR is not set (the Rust runner sets it)")
  || (sqlite3() ? false : "the sqlite3 command-line tool is missing (apt-get install sqlite3)")

const step = scenario({timeout: 60000, skip})

let browser
after(async () => { if(browser){ await browser.close() } })

const screenshot = async (page, name) => {
  await mkdir(SCREENSHOTS, {recursive: true})
  await page.screenshot({path: fileURLToPath(new URL(name, SCREENSHOTS))})
}

function sql(query){
  const database = readdirSync(DATA_DIR).find(name => name.endsWith(".db"))
  return execFileSync("sqlite3", ["-cmd", ".timeout 5000", join(DATA_DIR, database), query], {encoding: "utf8"}).trim()
}
const quoted = text => `'${text.replaceAll("'", "''")}'`
const confirmedAt = email => sql(`SELECT coalesce(confirmed_at, 'never') FROM users WHERE email = ${quoted(email.toLowerCase())}`)

/** An email of the outbox: its recipient and its body, decoded from quoted-printable. */
function readMail(path){
  const raw = readFileSync(path, "utf8").replaceAll("\r\n", "\n")
  const split = raw.indexOf("\n\n")
  const head = raw.slice(0, split).replace(/\n[ \t]+/g, " ")
  let body = raw.slice(split + 2)
  if(/^content-transfer-encoding:\s*quoted-printable/im.test(head)){
    const bytes = Buffer.from(body.replace(/=\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))), "latin1")
    body = bytes.toString("utf8")
  }
  return {to: head.match(/^to:\s*(.*)$/im)?.[1] ?? "", body}
}

const used = new Set()

/**
 * The newest unread email to `email` whose link opens `kind` (`confirm-email`, …): the link
 * (on the server under test) and the code. Emails are sent in the background: waits for it.
 */
async function mailed(email, kind){
  const outbox = join(DATA_DIR, "outbox")
  const until = Date.now() + LIVE_MS
  for(;;){
    const names = existsSync(outbox) ? readdirSync(outbox).filter(name => name.endsWith(".eml") && !used.has(name)).sort().reverse() : []
    for(const name of names){
      const mail = readMail(join(outbox, name))
      const link = mail.body.match(new RegExp(`https?://\\S+/#/${kind}/[\\w-]+`))?.[0]
      if(!mail.to.toLowerCase().includes(email.toLowerCase()) || !link){ continue }
      used.add(name)
      const code = mail.body.match(/Or enter this code in the app: (\S+)/)?.[1]
      assert.ok(link.endsWith(`/${code}`), `the link and the code differ:\n${mail.body}`)
      const {pathname, hash} = new URL(link)
      return {link: new URL(pathname + hash, BASE_URL).href, code}
    }
    assert.ok(Date.now() < until, `no ${kind} email to ${email} in ${outbox}`)
    await delay(100)
  }
}

/** People with display names no other test file uses, so a name filter finds only them. */
const tag = Math.random().toString(36).slice(2, 7)
const people = {}

async function signIn(who, email, password){
  await who.page.goto(BASE_URL)
  await who.page.fill('input[name="email"]', email)
  await who.page.fill('input[name="password"]', password)
  await who.page.click('form.auth button[type="submit"]')
  await who.page.waitForSelector(".layout", {timeout: LIVE_MS})
}

async function send(who, text){
  const box = who.page.locator("main textarea[name=message]")
  await box.fill(text)
  await box.press("Enter")
  await who.page.locator("article.message .text", {hasText: text}).waitFor({timeout: LIVE_MS})
}

const dialog = who => who.page.locator("dialog[open]")

/**
 * Sol's own message and Rhea's since her reset open. (Hers from before the reset do not any
 * more once the page reloads: her new conversation key replaced the one they were sent with.)
 */
async function readsHistory(who){
  for(const text of ["written after the reset", "Sol writes before moving"]){
    await who.page.locator("article.message .text", {hasText: text}).waitFor({timeout: LIVE_MS})
  }
}

step("the sign-in form shows 'Display name (optional)' only when creating an account", async () => {
  browser = await launch()
  const who = await person(browser, `Visitor${tag}`)
  await who.page.goto(BASE_URL)
  const displayName = who.page.locator("label", {hasText: "Display name (optional)"})
  const forgot = who.page.getByRole("button", {name: "Forgot password?"})
  assert.equal(await displayName.count(), 1)
  assert.equal(await displayName.isVisible(), false, "hidden while signing in")
  assert.equal(await forgot.isVisible(), true)
  await screenshot(who.page, "account-sign-in.png")
  await who.page.getByRole("tab", {name: "Create account"}).click()
  assert.equal(await displayName.isVisible(), true)
  assert.equal(await forgot.isVisible(), false)
  await who.context.close()
})

step("the emailed confirmation link confirms the address and says so", async () => {
  const rhea = people.rhea = await person(browser, `Rhea${tag}`)
  await register(rhea, BASE_URL)
  assert.equal(confirmedAt(rhea.email), "never")
  const {link, code} = await mailed(rhea.email, "confirm-email")
  await rhea.page.goto(link)
  await rhea.page.locator("[data-confirmed]").waitFor({timeout: LIVE_MS})
  assert.match(await rhea.page.locator("form.auth").innerText(), /your email address is confirmed/i)
  assert.ok(!rhea.page.url().includes(code), "the token leaves the address bar")
  await screenshot(rhea.page, "account-email-confirmed.png")
  assert.notEqual(confirmedAt(rhea.email), "never")
  assert.deepEqual(rhea.problems, [])
  // The link works once (the browser logs the server's 400).
  await rhea.page.goto(link)
  await rhea.page.getByRole("alert").filter({hasText: "invalid or has expired"}).waitFor({timeout: LIVE_MS})
  await rhea.page.getByRole("button", {name: "Open hearth"}).click()
  await rhea.page.waitForSelector(".layout", {timeout: LIVE_MS})
  rhea.problems.length = 0
})

step("New chat finds people by name and by exact address, and filters as typed", async () => {
  const sol = people.sol = await person(browser, `Sol${tag}`)
  const tove = people.tove = await person(browser, `Tove${tag}`)
  await Promise.all([register(sol, BASE_URL), register(tove, BASE_URL)])
  const rhea = people.rhea
  await rhea.page.getByRole("button", {name: "New chat", exact: true}).click()
  const box = dialog(rhea)
  const filter = box.locator('input[type="search"]')
  const row = who => box.locator("label.person", {hasText: who.name})
  await row(sol).waitFor()
  // Nobody shares a conversation with Rhea yet: the directory shows no address.
  assert.equal(await box.locator("label.person", {hasText: sol.email}).count(), 0, "a stranger's address is not shown")
  await filter.fill(sol.name)
  await row(sol).waitFor()
  assert.equal(await row(tove).isVisible(), false, "the filter hides who does not match")
  // A part of an address finds nobody; the exact address finds its owner, with it shown.
  await filter.fill(tove.email.split("@")[0])
  await box.getByText("Nobody by that name or address.").waitFor({timeout: LIVE_MS})
  assert.equal(await row(tove).isVisible(), false)
  await filter.fill(tove.email)
  await box.locator(`label[data-user="${tove.email}"]`).waitFor({timeout: LIVE_MS})
  assert.equal(await row(sol).isVisible(), false)
  await box.getByRole("button", {name: "Cancel"}).click()
  await pick(rhea, "New chat", [sol.email])
  await conversationButton(sol, rhea.name).waitFor({timeout: LIVE_MS})
  await openConversation(sol, rhea.name)
  for(const who of [rhea, sol]){
    await who.page.click(".members summary")
    await keysSet(who, 2)
  }
  // Now they are contacts: each sees the other's address without typing it.
  await sol.page.getByRole("button", {name: "New group", exact: true}).click()
  await dialog(sol).locator(`label[data-user="${rhea.email}"]`).waitFor({timeout: LIVE_MS})
  await dialog(sol).getByRole("button", {name: "Cancel"}).click()
})

step("the phone people picker shows whole addresses", async () => {
  // An address with no hyphen: nothing in it where a line may break.
  const ulla = await person(browser, `Ulla${tag}`)
  ulla.email = `ulla.${tag}.${Date.now()}.withaverylongsurname@example.org`
  const phone = await person(browser, `Maximiliana${tag}`, {width: 360, height: 740})
  await Promise.all([register(ulla, BASE_URL), register(phone, BASE_URL)])
  await ulla.context.close()
  await phone.page.getByRole("button", {name: "New chat", exact: true}).click()
  const box = dialog(phone)
  await box.locator('input[type="search"]').fill(ulla.email)
  const row = box.locator(`label[data-user="${ulla.email}"]`)
  await row.waitFor({timeout: LIVE_MS})
  const fits = await box.locator(".pick").evaluate(pick => {
    const edge = pick.getBoundingClientRect().right
    return pick.scrollWidth <= pick.clientWidth && [...pick.querySelectorAll("label:not([hidden]) span")].every(span => span.getBoundingClientRect().right <= edge)
  })
  assert.ok(fits, "every address fits inside the picker")
  assert.equal(await row.getByText(ulla.email, {exact: true}).isVisible(), true)
  await screenshot(phone.page, "account-phone-picker.png")
  await box.getByRole("button", {name: "Cancel"}).click()
  await phone.context.close()
})

step("Forgot password: the emailed link sets a new password, says what is lost, and makes new keys", async () => {
  const {rhea, sol} = people
  await send(rhea, "written before the reset")
  await sol.page.locator("article.message .text", {hasText: "written before the reset"}).waitFor({timeout: LIVE_MS})
  // Rhea forgot her password: on a new browser, she asks for a link.
  await rhea.context.close()
  const again = await person(browser, rhea.name)
  again.email = rhea.email
  people.rhea = again
  await again.page.goto(BASE_URL)
  await again.page.fill('input[name="email"]', rhea.email)
  await again.page.getByRole("button", {name: "Forgot password?"}).click()
  assert.equal(await again.page.inputValue('input[name="email"]'), rhea.email)
  await again.page.getByRole("button", {name: "Send the link"}).click()
  await again.page.getByRole("status").filter({hasText: "we sent it a link"}).waitFor({timeout: LIVE_MS})
  await screenshot(again.page, "account-forgot-password.png")
  const {link, code} = await mailed(rhea.email, "reset-password")
  // The code in the email has its place here: it leads to the same page as the link.
  await again.page.fill('input[name="code"]', code)
  await again.page.getByRole("button", {name: "Continue"}).click()
  await again.page.getByRole("heading", {name: "Choose a new password"}).waitFor({timeout: LIVE_MS})
  // The link.
  await again.page.goto(link)
  await again.page.getByRole("heading", {name: "Choose a new password"}).waitFor({timeout: LIVE_MS})
  assert.ok(!again.page.url().includes(code), "the token leaves the address bar")
  const warning = await again.page.locator("[data-reset-warning]").innerText()
  assert.match(warning, /Messages protected by your old password cannot be read any more/)
  assert.match(warning, /security key changed/)
  await screenshot(again.page, "account-reset-password.png")
  await again.page.fill('input[name="new_password"]', NEW_PASSWORD)
  await again.page.fill('input[name="new_password_confirmation"]', NEW_PASSWORD + "!")
  await again.page.getByRole("button", {name: "Set the new password"}).click()
  await again.page.getByRole("alert").filter({hasText: "The two passwords differ."}).waitFor()
  await again.page.fill('input[name="new_password_confirmation"]', NEW_PASSWORD)
  await again.page.getByRole("button", {name: "Set the new password"}).click()
  await again.page.waitForSelector(".layout", {timeout: LIVE_MS})
  // New keys: her key for the conversation opens again (made anew), the old message does not.
  await openConversation(again, sol.name)
  await again.page.click(".members summary")
  await keysSet(again, 2)
  await again.page.locator("article.message .text", {hasText: UNREADABLE}).waitFor({timeout: LIVE_MS})
  assert.equal(await again.page.locator(".own-key-unopenable").count(), 0, "no key left to make by hand")
  await send(again, "written after the reset")
  // Sol is told that her security key changed, acknowledges it and reads the new message.
  const notice = sol.page.locator(".alert.key-changed")
  await notice.waitFor({timeout: LIVE_MS})
  await notice.getByRole("button", {name: "Acknowledge"}).click()
  await sol.page.locator("article.message .text", {hasText: "written after the reset"}).waitFor({timeout: LIVE_MS})
  assert.deepEqual(again.problems, [])
})

step("the old password is refused, the new one signs in", async () => {
  const rhea = people.rhea
  const other = await person(browser, rhea.name)
  await other.page.goto(BASE_URL)
  await other.page.fill('input[name="email"]', rhea.email)
  await other.page.fill('input[name="password"]', PASSWORD)
  await other.page.click('form.auth button[type="submit"]')
  await other.page.locator("form.auth .error").filter({hasText: /.+/}).waitFor({timeout: LIVE_MS})
  await signIn(other, rhea.email, NEW_PASSWORD)
  await other.context.close()
})

step("Settings changes the email through its emailed link; history stays readable", async () => {
  const sol = people.sol
  const newEmail = `sol-moved-${tag}-${Date.now()}@example.org`
  await send(sol, "Sol writes before moving")
  await sol.page.getByRole("button", {name: "Settings"}).click()
  const settings = dialog(sol)
  await settings.locator("summary", {hasText: "Email address"}).click()
  await settings.getByRole("button", {name: "Change the address"}).click()
  await settings.getByRole("status").filter({hasText: `We sent a link to ${sol.email}`}).waitFor({timeout: LIVE_MS})
  await screenshot(sol.page, "account-settings-email.png")
  const {link} = await mailed(sol.email, "change-email")
  await sol.page.goto(link)
  await sol.page.getByRole("heading", {name: "Change your email address"}).waitFor({timeout: LIVE_MS})
  assert.match(await sol.page.locator("form.auth").innerText(), new RegExp(`Signed in as ${sol.email}`, "i"))
  await sol.page.fill('input[name="new_email"]', newEmail)
  await sol.page.fill('input[name="password"]', PASSWORD)
  await screenshot(sol.page, "account-change-email.png")
  await sol.page.getByRole("button", {name: "Change the address"}).click()
  await sol.page.locator(`[data-email-changed="${newEmail}"]`).waitFor({timeout: LIVE_MS})
  assert.equal(sql(`SELECT count(*) FROM users WHERE email = ${quoted(newEmail)}`), "1")
  assert.equal(confirmedAt(newEmail), "never")
  await sol.page.getByRole("button", {name: "Open hearth"}).click()
  await openConversation(sol, people.rhea.name)
  await readsHistory(sol)
  people.sol.email = newEmail
  assert.deepEqual(sol.problems, [])
})

step("on a new device, the new address and the same password read the history; the emailed code confirms it", async () => {
  const sol = people.sol
  const device = await person(browser, sol.name)
  await signIn(device, sol.email, PASSWORD)
  await openConversation(device, people.rhea.name)
  await readsHistory(device)
  const {code} = await mailed(sol.email, "confirm-email")
  await device.page.getByRole("button", {name: "Settings"}).click()
  const settings = dialog(device)
  await settings.locator("summary", {hasText: "Email address"}).click()
  await settings.locator('input[name="email_code"]').fill(code)
  await settings.getByRole("button", {name: "Use the code"}).click()
  await settings.getByRole("status").filter({hasText: "Your email address is confirmed."}).waitFor({timeout: LIVE_MS})
  assert.notEqual(confirmedAt(sol.email), "never")
  await device.context.close()
})

step("the email change's code, entered in Settings, leads to the same page", async () => {
  const tove = people.tove
  const newEmail = `tove-moved-${tag}-${Date.now()}@example.org`
  await tove.page.getByRole("button", {name: "Settings"}).click()
  const settings = dialog(tove)
  await settings.locator("summary", {hasText: "Email address"}).click()
  await settings.getByRole("button", {name: "Change the address"}).click()
  await settings.getByRole("status").filter({hasText: `We sent a link to ${tove.email}`}).waitFor({timeout: LIVE_MS})
  const {code} = await mailed(tove.email, "change-email")
  await settings.locator('input[name="email_code"]').fill(code)
  await settings.getByRole("button", {name: "Use the code"}).click()
  await tove.page.getByRole("heading", {name: "Change your email address"}).waitFor({timeout: LIVE_MS})
  await tove.page.fill('input[name="new_email"]', newEmail)
  await tove.page.fill('input[name="password"]', PASSWORD)
  await tove.page.getByRole("button", {name: "Change the address"}).click()
  await tove.page.locator(`[data-email-changed="${newEmail}"]`).waitFor({timeout: LIVE_MS})
  await tove.page.getByRole("button", {name: "Open hearth"}).click()
  await tove.page.waitForFunction(name => document.querySelector(".sidebar .me")?.textContent === name, tove.name)
  assert.deepEqual(tove.problems, [])
})
