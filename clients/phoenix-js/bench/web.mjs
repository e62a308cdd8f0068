// Measures the web client in Debian's Chromium (a measurement, not a test):
//  1. first load: every response of a fresh browser opening `/`, their uncompressed bytes,
//     and whether any request leaves the server's origin; then what signing up in that page
//     loads on top (the signed-in client's modules and the API's replies);
//  2. send → display: Ann sends N messages one after another in her browser; for each, the
//     time from her Enter keypress to the message appearing decrypted in Bob's browser.
//     Both pages timestamp with performance.timeOrigin + performance.now() (one machine, one
//     clock): Ann's page in a capturing keydown listener, before the client sees the key; Bob's
//     page in a MutationObserver when the text node arrives.
//
// It starts its own server (release build, fresh data dir, a free port):
//   cargo build --release -p hearth && node clients/phoenix-js/bench/web.mjs [--messages 100] [--hearth PATH]
// or measures a running one: HEARTH_URL=http://127.0.0.1:4000 node clients/phoenix-js/bench/web.mjs

import {spawn} from "node:child_process"
import {mkdtempSync, rmSync} from "node:fs"
import {createServer} from "node:net"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {fileURLToPath} from "node:url"
import {parseArgs} from "node:util"

import {LIVE_MS, PASSWORD, launch, privatePair} from "../lib/browser.mjs"

const {values: options} = parseArgs({options: {
  messages: {type: "string", default: "100"},
  hearth: {type: "string", default: fileURLToPath(new URL("../../../target/release/hearth", import.meta.url))},
}})
const MESSAGES = Number(options.messages)

const freePort = () => new Promise(resolve => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const {port} = server.address()
    server.close(() => resolve(port))
  })
})

async function startServer(){
  if(process.env.HEARTH_URL){ return {url: process.env.HEARTH_URL.replace(/\/+$/, ""), stop: () => {}} }
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-web-bench-"))
  const port = await freePort()
  const child = spawn(options.hearth, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {stdio: "ignore"})
  const url = `http://127.0.0.1:${port}`
  for(let i = 0; i < 200; i++){
    if(await fetch(`${url}/health`).then(r => r.ok, () => false)){
      return {url, stop: () => { child.kill(); rmSync(dataDir, {recursive: true, force: true}) }}
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  child.kill()
  throw new Error(`${options.hearth} did not start`)
}

async function firstLoad(browser, url){
  const context = await browser.newContext()
  const page = await context.newPage()
  const responses = []
  page.on("response", response => responses.push(response))
  await page.goto(url, {waitUntil: "networkidle"})
  // Bodies are read before anything else happens in the page (a navigation would drop them);
  // a reply without one (204) counts as empty.
  const measure = list => Promise.all(list.map(async response => ({
    url: response.url(), status: response.status(), bytes: (await response.body().catch(() => "")).length,
    // What travelled: the body as sent (compressed when the server compressed it).
    transferred: (await response.request().sizes()).responseBodySize,
  })))
  const files = await measure(responses.splice(0))
  // Signing up in the same page: what the signed-in client loads on top.
  await page.getByRole("tab", {name: "Create account"}).click()
  await page.fill('input[name="email"]', `first-load-${Date.now()}@example.org`)
  await page.fill('input[name="password"]', PASSWORD)
  await page.click('form.auth button[type="submit"]')
  await page.waitForSelector(".layout", {timeout: LIVE_MS})
  await page.waitForLoadState("networkidle")
  const signedIn = await measure(responses.splice(0))
  await context.close()
  const origin = new URL(url).origin
  const measured = [...files, ...signedIn]
  return {files, signedIn, thirdParty: measured.filter(file => new URL(file.url).origin !== origin)}
}

async function sendToDisplay(browser, url){
  const {ann, bob} = await privatePair(browser, url)
  await bob.page.evaluate(() => {
    window.__shownAt = new Map()
    new MutationObserver(() => {
      for(const text of document.querySelectorAll("article.message .text")){
        if(!window.__shownAt.has(text.textContent)){ window.__shownAt.set(text.textContent, performance.timeOrigin + performance.now()) }
      }
    }).observe(document.querySelector(".messages").parentElement, {childList: true, subtree: true, characterData: true})
  })
  await ann.page.evaluate(() => {
    window.__sentAt = new Map()
    document.querySelector("main textarea[name=message]").addEventListener("keydown", event => {
      if(event.key === "Enter"){ window.__sentAt.set(event.target.value, performance.timeOrigin + performance.now()) }
    }, {capture: true})
  })
  const box = ann.page.locator("main textarea[name=message]")
  const latencies = []
  for(let i = 0; i < MESSAGES; i++){
    const text = `measured message ${i} ${Math.random().toString(36).slice(2)}`
    await box.fill(text)
    await box.press("Enter")
    await bob.page.waitForFunction(text => window.__shownAt.has(text), text, {timeout: LIVE_MS})
    const sent = await ann.page.evaluate(text => window.__sentAt.get(text), text)
    const shown = await bob.page.evaluate(text => window.__shownAt.get(text), text)
    latencies.push(shown - sent)
  }
  return latencies.sort((a, b) => a - b)
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

const server = await startServer()
const browser = await launch()
try {
  const load = await firstLoad(browser, server.url)
  const total = load.files.reduce((sum, file) => sum + file.bytes, 0)
  const transferred = load.files.reduce((sum, file) => sum + file.transferred, 0)
  console.log(`first load of ${server.url}/: ${load.files.length} responses, ${total} bytes (${(total / 1024).toFixed(1)} KiB) uncompressed, ${transferred} bytes (${(transferred / 1024).toFixed(1)} KiB) transferred, ${load.thirdParty.length} third-party`)
  const show = file => console.log(`  ${file.status} ${String(file.bytes).padStart(7)} ${String(file.transferred).padStart(7)}  ${new URL(file.url).pathname}`)
  load.files.forEach(show)
  const sum = (files, key) => files.reduce((total, file) => total + file[key], 0)
  const loaded = load.signedIn.filter(file => !new URL(file.url).pathname.startsWith("/api/") && !new URL(file.url).pathname.startsWith("/auth/"))
  console.log(`signing up then loads ${load.signedIn.length} responses; its ${loaded.length} files: ${sum(loaded, "bytes")} bytes (${(sum(loaded, "bytes") / 1024).toFixed(1)} KiB) uncompressed, ${sum(loaded, "transferred")} transferred; first load and these together: ${((total + sum(loaded, "bytes")) / 1024).toFixed(1)} KiB`)
  loaded.forEach(show)
  const latencies = await sendToDisplay(browser, server.url)
  const ms = value => `${value.toFixed(1)} ms`
  console.log(`send → display over ${latencies.length} messages: median ${ms(quantile(latencies, 0.5))}, p90 ${ms(quantile(latencies, 0.9))}, min ${ms(latencies[0])}, max ${ms(latencies.at(-1))}`)
} finally {
  await browser.close()
  server.stop()
}
