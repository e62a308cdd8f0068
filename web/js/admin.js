// hearth's admin page (`/admin`), opened with the one-time link `hearth admin open` prints:
// `/admin#<code>`. The code is in the fragment, which the browser never sends to a server; it
// is taken out of the address bar at once (so it is neither kept in history nor shown), then
// spent with `POST /admin/links/redeem` for a 15-minute admin token, kept in this page's
// memory only: reloading or closing the page signs out.
//
// Sections: Users (find, disable and enable with a reason, delete after confirming, grant and
// take back roles), Rooms (list, read a room's posts, delete one with a reason), Audit (the log,
// and whether its chain holds), Providers, Invites (made with uses and expiry; the code shown
// once, with a copy button). Every failure shows the server's own `message`.

import {fill, h, modal} from "./dom.js"

/** The assistant's fixed sender id in rooms. */
const ASSISTANT = "00000000-0000-0000-0000-0000a5510001"
const PAGE_SIZE = 50
const ROLES = ["analyst", "operator"]

const root = document.getElementById("admin")
/** `{token, fingerprint, expiresAt}` once signed in. */
let session = null

if(window.matchMedia?.("(prefers-color-scheme: dark)").matches){
  document.documentElement.dataset.theme = "night"
}

/** An error the server answered, with its `message`. */
class Refusal extends Error {
  constructor(status, message){
    super(message)
    this.status = status
  }
}

async function call(method, path, body){
  const headers = {accept: "application/json"}
  if(session){ headers.authorization = `Bearer ${session.token}` }
  if(body !== undefined){ headers["content-type"] = "application/json" }
  let response
  try {
    response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)})
  } catch {
    throw new Refusal(0, "The server cannot be reached.")
  }
  const text = await response.text()
  let reply = null
  try { reply = text ? JSON.parse(text) : null } catch { reply = null }
  if(response.ok){ return reply }
  let message = reply?.message ?? `The server answered ${response.status}.`
  if(reply?.fields){
    message += " " + Object.entries(reply.fields).map(([field, problems]) => `${field}: ${problems.join(", ")}`).join("; ")
  }
  if(response.status === 401 && session){ signedOut(message) }
  throw new Refusal(response.status, message)
}

const when = text => text ? new Date(text).toLocaleString() : "—"
const shortId = id => id ? id.slice(0, 8) : "—"

/** A section's place for the server's refusals. */
const alertBox = () => h("p", {class: "alert error", role: "alert"})
const say = (box, error) => { box.textContent = error?.message ?? String(error) }

function signedOut(message){
  session = null
  fill(root, h("main", {class: "signed-out"},
    h("h1", {}, "hearth administration"),
    h("p", {role: "alert", class: "error"}, message),
    h("p", {}, "Run ", h("code", {}, "hearth admin open"), " again on a machine where you are signed in with ",
      h("code", {}, "hearth admin login"), ", and open the link it prints within 60 seconds.")))
}

async function start(){
  const code = location.hash.slice(1)
  if(code){
    // Out of the address bar and the history before anything else.
    history.replaceState(null, "", location.pathname + location.search)
  }
  if(!code){
    signedOut("This page opens with a one-time link.")
    return
  }
  try {
    const login = await call("POST", "/admin/links/redeem", {code})
    session = {token: login.admin_token, fingerprint: login.fingerprint, expiresAt: login.expires_at}
  } catch(error){
    signedOut(error.message)
    return
  }
  layout()
}

const SECTIONS = {Users: users, Rooms: rooms, Audit: audit, Providers: providers, Invites: invites}

function layout(){
  const main = h("main", {id: "section"})
  const nav = h("nav", {"aria-label": "Sections"},
    Object.keys(SECTIONS).map(name => h("button", {type: "button", "data-section": name, onclick: () => show(name)}, name)))
  fill(root, h("div", {class: "admin"},
    h("header", {},
      h("h1", {}, "hearth administration"),
      h("span", {class: "who muted"}, "Signed in as ", h("span", {class: "mono"}, session.fingerprint),
        ` until ${new Date(session.expiresAt).toLocaleTimeString()} (reloading signs out)`)),
    nav, main))
  const show = name => {
    for(const button of nav.querySelectorAll("button")){
      if(button.dataset.section === name){ button.setAttribute("aria-current", "page") } else { button.removeAttribute("aria-current") }
    }
    fill(main, SECTIONS[name]())
    main.querySelector("input, button")?.focus()
  }
  show("Users")
}

/** A table of `rows` under `headings`, or a line saying there is nothing. */
function table(headings, rows, empty){
  if(!rows.length){ return h("p", {class: "empty"}, empty) }
  return h("div", {class: "table"}, h("table", {},
    h("thead", {}, h("tr", {}, headings.map(heading => h("th", {scope: "col"}, heading)))),
    h("tbody", {}, rows)))
}

/**
 * A paged list: `load(pageToken)` gives a page; `render(items)` the table. "Show more" fetches
 * the next page while there is one.
 */
function pagedList(load, render){
  const holder = h("div")
  const error = alertBox()
  let items = []
  let next = null
  const more = h("button", {type: "button", class: "more", hidden: true, onclick: () => fetchPage(next, false)}, "Show more")
  const fetchPage = async (token, fresh) => {
    error.textContent = ""
    try {
      const page = await load(token)
      items = fresh ? page.items : items.concat(page.items)
      next = page.page_token
      fill(holder, render(items))
      more.hidden = !next
    } catch(failure){ say(error, failure) }
  }
  return {element: h("div", {}, error, holder, more), reload: () => fetchPage(null, true)}
}

/** Asks for a reason (required); resolves with it, or null when cancelled. */
function askReason(title, explanation, submit, {danger = false} = {}){
  const input = h("input", {name: "reason", required: true, maxlength: 1000, autocomplete: "off"})
  return modal(title, h("div", {}, h("p", {}, explanation), h("label", {}, h("span", {}, "Reason (kept in the audit log)"), input)), {
    submit,
    danger,
    action: () => input.value.trim() || Promise.reject(new Error("Give a reason.")),
  })
}

function users(){
  const query = h("input", {name: "query", type: "search", placeholder: "Email or display name", "aria-label": "Find accounts"})
  const error = alertBox()
  const list = pagedList(
    token => call("GET", "/admin/users?" + new URLSearchParams({page_size: PAGE_SIZE, query: query.value.trim(), ...(token ? {page_token: token} : {})})),
    items => table(["Email", "Name", "Created", "Last seen", "Devices", "Status", "Roles", "Actions"], items.map(row), "No accounts."))
  const act = async work => {
    error.textContent = ""
    try {
      await work()
      await list.reload()
    } catch(failure){ say(error, failure) }
  }
  function row(user){
    const status = user.disabled
      ? h("span", {class: "tag disabled", title: user.disabled_reason ?? ""}, `disabled: ${user.disabled_reason ?? ""}`)
      : h("span", {class: "tag"}, "active")
    const roleButtons = ROLES.map(role => {
      const held = user.roles.includes(role)
      return h("button", {type: "button", "data-role": role, onclick: () => act(() => call("POST", `/admin/users/${user.id}/roles`, {role, granted: !held}))},
        held ? `Take back ${role}` : `Grant ${role}`)
    })
    const toggle = user.disabled
      ? h("button", {type: "button", onclick: () => act(() => call("POST", `/admin/users/${user.id}/enable`))}, "Enable")
      : h("button", {type: "button", class: "danger", onclick: async () => {
        const reason = await askReason(`Disable ${user.email}?`, "Every session is signed out and sign-in is refused until the account is enabled again.", "Disable", {danger: true})
        if(reason){ await act(() => call("POST", `/admin/users/${user.id}/disable`, {reason})) }
      }}, "Disable")
    const remove = h("button", {type: "button", class: "danger", onclick: async () => {
      const reason = await askReason(`Delete ${user.email}?`, "The account and everything of it go: devices, memberships, messages, keys. This cannot be undone.", "Delete for good", {danger: true})
      if(reason){ await act(() => call("DELETE", `/admin/users/${user.id}`, {reason})) }
    }}, "Delete")
    return h("tr", {"data-user": user.email},
      h("td", {}, user.email), h("td", {}, user.display_name), h("td", {}, when(user.created_at)), h("td", {}, when(user.last_seen_at)),
      h("td", {}, user.devices), h("td", {}, status),
      h("td", {}, user.roles.length ? user.roles.map(role => h("span", {class: "tag"}, role)) : "—"),
      h("td", {class: "actions"}, toggle, remove, roleButtons))
  }
  const form = h("form", {class: "search", onsubmit: event => { event.preventDefault(); list.reload() }},
    query, h("button", {type: "submit", class: "primary"}, "Find"))
  list.reload()
  return h("section", {"aria-labelledby": "users-heading"}, h("h2", {id: "users-heading"}, "Users"), form, error, list.element)
}

function rooms(){
  const query = h("input", {name: "query", type: "search", placeholder: "Room name or topic", "aria-label": "Find rooms"})
  const posts = h("div", {class: "posts"})
  const list = pagedList(
    token => call("GET", "/admin/rooms?" + new URLSearchParams({page_size: PAGE_SIZE, query: query.value.trim(), ...(token ? {page_token: token} : {})})),
    items => table(["Name", "Visibility", "Members", "Moderators", "Created", "Last post", ""], items.map(room => h("tr", {"data-room": room.name},
      h("td", {}, h("strong", {}, room.name), room.topic ? h("div", {class: "muted"}, room.topic) : null),
      h("td", {}, h("span", {class: "tag"}, room.visibility)),
      h("td", {}, room.members),
      h("td", {}, room.moderators.map(moderator => moderator.email).join(", ") || "—"),
      h("td", {}, when(room.inserted_at)), h("td", {}, when(room.last_post_at)),
      h("td", {class: "actions"}, h("button", {type: "button", onclick: () => openRoom(room)}, "Read posts")))), "No rooms."))
  function openRoom(room){
    const error = alertBox()
    const roomPosts = pagedList(
      // Each page says who sent its posts (their addresses, by id).
      token => call("GET", `/admin/rooms/${room.id}/messages?` + new URLSearchParams({page_size: PAGE_SIZE, ...(token ? {page_token: token} : {})}))
        .then(page => ({...page, items: page.items.map(post => ({...post, senderEmail: page.senders?.[post.sender] ?? null}))})),
      items => table(["Posted", "Sender", "Text", ""], items.map(post => h("tr", {"data-post": post.id},
        h("td", {}, when(post.inserted_at)),
        h("td", {title: post.sender}, post.sender === ASSISTANT ? "assistant" : post.senderEmail ?? shortId(post.sender)),
        h("td", {class: "text"}, post.text),
        h("td", {class: "actions"}, h("button", {type: "button", class: "danger", onclick: async () => {
          const reason = await askReason("Delete this post?", "It goes from the room for everyone; its members see it go.", "Delete", {danger: true})
          if(!reason){ return }
          error.textContent = ""
          try {
            await call("DELETE", `/admin/rooms/${room.id}/messages/${post.id}`, {reason})
            await roomPosts.reload()
          } catch(failure){ say(error, failure) }
        }}, "Delete")))), "No posts."))
    fill(posts, h("header", {}, h("h3", {}, `Posts in ${room.name}`), h("span", {class: "muted"}, "newest first; reading is recorded in the audit log")),
      error, roomPosts.element)
    roomPosts.reload()
    posts.scrollIntoView?.({block: "start"})
  }
  const form = h("form", {class: "search", onsubmit: event => { event.preventDefault(); list.reload() }},
    query, h("button", {type: "submit", class: "primary"}, "Find"))
  list.reload()
  return h("section", {"aria-labelledby": "rooms-heading"}, h("h2", {id: "rooms-heading"}, "Rooms"),
    h("p", {class: "intro muted"}, "Rooms are readable by the server, so administrators can moderate them. End-to-end encrypted conversations are not here: the server cannot read them."),
    form, list.element, posts)
}

// The newest audit entry this browser verified, per server: a chain cut back at its end still
// holds, so the next check asks whether it still holds that entry (a witness the server does not keep).
const WITNESS_KEY = "hearth.admin.audit_witness"

function audit(){
  const verdict = h("p", {class: "status", role: "status"}, "Checking the chain…")
  const check = async () => {
    try {
      const known = (() => { try { return JSON.parse(localStorage.getItem(WITNESS_KEY) ?? "null") } catch { return null } })()
      const query = known ? "?" + new URLSearchParams({known_seq: known.seq, known_hash: known.hash}) : ""
      const result = await call("GET", "/admin/audit/verify" + query)
      if(result.verified && result.newest){ localStorage.setItem(WITNESS_KEY, JSON.stringify(result.newest)) }
      fill(verdict, result.verified
        ? h("span", {class: "ok"}, `Chain verified: ${result.entries} entries, each chained to the one before` +
            (known ? `, entry ${known.seq} (the newest when this browser last checked) still in place.` : "."))
        : h("span", {class: "bad"}, `The chain breaks at entry ${result.broken?.seq}: ${result.broken?.problem}. The log was edited or entries deleted.`))
    } catch(failure){ fill(verdict, h("span", {class: "error"}, failure.message)) }
  }
  const list = pagedList(
    token => call("GET", "/admin/audit?" + new URLSearchParams({page_size: PAGE_SIZE, ...(token ? {page_token: token} : {})})),
    items => table(["#", "When", "Outcome", "Action", "Key", "Target", "Reason"], items.map(entry => h("tr", {},
      h("td", {}, entry.seq), h("td", {class: "nowrap"}, when(entry.at)),
      h("td", {}, h("span", {class: `tag ${entry.outcome}`}, entry.outcome)),
      h("td", {class: "mono nowrap"}, entry.action),
      h("td", {class: "mono nowrap", title: entry.fingerprint ?? ""}, entry.fingerprint ? entry.fingerprint.slice(0, 17) + "…" : "—"),
      h("td", {}, entry.target ?? "—"), h("td", {}, entry.reason ?? "—"))), "The log is empty."))
  const refresh = () => { check(); list.reload() }
  refresh()
  return h("section", {"aria-labelledby": "audit-heading"}, h("h2", {id: "audit-heading"}, "Audit log"),
    h("p", {class: "intro muted"}, "Every administrator's sign-in and action, newest first. Nothing deletes it; an edited or deleted entry breaks the chain, and this browser remembers the newest entry it checked, so entries cut from the end are noticed too."),
    verdict, h("button", {type: "button", onclick: refresh}, "Check again"), list.element)
}

function providers(){
  const error = alertBox()
  const holder = h("div", {}, h("p", {class: "muted"}, "Loading…"))
  call("GET", "/admin/providers").then(report => fill(holder, table(["Order", "Provider", "Free tier", "Images"],
    report.items.map((provider, index) => h("tr", {},
      h("td", {}, index + 1), h("td", {}, provider.provider), h("td", {}, provider.summary), h("td", {}, provider.images ? "yes" : "no"))),
    "No providers."))).catch(failure => { holder.replaceChildren(); say(error, failure) })
  return h("section", {"aria-labelledby": "providers-heading"}, h("h2", {id: "providers-heading"}, "Providers"),
    h("p", {class: "intro muted"}, "The AI providers in the order they are tried, and the health of the free tier's keys (counts only: keys never leave the keyguard)."),
    error, holder)
}

function invites(){
  const uses = h("input", {name: "uses", type: "number", min: 1, max: 1000, value: "1", required: true})
  const expires = h("select", {name: "expires"},
    [["1 hour", 3600], ["1 day", 86400], ["7 days", 604800], ["30 days", 2592000]].map(([label, secs]) =>
      h("option", {value: secs, selected: secs === 604800}, label)))
  const error = alertBox()
  const made = h("div", {"aria-live": "polite"})
  const form = h("form", {class: "row", onsubmit: async event => {
    event.preventDefault()
    error.textContent = ""
    made.replaceChildren()
    try {
      const invite = await call("POST", "/admin/invites", {uses: Number(uses.value), expires_in_secs: Number(expires.value)})
      const code = h("input", {name: "code", readonly: true, value: invite.code, "aria-label": "Invite code"})
      const copied = h("span", {class: "muted", role: "status"})
      const copy = h("button", {type: "button", class: "primary", onclick: async () => {
        try {
          await navigator.clipboard.writeText(invite.code)
          copied.textContent = "Copied."
        } catch {
          code.select()
          copied.textContent = "Select and copy it (Ctrl+C): the browser refused the clipboard."
        }
      }}, "Copy")
      fill(made, h("p", {class: "ok"}, "Invite code made. It is shown this once: copy it now."),
        h("div", {class: "secret"}, code, copy), copied,
        h("p", {class: "muted"}, `Good for ${invite.uses} sign-up(s) until ${when(invite.expires_at)}.`))
      copy.focus()
    } catch(failure){ say(error, failure) }
  }},
  h("label", {}, h("span", {}, "Sign-ups"), uses),
  h("label", {}, h("span", {}, "Works for"), expires),
  h("button", {type: "submit", class: "primary"}, "Create invite"))
  return h("section", {"aria-labelledby": "invites-heading"}, h("h2", {id: "invites-heading"}, "Invites"),
    h("p", {class: "intro muted"}, "Codes for signing up when the server takes new accounts by invitation (accounts.registration = \"invite\")."),
    form, error, made)
}

start()
