// Driving hearth's web client in Debian's Chromium (playwright-core): what the browser test
// (test/web.test.mjs) and the browser measurements (bench/web.mjs) both do.

import assert from "node:assert/strict"

import {chromium} from "playwright-core"

export const CHROMIUM = "/usr/bin/chromium"
export const PASSWORD = "correct horse battery"
/** How long a change may take to reach another browser. */
export const LIVE_MS = 10000

export const launch = () => chromium.launch({executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"]})

/** A person with their own browser context (own storage), watched for errors and every request. */
export async function person(browser, name, viewport = {width: 1100, height: 760}){
  const context = await browser.newContext({viewport})
  const page = await context.newPage()
  const email = `${name.toLowerCase()}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.org`
  const who = {name, email, context, page, requests: [], problems: []}
  page.on("request", request => who.requests.push(request.url()))
  page.on("console", message => {
    if(message.type() === "error" || /Content.Security.Policy/i.test(message.text())){ who.problems.push(message.text()) }
  })
  page.on("pageerror", error => who.problems.push(String(error)))
  return who
}

/** Opens the web client and creates the person's account there. */
export async function register(who, baseUrl){
  const response = await who.page.goto(baseUrl)
  assert.equal(response.status(), 200)
  assert.match(response.headers()["content-security-policy"] ?? "", /default-src 'none'; script-src 'self'/)
  await who.page.getByRole("tab", {name: "Create account"}).click()
  await who.page.fill('input[name="email"]', who.email)
  await who.page.fill('input[name="password"]', PASSWORD)
  await who.page.fill('input[name="display_name"]', who.name)
  await who.page.click('form.auth button[type="submit"]')
  await who.page.waitForSelector(".layout", {timeout: LIVE_MS})
  await who.page.waitForFunction(name => document.querySelector(".sidebar .me")?.textContent === name, who.name)
}

/** A conversation's row in the list, by its title (the whole title: a preview may name people too). */
export const conversationButton = (who, title) => who.page.locator("button[data-conversation]", {
  has: who.page.locator(".name", {hasText: new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`)}),
})

export async function openConversation(who, title){
  await conversationButton(who, title).click()
  await who.page.waitForSelector("main textarea[name=message]")
}

/**
 * Clicks a sidebar action (New chat, New group), ticks people by email and submits. Each
 * address is typed into the filter first: the directory shows only contacts' addresses.
 */
export async function pick(who, buttonName, emails, {alias} = {}){
  await who.page.getByRole("button", {name: buttonName, exact: true}).click()
  const dialog = who.page.locator("dialog[open]")
  await dialog.waitFor()
  for(const email of emails){
    await dialog.locator('input[type="search"]').fill(email)
    await dialog.locator(`label[data-user="${email}"] input`).check()
  }
  if(alias !== undefined){ await dialog.locator('input[name="alias"]').fill(alias) }
  await dialog.locator('button[type="submit"]').click()
  await dialog.waitFor({state: "detached", timeout: LIVE_MS})
}

/**
 * Waits until the open conversation's members panel lists `count` members, each with a usable
 * key: the person's own opened (`data-key="ready"`), everyone else's signed by their identity
 * and accepted (`data-key="verified"`).
 */
export async function keysSet(who, count){
  await who.page.waitForFunction(count => {
    const members = [...document.querySelectorAll(".members li[data-member]")]
    return members.length === count && members.every(li => ["ready", "verified"].includes(li.dataset.key))
  }, count, {timeout: LIVE_MS})
}

/** The safety number `who` is shown for the member `memberId` of the open conversation (the dialog is closed again). */
export async function safetyNumber(who, memberId){
  await who.page.locator(`.members li[data-member="${memberId}"] button`, {hasText: "Safety number"}).click()
  const dialog = who.page.locator("dialog[open]")
  const number = await dialog.locator("[data-safety-number]").getAttribute("data-safety-number")
  await dialog.getByRole("button", {name: /^(Cancel|Close)$/}).click()
  await dialog.waitFor({state: "detached"})
  return number
}

/** Ann and Bob, registered, in a private conversation both have open with keys set. */
export async function privatePair(browser, baseUrl){
  const ann = await person(browser, "Ann")
  const bob = await person(browser, "Bob")
  await Promise.all([register(ann, baseUrl), register(bob, baseUrl)])
  await pick(ann, "New chat", [bob.email])
  await conversationButton(bob, "Ann").waitFor({timeout: LIVE_MS})
  await openConversation(bob, "Ann")
  for(const who of [ann, bob]){
    await who.page.click(".members summary")
    await keysSet(who, 2)
  }
  return {ann, bob}
}
