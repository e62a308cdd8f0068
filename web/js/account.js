// The account pages: what the emails link to (`/#/confirm-email/<token>`,
// `/#/reset-password/<token>`, `/#/change-email/<token>`), "Forgot password?", and the email
// part of Settings. Each email also carries its token as a code; a code is entered where the
// flow that sent it continues (the forgot-password page, Settings). Loaded only when needed,
// so the first load stays small.

import {ApiError, Session, confirmEmail, requestPasswordReset, resetAccount} from "./api.js"
import {h, fill} from "./dom.js"

const root = document.getElementById("app")
const MIN_PASSWORD = 8
const LINK = /^#\/(confirm-email|reset-password|change-email)\/([\w-]+)$/

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
 * showAuth(notice)}` from app.js.
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
    h("button", {type: "submit", class: "primary danger"}, "Set the new password"), backToSignIn(app))
  onSubmit(form, status, "Setting the new password and making new keys…", async () => {
    if(password.value.length < MIN_PASSWORD){ throw new Error("The new password needs at least 8 characters.") }
    if(password.value !== again.value){ throw new Error("The two passwords differ.") }
    const session = await Session.reset(token, email.value.trim(), password.value)
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
    await signedIn.changeEmail(token, next.value.trim(), password.value)
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
