// The admin page (`/admin`) in a real browser (Debian's Chromium, driven by playwright-core),
// opened the way `hearth admin open` opens it: an SSH key made here with ssh-keygen is added to
// the server's `$HEARTH_DATA_DIR/admin_keys`, signs a challenge (`ssh-keygen -Y sign -n
// hearth-admin`), and its admin token asks `POST /admin/links` for a one-time link. Then each
// section's main action, checked from outside the page:
// - the link signs in once, and leaves the address bar at once; opened again it says to run
//   `hearth admin open` again;
// - Users: disabling an account (with a reason) makes its sign-in refused;
// - Rooms: a post deleted from a room is gone for a member, who hears `delete_post`;
// - Invites: a code made on the page (shown once, with a copy button) is kept, hashed, with its uses;
// - Audit: the chain verifies, and the actions above are in it; Providers are listed.
// Screenshots go to target/screenshots/web-admin-*.png.
//
// The steps share state and run in order; after a failure the rest are skipped. Needs
// /usr/bin/chromium, ssh-keygen and HEARTH_DATA_DIR (set by the Rust runner).

import {after} from "node:test"
import assert from "node:assert/strict"
import {execFileSync} from "node:child_process"
import {createHash} from "node:crypto"
import {appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync} from "node:fs"
import {mkdir} from "node:fs/promises"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {fileURLToPath} from "node:url"

import {CHROMIUM, LIVE_MS, launch, person} from "../lib/browser.mjs"
import {HEARTH_URL as BASE_URL, PASSWORD, User, api} from "../lib/hearth.mjs"
import {scenario} from "../lib/steps.mjs"

const SCREENSHOTS = new URL("../../../target/screenshots/", import.meta.url)
const DATA_DIR = process.env.HEARTH_DATA_DIR

const sshKeygen = () => {
  try {
    execFileSync("ssh-keygen", ["-?"], {stdio: "ignore"})
  } catch(error){
    // ssh-keygen prints its usage and exits 1 for `-?`: only a missing program is a problem.
    return error.code !== "ENOENT"
  }
  return true
}
const sqlite3 = () => {
  try {
    execFileSync("sqlite3", ["-version"], {stdio: "ignore"})
    return true
  } catch {
    return false
  }
}

function sql(query){
  const database = readdirSync(DATA_DIR).find(name => name.endsWith(".db"))
  return execFileSync("sqlite3", ["-cmd", ".timeout 5000", join(DATA_DIR, database), query], {encoding: "utf8"}).trim()
}

const skip = (existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: this test drives Debian's Chromium (apt-get install chromium)`)
  || (DATA_DIR ? false : "HEARTH_DATA_DIR is not set (the Rust runner sets it)")
  || (sshKeygen() ? false : "ssh-keygen is missing (apt-get install openssh-client)")
  || (sqlite3() ? false : "the sqlite3 command-line tool is missing (apt-get install sqlite3)")

const step = scenario({timeout: 60000, skip})

const keyDir = mkdtempSync(join(tmpdir(), "hearth-admin-key-"))
let browser, admin, adminToken, link
let mallory, ann, bob, lobby, spam
const tag = Math.random().toString(36).slice(2, 7)

after(async () => {
  if(browser){ await browser.close() }
  await Promise.all([ann, bob].filter(Boolean).map(user => user.disconnect()))
  rmSync(keyDir, {recursive: true, force: true})
})

const screenshot = async (page, name) => {
  await mkdir(SCREENSHOTS, {recursive: true})
  await page.screenshot({path: fileURLToPath(new URL(name, SCREENSHOTS)), fullPage: true})
}

/** Signs in as the administrator holding `key`, as `hearth admin login` does: the admin token. */
async function signIn(key){
  const {status, body} = await api("POST", "/admin/challenge")
  assert.equal(status, 200, JSON.stringify(body))
  const signature = execFileSync("ssh-keygen", ["-Y", "sign", "-n", "hearth-admin", "-f", key], {input: body.challenge, encoding: "utf8", stdio: ["pipe", "pipe", "ignore"]})
  const session = await api("POST", "/admin/session", {body: {challenge: body.challenge, signature}})
  assert.equal(session.status, 200, JSON.stringify(session.body))
  return session.body.admin_token
}

async function newLink(){
  const {status, body} = await api("POST", "/admin/links", {token: adminToken})
  assert.equal(status, 201, JSON.stringify(body))
  assert.ok(body.url.startsWith(`${BASE_URL}/admin#`), body.url)
  return body.url
}

const page = () => admin.page
const section = name => page().getByRole("button", {name, exact: true}).click()
const dialog = () => page().locator("dialog[open]")

step("an administrator's key, listed in the server's admin_keys, asks for a one-time link", async () => {
  const key = join(keyDir, "admin")
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `web-admin-${tag}`, "-f", key], {stdio: "ignore"})
  // Appended: the server re-reads the file when it changes.
  appendFileSync(join(DATA_DIR, "admin_keys"), "\n" + readFileSync(`${key}.pub`, "utf8"))
  adminToken = await signIn(key)

  ;[mallory, ann, bob] = await Promise.all([`Mallory${tag}`, `Ann${tag}`, `Bob${tag}`].map(name => User.register(name)))
  const created = await api("POST", "/api/rooms", {token: ann.token, body: {name: `lobby ${tag}`, visibility: "public"}})
  assert.equal(created.status, 201, JSON.stringify(created.body))
  lobby = created.body.id
  assert.equal((await api("POST", `/api/rooms/${lobby}/join`, {token: bob.token})).status, 200)
  for(const user of [ann, bob]){ user.connect() }
  await Promise.all([ann.join(`room:${lobby}`), bob.join(`room:${lobby}`)])
  await ann.ok(`room:${lobby}`, "post", {text: "welcome to the lobby"})
  spam = await bob.ok(`room:${lobby}`, "post", {text: `cheap watches ${tag}`})
  link = await newLink()
})

step("the link opens the admin page signed in, and leaves the address bar at once", async () => {
  browser = await launch()
  admin = await person(browser, "Admin", {width: 1280, height: 860})
  const response = await page().goto(link)
  assert.equal(response.status(), 200)
  assert.match(response.headers()["content-security-policy"] ?? "", /default-src 'none'; script-src 'self'/)
  await page().getByRole("heading", {name: "hearth administration"}).waitFor({timeout: LIVE_MS})
  await page().getByText("Signed in as SHA256:").waitFor({timeout: LIVE_MS})
  assert.equal(new URL(page().url()).hash, "", "the code left the address bar")
  // Opened again: used, and the page says what to do.
  const again = await person(browser, "Again")
  await again.page.goto(link)
  await again.page.getByText("used, expired or unknown").waitFor({timeout: LIVE_MS})
  await again.page.getByText("hearth admin open").first().waitFor()
  await screenshot(again.page, "web-admin-used-link.png")
  await again.context.close()
})

step("Users: disabling an account with a reason refuses its sign-in", async () => {
  await page().locator('input[name="query"]').fill(mallory.email)
  await page().locator('input[name="query"]').press("Enter")
  const row = page().locator("tr", {hasText: mallory.email})
  await row.waitFor({timeout: LIVE_MS})
  await row.getByRole("button", {name: "Disable"}).click()
  // Without a reason nothing is sent.
  await dialog().locator('input[name="reason"]').fill("   ")
  await dialog().getByRole("button", {name: "Disable"}).click()
  await dialog().getByText("Give a reason.").waitFor()
  await dialog().locator('input[name="reason"]').fill("sends spam")
  await dialog().getByRole("button", {name: "Disable"}).click()
  await row.getByText("disabled: sends spam").waitFor({timeout: LIVE_MS})
  const login = await api("POST", "/auth/login", {body: {email: mallory.email, password: PASSWORD}})
  assert.equal(login.status, 403, JSON.stringify(login.body))
  assert.equal(login.body.error, "account_disabled")
  // Roles: granted from the same row.
  await row.getByRole("button", {name: "Grant analyst"}).click()
  await row.getByRole("button", {name: "Take back analyst"}).waitFor({timeout: LIVE_MS})
  await screenshot(page(), "web-admin-users.png")
})

step("Rooms: a post deleted by the administrator is gone for a member", async () => {
  await section("Rooms")
  // Found by name: the server holds other tests' rooms too.
  await page().locator('input[name="query"]').fill(`lobby ${tag}`)
  await page().locator('input[name="query"]').press("Enter")
  const room = page().locator("tr", {hasText: `lobby ${tag}`})
  await room.waitFor({timeout: LIVE_MS})
  await room.getByRole("button", {name: "Read posts"}).click()
  const post = page().locator(`tr[data-post="${spam.id}"]`)
  await post.waitFor({timeout: LIVE_MS})
  await screenshot(page(), "web-admin-rooms.png")
  await post.getByRole("button", {name: "Delete"}).click()
  await dialog().locator('input[name="reason"]').fill("spam")
  await dialog().getByRole("button", {name: "Delete"}).click()
  await post.waitFor({state: "detached", timeout: LIVE_MS})
  assert.deepEqual(await ann.expect(`room:${lobby}`, "delete_post"), {message_id: spam.id})
  const {status, body} = await api("GET", `/api/rooms/${lobby}/messages`, {token: ann.token})
  assert.equal(status, 200)
  assert.deepEqual(body.items.map(item => item.text), ["welcome to the lobby"])
})

step("Invites: a code made on the page, shown once with a copy button, is kept hashed with its uses", async () => {
  await section("Invites")
  await page().locator('input[name="uses"]').fill("2")
  await page().locator('select[name="expires"]').selectOption({label: "1 day"})
  await page().getByRole("button", {name: "Create invite"}).click()
  const code = await page().locator('input[name="code"]').inputValue({timeout: LIVE_MS})
  assert.match(code, /^[A-Za-z0-9_-]{43}$/)
  await page().getByRole("button", {name: "Copy"}).waitFor()
  await page().getByText("Good for 2 sign-up(s)").waitFor()
  await screenshot(page(), "web-admin-invites.png")
  // The server under test takes anyone (accounts.registration = "open"), so the code is found
  // where sign-up would look for it: kept hashed, with its two uses.
  const hash = createHash("sha256").update(code).digest("hex").toUpperCase()
  assert.equal(sql(`SELECT uses_left FROM invites WHERE hex(code_hash) = '${hash}'`), "2")
  assert.equal(sql(`SELECT count(*) FROM invites WHERE code_hash = CAST('${code}' AS BLOB)`), "0", "the code itself is not kept")
})

step("Audit: the chain verifies and holds what was done; Providers are listed", async () => {
  await section("Audit")
  await page().getByText(/^Chain verified: \d+ entries/).waitFor({timeout: LIVE_MS})
  for(const action of ["admin.link.redeem", "user.disable", "user.role.grant", "room.message.delete", "invite.create"]){
    await page().locator("td", {hasText: new RegExp(`^${action.replaceAll(".", "\\.")}$`)}).first().waitFor({timeout: LIVE_MS})
  }
  await screenshot(page(), "web-admin-audit.png")
  await section("Providers")
  await page().locator("section h2", {hasText: "Providers"}).waitFor()
  await page().locator("tbody tr").first().waitFor({timeout: LIVE_MS})
  await screenshot(page(), "web-admin-providers.png")
  assert.deepEqual(admin.problems, [], "the page logged no error")
})

step("Audit: newest entries deleted behind the server's back are noticed through the entry this browser verified", async () => {
  await section("Audit")
  await page().getByText(/^Chain verified: \d+ entries/).waitFor({timeout: LIVE_MS})
  const newest = Number(sql("SELECT max(seq) FROM admin_audit"))
  const kept = await page().evaluate(() => JSON.parse(localStorage.getItem("hearth.admin.audit_witness")))
  assert.equal(kept.seq, newest, "the newest entry verified is kept")
  // What remains is a chain that holds on its own: only the kept entry shows the cut.
  sql(`DELETE FROM admin_audit WHERE seq >= ${newest - 1}`)
  await page().getByRole("button", {name: "Check again"}).click()
  await page().getByText(`The chain breaks at entry ${newest - 1}: the log now ends before an entry verified earlier`).waitFor({timeout: LIVE_MS})
  await screenshot(page(), "web-admin-audit-cut.png")
  assert.deepEqual(admin.problems, [], "the page logged no error")
})
