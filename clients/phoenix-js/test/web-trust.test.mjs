// The web client's end-to-end trust (docs/e2e.md, "What clients keep and refuse") in a real
// browser (Debian's Chromium, driven by playwright-core), against what a server, a database or
// a stolen access token could do:
//
// - a recipient who is signed out while a conversation is made and written to reads it all
//   later, in a fresh browser, from the copies made for their identity;
// - a script in the signed-in page cannot export the wrap key or decrypt with it, private keys
//   are unwrapped non-extractable, and a wrap key kept by the previous version is not used;
// - a conversation key set with a stolen access token alone is refused and not written to,
//   and the victim's own key that it replaced is reported, and made anew only when asked;
// - an own security key that does not open is reported, not replaced, until the person
//   replaces it with their password;
// - a changed security key is announced (louder for a verified contact) and blocks sending
//   until acknowledged;
// - a ciphertext copied by the database into another message, redated or reordered is shown
//   with its warning, and a message group id a sender chose to sort first does not move its
//   message in the history;
// - a conversation the database turns into the "assistant's" stays end-to-end encrypted.
//
// Each test makes its own people. The database steps edit the SQLite database of the server
// under test (HEARTH_DATA_DIR, set by the Rust runner) with the sqlite3 command-line tool.

import {after, before, test} from "node:test"
import assert from "node:assert/strict"
import {execFileSync} from "node:child_process"
import {existsSync, readdirSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {join} from "node:path"
import {fileURLToPath} from "node:url"

import * as e2e from "../../../web/js/e2e.js"
import {CHROMIUM, LIVE_MS, PASSWORD, conversationButton, keysSet, launch, openConversation, person, pick, register, safetyNumber} from "../lib/browser.mjs"
import {HEARTH_URL as BASE_URL, User, api} from "../lib/hearth.mjs"

const TEST_TIMEOUT_MS = 90000
const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
const DATA_DIR = process.env.HEARTH_DATA_DIR

const sqlite3 = () => {
  try {
    execFileSync("sqlite3", ["-version"], {stdio: "ignore"})
    return true
  } catch {
    return false
  }
}

const noBrowser = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`
const noDatabase = noBrowser
  || (DATA_DIR ? false : "HEARTH_DATA_DIR is not set (the Rust runner sets it)")
  || (sqlite3() ? false : "the sqlite3 command-line tool is missing (apt-get install sqlite3)")

let browser
const contexts = []

before(async () => { if(!noBrowser){ browser = await launch() } })
after(async () => { if(browser){ await browser.close() } })

async function newPerson(name){
  const who = await person(browser, name)
  contexts.push(who.context)
  return who
}

/** Ann and Bob, registered in their own browsers. */
async function pair(){
  const [ann, bob] = [await newPerson("Ann"), await newPerson("Bob")]
  await Promise.all([register(ann, BASE_URL), register(bob, BASE_URL)])
  ann.id = await userIdOf(ann)
  bob.id = await userIdOf(bob)
  return {ann, bob}
}

/** Ann starts a private conversation with Bob, both open it and have each other's signed keys; its id. */
async function talking(ann, bob){
  await pick(ann, "New chat", [bob.email])
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Bob")
  await conversationButton(bob, "Ann").waitFor({timeout: LIVE_MS})
  await openConversation(bob, "Ann")
  for(const who of [ann, bob]){
    await who.page.click(".members summary")
    await keysSet(who, 2)
  }
  return conversationIdOf(ann)
}

const userIdOf = who => who.page.evaluate(() => JSON.parse(localStorage.getItem("hearth.session")).userId)
const conversationIdOf = who => new URL(who.page.url()).pathname.split("/").pop()

async function signIn(who){
  await who.page.goto(BASE_URL)
  await who.page.fill('input[name="email"]', who.email)
  await who.page.fill('input[name="password"]', PASSWORD)
  await who.page.click('form.auth button[type="submit"]')
  await who.page.waitForSelector(".layout", {timeout: LIVE_MS})
}

async function send(who, text){
  const box = who.page.locator("main textarea[name=message]")
  await box.fill(text)
  await box.press("Enter")
  await who.page.locator("article.message .text").filter({hasText: text}).waitFor({timeout: LIVE_MS})
}

/** Waits until `who` shows `text` as a genuine message (not flagged, not undecryptable). */
async function seesMessage(who, text){
  await who.page.waitForFunction(text => [...document.querySelectorAll("article.message:not(.flagged):not(.undecryptable) .text")]
    .some(e => e.textContent === text), text, {timeout: LIVE_MS})
}

const status = who => who.page.locator("main .status").textContent()

/** Runs SQL on the server's database (it keeps running: SQLite in WAL mode takes the write). */
function sql(query){
  const database = readdirSync(DATA_DIR).find(name => name.endsWith(".db"))
  return execFileSync("sqlite3", ["-cmd", ".timeout 5000", join(DATA_DIR, database), query], {encoding: "utf8"}).trim()
}

const blob = uuid => `X'${uuid.replace(/-/g, "")}'`
const uuid = hex => hex.toLowerCase().replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5")

/** The message groups of a conversation, oldest first. */
const groupsOf = conversationId => sql(`SELECT hex(id) FROM message_groups WHERE conversation_id = ${blob(conversationId)} ORDER BY id`)
  .split("\n").filter(Boolean).map(uuid)

/** `recipient`'s stored copy of a message group. */
const copyOf = (group, recipient) => sql(`SELECT content FROM messages WHERE message_group_id = ${blob(group)} AND recipient_id = ${blob(recipient)}`)

async function screenshot(who, name){
  await mkdir(SCREENSHOTS, {recursive: true})
  await who.page.screenshot({path: fileURLToPath(new URL(name, SCREENSHOTS))})
}

function noProblems(...people){
  for(const who of people){ assert.deepEqual(who.problems, [], `${who.name}'s page logged no error`) }
}

test("a recipient signed out meanwhile reads, in a fresh browser, all three messages sent to their security key", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  await bob.page.getByRole("button", {name: "Sign out"}).click()
  await bob.page.waitForSelector("form.auth")
  await bob.context.close()

  await pick(ann, "New chat", [bob.email])
  await ann.page.waitForFunction(() => document.querySelector("main h2")?.textContent === "Bob")
  const conversationId = conversationIdOf(ann)
  await ann.page.click(".members summary")
  // Bob has a security key but has not opened the conversation: no key of his for it yet.
  const row = ann.page.locator(`.members li[data-member="${bob.id}"]`)
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-trust="trusted"][data-key="none"]`, {timeout: LIVE_MS})
  assert.doesNotMatch(await ann.page.locator("main").textContent(), /Waiting for/)
  const texts = ["one: the keys are under the mat", "two: ünïcödé ✓", "three: <b>not bold</b>"]
  for(const text of texts){ await send(ann, text) }
  assert.equal(await status(ann), "")
  if(!noDatabase){
    const groups = groupsOf(conversationId)
    assert.equal(groups.length, 3)
    for(const group of groups){
      assert.match(copyOf(group, bob.id), /^v2i\./, "Bob's copies are for his identity")
      assert.match(copyOf(group, ann.id), /^v2\./, "Ann's own copies are for her key")
    }
  }

  const again = await newPerson("Bob")
  again.email = bob.email
  await signIn(again)
  await openConversation(again, "Ann")
  for(const text of texts){ await seesMessage(again, text) }
  assert.equal(await again.page.locator("article.message.undecryptable, article.message.flagged").count(), 0)
  // Bob's browser set a signed key on joining: Ann's next copy for him uses it.
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-key="verified"]`, {timeout: LIVE_MS})
  assert.match(await row.textContent(), /not verified/)
  await send(ann, "four: to your key now")
  await seesMessage(again, "four: to your key now")
  if(!noDatabase){ assert.match(copyOf(groupsOf(conversationId).at(-1), bob.id), /^v2\./) }
  noProblems(ann, again)
})

test("a script in the signed-in page cannot export the wrap key or decrypt with it, and unwrapped private keys are not extractable", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  // What the server hands Ann's page on a reload: her session (with her wrapped identity) and
  // the join reply (with her wrapped conversation key).
  const frames = []
  ann.page.on("websocket", socket => socket.on("framereceived", ({payload}) => frames.push(String(payload))))
  const [session] = await Promise.all([
    ann.page.waitForResponse(response => new URL(response.url()).pathname === "/auth/refresh"),
    ann.page.reload(),
  ])
  const {user} = await session.json()
  await openConversation(ann, "Bob")
  await keysSet(ann, 2)
  const joinReply = frames.map(frame => JSON.parse(frame))
    .find(([, , topic, event, body]) => topic === `conversation:${conversationId}` && event === "phx_reply" && body.response?.private_key)[4].response
  const keyText = key => typeof key === "string" ? key : JSON.stringify(key)

  const found = await ann.page.evaluate(async ({userId, conversationId, wrapped, publicJwk, identityKey, identityPrivateKey}) => {
    const e2e = await import("/js/e2e.js")
    const database = await new Promise((resolve, reject) => {
      const request = indexedDB.open("hearth")
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    const wrapKey = await new Promise((resolve, reject) => {
      const request = database.transaction("keys").objectStore("keys").get(userId)
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    database.close()
    const refusal = promise => promise.then(() => "allowed", error => error.name)
    const iv = crypto.getRandomValues(new Uint8Array(12))
    const sealed = new Uint8Array(wrapped.split(".")[2].length)
    const pair = await e2e.unwrapPrivateKey(wrapKey, conversationId, wrapped, publicJwk)
    const identity = await e2e.unwrapIdentity(wrapKey, userId, identityPrivateKey, identityKey)
    return {
      type: wrapKey.constructor.name,
      extractable: wrapKey.extractable,
      usages: [...wrapKey.usages].sort(),
      exportRaw: await refusal(crypto.subtle.exportKey("raw", wrapKey)),
      exportJwk: await refusal(crypto.subtle.exportKey("jwk", wrapKey)),
      decrypt: await refusal(crypto.subtle.decrypt({name: "AES-GCM", iv}, wrapKey, sealed)),
      encrypt: await refusal(crypto.subtle.encrypt({name: "AES-GCM", iv}, wrapKey, new Uint8Array(16))),
      privateExtractable: pair.privateKey.extractable,
      exportPrivate: await refusal(crypto.subtle.exportKey("jwk", pair.privateKey)),
      identityExtractable: [identity.signing.privateKey.extractable, identity.agreement.privateKey.extractable],
      exportSigning: await refusal(crypto.subtle.exportKey("pkcs8", identity.signing.privateKey)),
    }
  }, {
    userId: ann.id, conversationId, wrapped: keyText(joinReply.private_key), publicJwk: keyText(joinReply.public_keys[ann.id]),
    identityKey: user.identity_key, identityPrivateKey: user.identity_private_key,
  })
  assert.deepEqual(found, {
    type: "CryptoKey", extractable: false, usages: ["unwrapKey", "wrapKey"],
    exportRaw: "InvalidAccessError", exportJwk: "InvalidAccessError", decrypt: "InvalidAccessError", encrypt: "InvalidAccessError",
    privateExtractable: false, exportPrivate: "InvalidAccessError",
    identityExtractable: [false, false], exportSigning: "InvalidAccessError",
  })

  // A wrap key the previous version kept (encrypt and decrypt) is not used: sign in again.
  await ann.page.evaluate(async userId => {
    const old = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), "AES-GCM", false, ["encrypt", "decrypt"])
    const database = await new Promise(resolve => { const request = indexedDB.open("hearth"); request.onsuccess = () => resolve(request.result) })
    await new Promise((resolve, reject) => {
      const transaction = database.transaction("keys", "readwrite")
      transaction.objectStore("keys").put(old, userId)
      transaction.oncomplete = resolve
      transaction.onerror = () => reject(transaction.error)
    })
    database.close()
  }, ann.id)
  await ann.page.reload()
  await ann.page.waitForSelector("form.auth", {timeout: LIVE_MS})
  await signIn(ann)
  await openConversation(ann, "Bob")
  await send(ann, "signed in again")
  await seesMessage(bob, "signed in again")
  noProblems(ann, bob)
})

test("a key set with a stolen access token alone is refused: the next message is not readable with it, and the page says so", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  const topic = `conversation:${conversationId}`
  // Bob's access token, as a proxy or an injected script could take it.
  const [request] = await Promise.all([
    bob.page.waitForRequest(request => new URL(request.url()).pathname.startsWith("/api/") && Boolean(request.headers().authorization)),
    bob.page.reload(),
  ])
  const token = request.headers().authorization.replace(/^Bearer /, "")
  const mallory = new User("Mallory", {user: {id: bob.id, email: bob.email}, auth_token: token})
  try {
    mallory.connect()
    const joined = await mallory.join(topic)
    const attacker = await e2e.generateKeyPair()
    const someWrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
    await mallory.ok(topic, "set_encryption_keys", {
      public_key: attacker.publicJwk,
      private_key: await e2e.wrapPrivateKey(someWrapKey, conversationId, attacker),
    })
    const refused = ann.page.locator(`.notices .key-refused[data-user="${bob.id}"]`)
    await refused.waitFor({timeout: LIVE_MS})
    assert.match(await refused.textContent(), /Bob's key was refused/)
    await screenshot(ann, "web-key-refused.png")
    assert.equal(await ann.page.locator(`.members li[data-member="${bob.id}"]`).getAttribute("data-key"), "refused")

    await send(ann, "the door code is 4711")
    const {status, body} = await api("GET", `/api/messages?conversation_id=${conversationId}`, {token})
    assert.equal(status, 200)
    const copy = body.items.find(message => message.sender === ann.id).content
    assert.match(copy, /^v2i\./, "written to Bob's identity, not to the key set with his token")
    const annKey = joined.public_keys[ann.id]
    await assert.rejects(e2e.decryptMessage(attacker, bob.id, typeof annKey === "string" ? annKey : JSON.stringify(annKey), ann.id, conversationId, copy))
    if(!noDatabase){ assert.match(copyOf(groupsOf(conversationId).at(-1), bob.id), /^v2i\./) }
  } finally {
    await mallory.disconnect()
  }
  // Bob's own stored key was replaced too: his page says it does not open, and replaces it
  // only when he asks.
  await bob.page.reload()
  await openConversation(bob, "Ann")
  const own = bob.page.locator(".notices .own-key-unopenable")
  await own.waitFor({timeout: LIVE_MS})
  assert.match(await own.textContent(), /Your key for this conversation does not open with your password/)
  await screenshot(bob, "web-own-key-unopenable.png")
  const box = bob.page.locator("main textarea[name=message]")
  await box.fill("can I write?")
  await box.press("Enter")
  await bob.page.waitForFunction(() => /make a new key/.test(document.querySelector("main .status")?.textContent), null, {timeout: LIVE_MS})
  await own.getByRole("button", {name: "Make a new key"}).click()
  await own.waitFor({state: "detached", timeout: LIVE_MS})
  await send(bob, "a new key, signed by me")
  await seesMessage(ann, "a new key, signed by me")
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-key="verified"]`, {timeout: LIVE_MS})
  await ann.page.locator(`.notices .key-refused`).waitFor({state: "detached", timeout: LIVE_MS})
  noProblems(ann, bob)
})

test("an own security key that does not open is reported, not replaced, until the person replaces it with the password", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  await talking(ann, bob)
  // The stored identity is swapped for one wrapped under another key (as the server could).
  const secrets = await e2e.derive(bob.email, PASSWORD)
  const signedIn = await api("POST", "/auth/login", {body: {email: bob.email, password: secrets.authSecret, device_name: "elsewhere"}})
  const token = signedIn.body.auth_token
  const other = await e2e.generateIdentity()
  const someWrapKey = await e2e.importWrapKey(crypto.getRandomValues(new Uint8Array(32)))
  const published = await api("PUT", "/api/identity_key", {token, body: {
    identity_key: JSON.parse(other.publicKey),
    identity_private_key: await e2e.wrapIdentity(someWrapKey, bob.id, other),
    password: secrets.authSecret,
  }})
  assert.equal(published.status, 204, JSON.stringify(published.body))

  await bob.page.reload()
  const banner = bob.page.locator(".identity-problem")
  await banner.waitFor({timeout: LIVE_MS})
  assert.match(await banner.textContent(), /Your security key cannot be used\. Your security key does not open with your password\./)
  await screenshot(bob, "web-identity-unopenable.png")
  const stored = await api("GET", "/api/me", {token})
  assert.deepEqual(stored.body.identity_key, JSON.parse(other.publicKey), "nothing was replaced unasked")
  await openConversation(bob, "Ann")
  const box = bob.page.locator("main textarea[name=message]")
  await box.fill("can I write?")
  await box.press("Enter")
  await bob.page.waitForFunction(() => /security key does not open/.test(document.querySelector("main .status")?.textContent), null, {timeout: LIVE_MS})

  await banner.getByRole("button", {name: "Replace my security key"}).click()
  const dialog = bob.page.locator("dialog[open]")
  await dialog.locator("input[name=password]").fill(PASSWORD)
  await dialog.locator('button[type="submit"]').click()
  await bob.page.waitForSelector(".layout", {timeout: LIVE_MS})
  await openConversation(bob, "Ann")
  assert.equal(await banner.count(), 0)
  const replaced = await api("GET", "/api/me", {token})
  assert.notDeepEqual(replaced.body.identity_key, JSON.parse(other.publicKey))
  // Ann's page sees Bob's new security key as a change, acknowledged before she writes.
  await ann.page.locator(`.notices .key-changed[data-user="${bob.id}"]`).waitFor({timeout: LIVE_MS})
  await send(bob, "my new security key")
  await seesMessage(ann, "my new security key")
  await ann.page.locator(`.notices .key-changed[data-user="${bob.id}"]`).getByRole("button", {name: "Acknowledge"}).click()
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-key="verified"]`, {timeout: LIVE_MS})
  await send(ann, "welcome back")
  await seesMessage(bob, "welcome back")
  noProblems(ann, bob)
})

test("a changed security key is announced, louder for a verified contact, and blocks sending until acknowledged", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  const number = await safetyNumber(ann, bob.id)
  await ann.page.getByRole("button", {name: "Safety number with Bob"}).click()
  await screenshot(ann, "web-safety-number.png")
  await ann.page.locator("dialog[open]").getByRole("button", {name: "Mark as verified"}).click()
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-trust="verified"]`, {timeout: LIVE_MS})

  // Another identity is published for Bob (with his password, as after a reset or by
  // whoever has it): Ann's page sees a change, not a first sight.
  const secrets = await e2e.derive(bob.email, PASSWORD)
  const signedIn = await api("POST", "/auth/login", {body: {email: bob.email, password: secrets.authSecret, device_name: "elsewhere"}})
  assert.equal(signedIn.status, 200)
  const other = await e2e.generateIdentity()
  const published = await api("PUT", "/api/identity_key", {token: signedIn.body.auth_token, body: {
    identity_key: JSON.parse(other.publicKey),
    identity_private_key: await e2e.wrapIdentity(secrets.wrapKey, bob.id, other),
    password: secrets.authSecret,
  }})
  assert.equal(published.status, 204, JSON.stringify(published.body))

  const notice = ann.page.locator(`.notices .key-changed[data-user="${bob.id}"]`)
  await notice.waitFor({timeout: LIVE_MS})
  assert.match(await notice.textContent(), /Bob's security key changed\. Bob had been verified/)
  // Bob's own page stops writing with the identity it holds, which is no longer his.
  const elsewhere = bob.page.locator(".identity-problem")
  await elsewhere.waitFor({timeout: LIVE_MS})
  assert.match(await elsewhere.textContent(), /replaced on another device/)
  assert.match(await notice.getAttribute("class"), /\bverified\b/)
  await screenshot(ann, "web-key-changed.png")
  assert.equal(await ann.page.locator(`.members li[data-member="${bob.id}"]`).getAttribute("data-trust"), "changed")
  const before = groupsOf(conversationId).length
  const box = ann.page.locator("main textarea[name=message]")
  await box.fill("are you still you?")
  await box.press("Enter")
  await ann.page.waitForFunction(() => /security key of Bob changed/.test(document.querySelector("main .status")?.textContent), null, {timeout: LIVE_MS})
  assert.equal(await box.inputValue(), "are you still you?", "the text stays to send later")
  if(!noDatabase){ assert.equal(groupsOf(conversationId).length, before, "nothing was sent") }
  assert.notEqual(await safetyNumber(ann, bob.id), number, "the safety number changed with the key")

  await notice.getByRole("button", {name: "Acknowledge"}).click()
  await notice.waitFor({state: "detached"})
  assert.equal(await ann.page.locator(`.members li[data-member="${bob.id}"]`).getAttribute("data-trust"), "trusted")
  await box.press("Enter")
  await ann.page.locator("article.message .text").filter({hasText: "are you still you?"}).waitFor({timeout: LIVE_MS})
  if(!noDatabase){
    // His conversation key was signed by the old identity: the copy is for the new one.
    assert.match(copyOf(groupsOf(conversationId).at(-1), bob.id), /^v2i\./)
  }
  // Told again after a reload (the pin survives it): acknowledged, so only "not verified".
  await ann.page.reload()
  await openConversation(ann, "Bob")
  await ann.page.click(".members summary")
  await ann.page.waitForSelector(`.members li[data-member="${bob.id}"][data-trust="trusted"]`, {timeout: LIVE_MS})
  assert.equal(await notice.count(), 0)
  // Bob's page, reloaded, uses the new identity (it was wrapped with his password) and reads it all.
  await elsewhere.getByRole("button", {name: "Reload"}).click()
  await openConversation(bob, "Ann")
  await seesMessage(bob, "are you still you?")
  assert.equal(await elsewhere.count(), 0)
  noProblems(ann, bob)
})

test("a ciphertext the database copied into another message, redated or reordered is shown with its warning", {timeout: TEST_TIMEOUT_MS, skip: noDatabase}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  const texts = ["Yes, I approve the transfer of 10 EUR", "second, on time", "third, to be replaced"]
  for(const text of texts){ await send(ann, text) }
  for(const text of texts){ await seesMessage(bob, text) }
  const [first, second, third] = groupsOf(conversationId)
  sql(`UPDATE messages SET content = (SELECT content FROM messages WHERE message_group_id = ${blob(first)} AND recipient_id = ${blob(bob.id)})
         WHERE message_group_id = ${blob(third)} AND recipient_id = ${blob(bob.id)};
       UPDATE messages SET inserted_at = inserted_at + 2 * 86400000, updated_at = updated_at + 2 * 86400000
         WHERE message_group_id = ${blob(second)} AND recipient_id = ${blob(bob.id)};`)

  await bob.page.reload()
  await openConversation(bob, "Ann")
  const article = group => bob.page.locator(`article.message[data-group="${group}"]`)
  await article(third).locator(".warning").waitFor({timeout: LIVE_MS})
  const warnings = async group => (await article(group).locator(".warning p").allTextContents())
  assert.deepEqual(await warnings(third), [
    "Not as sent: the server moved or replaced this message.",
    "Reordered: the server delivered this message out of the order it was sent in.",
  ])
  const [redated] = await warnings(second)
  assert.match(redated, /^Redated: the server dates this message .+, but it was sent .+\.$/)
  assert.deepEqual(await warnings(first), [], "the original is genuine")
  await screenshot(bob, "web-flagged.png")
  // The copied text shows once as genuine (where it was sent), not where it was copied to.
  const genuine = await bob.page.locator("article.message:not(.flagged) .text").allTextContents()
  assert.equal(genuine.filter(text => text === texts[0]).length, 1)
  assert.ok(!genuine.includes(texts[1]), "the redated message is not shown as genuine")
  assert.equal(await article(third).locator(".text").count(), 0)
  assert.equal(await article(third).getByRole("button", {name: "Edit message"}).count(), 0)
  noProblems(ann, bob)
})

test("an assistant flag the database sets on a conversation does not make the browser send plain text", {timeout: TEST_TIMEOUT_MS, skip: noDatabase}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  await send(ann, "before the switch")
  await seesMessage(bob, "before the switch")
  // The join reply now says "assistant": true (the server would read the conversation).
  sql(`UPDATE conversations SET assistant_of = ${blob(ann.id)} WHERE id = ${blob(conversationId)}`)
  try {
    await ann.page.reload()
    await conversationButton(ann, "Bob").waitFor({timeout: LIVE_MS})
    await openConversation(ann, "Bob")
    const notice = ann.page.locator(".notices .downgrade-refused")
    await notice.waitFor({timeout: LIVE_MS})
    assert.match(await notice.textContent(), /The server claimed this conversation is not end-to-end encrypted\. That was refused/)
    assert.equal(await ann.page.textContent("main h2"), "Bob")
    await screenshot(ann, "web-downgrade-refused.png")
    await send(ann, "after the switch")
    await seesMessage(bob, "after the switch")
    const last = groupsOf(conversationId).at(-1)
    for(const who of [ann, bob]){
      assert.match(copyOf(last, who.id), /^v2i?\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `${who.name}'s copy is a ciphertext`)
    }
    // A browser that never saw it (Bob's, signed in anew) refuses too: Ann is in it.
    const again = await newPerson("Bob")
    again.email = bob.email
    await signIn(again)
    await openConversation(again, "Ann")
    await again.page.locator(".notices .downgrade-refused").waitFor({timeout: LIVE_MS})
    await seesMessage(again, "after the switch")
    await send(again, "and back")
    assert.match(copyOf(groupsOf(conversationId).at(-1), ann.id), /^v2\./)
    noProblems(ann, bob, again)
  } finally {
    sql(`UPDATE conversations SET assistant_of = NULL WHERE id = ${blob(conversationId)}`)
  }
})

test("a message whose group id its sender chose to sort first is shown where the server delivered it", {timeout: TEST_TIMEOUT_MS, skip: noBrowser}, async () => {
  const {ann, bob} = await pair()
  const conversationId = await talking(ann, bob)
  await send(ann, "the first message here")
  await seesMessage(bob, "the first message here")
  // Bob's own client, scripted: a genuine message under the smallest id it can choose.
  const secrets = await e2e.derive(bob.email, PASSWORD)
  const signedIn = await api("POST", "/auth/login", {body: {email: bob.email, password: secrets.authSecret, device_name: "script"}})
  const {auth_token: token, user} = signedIn.body
  const identity = await e2e.unwrapIdentity(secrets.wrapKey, bob.id, user.identity_private_key, user.identity_key)
  const annIdentity = (await api("GET", "/api/users?page_size=100", {token})).body.items.find(u => u.id === ann.id).identity_key
  const early = "00000000-0001-7000-8000-000000000001"
  const message = {id: early, sent_at: Date.now(), edit_of: null, stream: "0123456789abcdef", seq: 0, text: "listed first?"}
  const script = new User("Bob's script", {user: {id: bob.id, email: bob.email}, auth_token: token})
  try {
    script.connect()
    const topic = `conversation:${conversationId}`
    await script.join(topic)
    await script.ok(topic, "send_message", {
      message_group_id: early, client_msg_id: early,
      encrypted_messages: {
        [ann.id]: await e2e.encryptToIdentity(identity, bob.id, annIdentity, ann.id, conversationId, message),
        [bob.id]: await e2e.encryptToIdentity(identity, bob.id, identity.publicKey, bob.id, conversationId, message),
      },
    })
  } finally {
    await script.disconnect()
  }
  const texts = () => ann.page.locator("article.message .text").allTextContents()
  await seesMessage(ann, "listed first?")
  assert.deepEqual((await texts()).slice(-2), ["the first message here", "listed first?"], "live: where it arrived")
  await ann.page.reload()
  await openConversation(ann, "Bob")
  await seesMessage(ann, "listed first?")
  assert.deepEqual((await texts()).slice(-2), ["the first message here", "listed first?"], "in history: in the server's order")
  noProblems(ann)
})
