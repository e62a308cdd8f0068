// The account pages: what the emails link to (`/#/confirm-email/<token>`,
// `/#/reset-password/<token>`, `/#/change-email/<token>`), "Forgot password?", and the email
// part of Settings. Each email also carries its token as a code; a code is entered where the
// flow that sent it continues (the forgot-password page, Settings). Also the people picker
// (New chat, New group, Add people). Loaded only when needed, so the first load stays small.

import {ApiError, Session, call, signIn} from "./api.js"
import {h, fill} from "./dom.js"
import {derive} from "./e2e.js"

const root = document.getElementById("app")
const MIN_PASSWORD = 8
const LINK = /^#\/(confirm-email|reset-password|change-email)\/([\w-]+)$/

const confirmEmail = token => call("POST", "/auth/confirm", {body: {token}})
const requestPasswordReset = email => call("POST", "/auth/password/request", {body: {email}})
/** Whose a reset token is (`{id, email, display_name}`), without spending it. */
const resetAccount = async token => (await call("POST", "/auth/password/confirm", {body: {token}})).user

/**
 * Sets a new password with a reset token and signs in with it. The server removed the
 * identity (wrapped under the forgotten password): `established` makes a new one.
 */
async function reset(token, email, newPassword){
  const secrets = await derive(email, newPassword)
  await call("POST", "/auth/password/reset", {body: {token, new_password: secrets.authSecret, new_password_confirmation: secrets.authSecret}})
  return new Session(await signIn(email, secrets), secrets.wrapKey).established()
}

/**
 * Moves the account to `newEmail` with an email-change token, as the SDK's `change_email`:
 * the keys derive from the email too, so the password stays but every private key and the
 * identity are wrapped again, replaced with the address in one transaction. The server signs
 * every session out; this one signs in again at the new address.
 */
async function changeEmail(session, token, newEmail, password){
  const moving = (async () => {
    const old = await derive(session.user.email, password)
    const next = await derive(newEmail, password)
    await session.api("PATCH", "/api/email", {token, email: newEmail, password: old.authSecret, new_password: next.authSecret,
      ...await session.rewrapped(old.wrapKey, next.wrapKey)})
    await session.signInAgain(newEmail, next)
  })()
  // The socket's token waits for the new sign-in (Session.token).
  session.changing = moving
  try {
    await moving
  } finally {
    session.changing = null
  }
}

const say = error => error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`
/** A page in the sign-in form's frame: the form, to which `onSubmit` attaches. */
function page(label, ...children){
  const form = h("form", {class: "auth account", "aria-label": label}, h("h1", {}, "hearth"), h("h2", {}, label), ...children)
  fill(root, form)
  return form
}
const field = (label, props) => {
  const input = h("input", props)
  return [input, h("label", {}, h("span", {}, label), input)]
}

/**
 * Runs `work` when the form is submitted, showing progress and errors in `status`; the
 * button stays disabled once `work` succeeds.
 */
function onSubmit(form, status, busy, work){
  const button = form.querySelector("button[type=submit]")
  form.addEventListener("submit", async event => {
    event.preventDefault()
    button.disabled = true
    status.className = "muted"
    status.textContent = busy
    try {
      await work()
    } catch(error){
      status.className = "error"
      status.textContent = say(error)
      button.disabled = false
    }
  })
}

/**
 * Opens the page an emailed link leads to. The token leaves the address bar at once (it is
 * a secret: not for the history or a shared screen). `app` is `{start(session, options),
 * showAuth(notice)}`, signin.js's `pages`.
 */
export function openLink(hash, app){
  const [, kind, token] = hash.match(LINK) ?? []
  history.replaceState(null, "", "/")
  if(kind === "confirm-email"){ return confirmPage(token, app) }
  if(kind === "reset-password"){ return resetPage(token, app) }
  if(kind === "change-email"){ return changeEmailPage(token, app) }
  return app.showAuth("That link is not one hearth knows.")
}

const openHearth = () => h("button", {type: "button", class: "primary", onclick: () => location.assign("/")}, "Open hearth")
const backToSignIn = app => h("button", {type: "button", class: "link", onclick: () => app.showAuth()}, "Back to sign in")

async function confirmPage(token){
  const status = h("p", {class: "muted", role: "status"}, "Confirming your email address…")
  page("Confirm your email address", status)
  try {
    await confirmEmail(token)
    page("Email address confirmed", h("p", {role: "status", "data-confirmed": ""}, "Thank you: your email address is confirmed."), openHearth())
  } catch(error){
    page("Email address not confirmed",
      h("p", {class: "error", role: "alert"}, error.code === "invalid_token"
        ? "This link is invalid or has expired. It works once: if you opened it before, your address is confirmed already. Otherwise ask for a new link in Settings."
        : say(error)),
      openHearth())
  }
}

/** "Forgot password?": asks for a reset link, then takes its code if the person has that instead. */
export function forgotPage(email, app){
  const [address, addressLabel] = field("Email", {type: "email", name: "email", autocomplete: "username", required: true, value: email})
  const status = h("p", {class: "error", role: "alert"})
  const form = page("Forgot your password?",
    h("p", {class: "muted"}, "We email you a link to choose a new one."),
    addressLabel, status, h("button", {type: "submit", class: "primary"}, "Send the link"), backToSignIn(app))
  onSubmit(form, status, "Sending…", async () => {
    await requestPasswordReset(address.value.trim())
    const [code, codeLabel] = field("Code from the email", {name: "code", autocomplete: "one-time-code", required: true})
    const codeStatus = h("p", {class: "error", role: "alert"})
    const next = page("Check your email",
      h("p", {role: "status"}, `If an account uses ${address.value.trim()}, we sent it a link to choose a new password. Open the link, or enter the code from the email here.`),
      codeLabel, codeStatus, h("button", {type: "submit", class: "primary"}, "Continue"), backToSignIn(app))
    onSubmit(next, codeStatus, "Checking…", () => resetPage(code.value.trim(), app, true))
  })
  address.focus()
}

/**
 * Choosing a new password with a reset token. The old keys were wrapped with the forgotten
 * password: the page says plainly that what they protect is lost, and the sign-in that
 * follows makes new ones (a new identity; new conversation keys as conversations open).
 */
async function resetPage(token, app, fromCode = false){
  let account
  try {
    account = await resetAccount(token)
  } catch(error){
    // From the code form: its status shows the error.
    if(fromCode){ throw error }
    page("Reset your password",
      h("p", {class: "error", role: "alert"}, error.code === "invalid_token" ? "This link is invalid or has expired: ask for a new one." : say(error)),
      h("button", {type: "button", class: "primary", onclick: () => forgotPage("", app)}, "Ask for a new link"), backToSignIn(app))
    return
  }
  const [email, emailLabel] = field("Email", {type: "email", name: "email", autocomplete: "username", required: true, value: account.email ?? ""})
  const [password, passwordLabel] = field("New password (at least 8 characters)", {type: "password", name: "new_password", autocomplete: "new-password", required: true, minlength: MIN_PASSWORD})
  const [again, againLabel] = field("The new password again", {type: "password", name: "new_password_confirmation", autocomplete: "new-password", required: true})
  const status = h("p", {class: "error", role: "alert"})
  const form = page("Choose a new password",
    account.email ? h("p", {}, `For ${account.email}.`) : emailLabel,
    h("div", {class: "alert danger", role: "note", "data-reset-warning": ""},
      h("strong", {}, "Messages protected by your old password cannot be read any more. "),
      "Your keys were locked with it and hearth keeps no other copy: earlier messages in your encrypted conversations stay unreadable, on every device. " +
      "hearth makes new keys for you, so new messages work as before; the people you talk with are told that your security key changed."),
    passwordLabel, againLabel, status,
    h("button", {type: "submit", class: "primary"}, "Set the new password"), backToSignIn(app))
  onSubmit(form, status, "Setting the new password and making new keys…", async () => {
    if(password.value.length < MIN_PASSWORD){ throw new Error("The new password needs at least 8 characters.") }
    if(password.value !== again.value){ throw new Error("The two passwords differ.") }
    const session = await reset(token, email.value.trim(), password.value)
    password.value = again.value = ""
    await app.start(session, {renewKeys: true})
  })
  password.focus()
}

/**
 * Moving the account to a new address with an email-change token: signed in (this device's
 * session) or signing in here first. The password stays; the keys are wrapped again for the
 * new address (Session.changeEmail), and the new address gets a confirmation link.
 */
async function changeEmailPage(token, app, live = null){
  const session = live ?? await Session.resume().catch(() => null)
  const [current, currentLabel] = field("Current email", {type: "email", name: "email", autocomplete: "username", required: true})
  const [password, passwordLabel] = field("Password", {type: "password", name: "password", autocomplete: "current-password", required: true})
  const [next, nextLabel] = field("New email", {type: "email", name: "new_email", required: true})
  const status = h("p", {class: "error", role: "alert"})
  const form = page("Change your email address",
    session ? h("p", {}, `Signed in as ${session.user.email}.`) : currentLabel,
    nextLabel, passwordLabel,
    h("p", {class: "muted"}, "Your password stays the same. Your keys are locked again for the new address on this device, so your history stays readable; every device is signed out."),
    status, h("button", {type: "submit", class: "primary"}, "Change the address"), session ? null : backToSignIn(app))
  let signedIn = session
  onSubmit(form, status, "Locking your keys for the new address…", async () => {
    signedIn ??= await Session.login(current.value.trim(), password.value)
    await changeEmail(signedIn, token, next.value.trim(), password.value)
    password.value = ""
    page("Email address changed",
      h("p", {role: "status", "data-email-changed": signedIn.user.email},
        `Your account now uses ${signedIn.user.email}. We sent a link to that address: open it to confirm it.`),
      openHearth())
  })
  next.focus()
}

/**
 * The email part of Settings, filled into `box`: the address, asking for a change link (then
 * taking its code) and confirming the address with a code or a new link. `leave()` stops the
 * signed-in view before the change page replaces it.
 */
export function emailSettings(box, session, leave, app){
  const status = h("p", {class: "muted", role: "status"})
  const run = (busy, work) => async () => {
    status.className = "muted"
    status.textContent = busy
    try {
      status.textContent = await work()
    } catch(error){
      status.className = "error"
      status.textContent = say(error)
    }
  }
  const [code, codeLabel] = field("Code from an email", {name: "email_code", autocomplete: "one-time-code"})
  const useCode = async () => {
    const token = code.value.trim()
    if(!token){ throw new Error("Enter the code from the email first.") }
    // A code from the change email: its page takes over. Otherwise it may confirm the address.
    if(box.dataset.changeAsked){
      leave()
      await changeEmailPage(token, app, session)
      return ""
    }
    await confirmEmail(token)
    return "Your email address is confirmed."
  }
  fill(box,
    h("summary", {}, "Email address"),
    h("p", {}, session.user.email),
    h("div", {class: "actions"},
      h("button", {type: "button", onclick: run("Sending…", async () => {
        await session.api("POST", "/api/token/email_change")
        box.dataset.changeAsked = "true"
        return `We sent a link to ${session.user.email}: open it, or enter its code here.`
      })}, "Change the address"),
      h("button", {type: "button", onclick: run("Sending…", async () => {
        await session.api("POST", "/api/token/email_confirm")
        return `We sent a new confirmation link to ${session.user.email}.`
      })}, "Send a new confirmation link")),
    codeLabel,
    h("button", {type: "button", onclick: run("Checking…", useCode)}, "Use the code"),
    status)
}

/**
 * People to tick: the directory's, filtered as the person types by name or by an address
 * shown. The server shows only contacts' addresses, so what is typed is also looked up
 * (`GET /api/users?query=`): a name, or someone's exact address, finds people not listed.
 */
export function peoplePicker(client, users, type, excluded = []){
  const filter = h("input", {type: "search", placeholder: "A name, or their exact email", "aria-label": "Filter people"})
  const pick = h("div", {class: "pick"})
  const none = h("p", {class: "muted"})
  const rows = new Map()
  const matches = user => {
    const needle = filter.value.trim().toLowerCase()
    return `${user.display_name}\n${user.email ?? ""}`.toLowerCase().includes(needle)
  }
  const show = () => {
    for(const {user, row} of rows.values()){ row.hidden = !matches(user) }
    none.hidden = [...rows.values()].some(({row}) => !row.hidden)
    none.textContent = rows.size ? "Nobody by that name or address." : "Nobody else is here yet."
  }
  const add = user => {
    if(user.id === client.me || excluded.includes(user.id)){ return }
    const row = h("label", {class: "inline person", "data-user": user.email ?? null},
      h("input", {type, name: "person", value: user.id}),
      h("span", {}, h("span", {}, user.display_name), user.email ? h("span", {class: "muted"}, user.email) : null))
    const old = rows.get(user.id)?.row
    if(old){
      row.firstChild.checked = old.firstChild.checked
      old.replaceWith(row)
    } else {
      pick.append(row)
    }
    rows.set(user.id, {user, row})
  }
  users.forEach(add)
  let asked = 0
  let timer = null
  filter.addEventListener("input", () => {
    show()
    clearTimeout(timer)
    const query = filter.value.trim()
    if(!query || query.length > 320){ return }
    const ask = ++asked
    timer = setTimeout(async () => {
      const reply = await client.session.api("GET", `/api/users?query=${encodeURIComponent(query)}&page_size=50`).catch(() => null)
      if(!reply || ask !== asked){ return }
      for(const user of reply.items){
        client.users.set(user.id, {...client.users.get(user.id), ...user})
        add(user)
      }
      show()
    }, 250)
  })
  show()
  const box = h("div", {}, filter, pick, none)
  const chosen = () => [...rows.values()].map(({row}) => row.firstChild).filter(input => input.checked).map(input => input.value)
  return {box, chosen}
}
