// Signing in: the page a new visitor sees first. It loads only what signing in needs (api.js,
// e2e.js); the signed-in client (client.js, with the keyring and the socket) comes after.

import {ApiError, Session, registrationPolicy} from "./api.js"
import {h, fill} from "./dom.js"

export const root = document.getElementById("app")
/** The account pages (emailed links, password reset, email change): loaded only when used. */
export const account = () => import("./account.js")

export function applyProfile(user){
  document.documentElement.dataset.theme = user.theme === "night" ? "night" : "day"
  const magnification = Math.min(1.4, Math.max(0.7, Number(user.magnification) || 1))
  document.documentElement.style.setProperty("--magnification", String(magnification))
}

/** Starts the signed-in client, loading it first if no one has yet. */
export async function startClient(session, options){
  const {Client} = await import("./client.js")
  return new Client(session, options).start()
}

/** What the account pages call back: signing in ends in the client. */
export const pages = {showAuth, start: startClient}

/**
 * The sign-in page, with its Create-account tab as the server's sign-up policy has it: open,
 * by invitation (an "Invite code" field, `invite` prefilled from an invite link) or closed
 * (sign-in only). `notice` says why the person is here (signed out, a link that failed).
 */
export function showAuth(notice = "", {invite: code = ""} = {}){
  applyProfile({theme: matchMedia("(prefers-color-scheme: dark)").matches ? "night" : "day", magnification: 1})
  let mode = code ? "register" : "login"
  /** Until the server says otherwise: a closed or invite-only server refuses with its reason. */
  let policy = "open"
  const email = h("input", {type: "email", name: "email", autocomplete: "username", required: true})
  const password = h("input", {type: "password", name: "password", autocomplete: "current-password", required: true, minlength: 8})
  const credentials = h("div", {},
    h("label", {}, h("span", {}, "Email"), email),
    h("label", {}, h("span", {}, "Password (at least 8 characters)"), password))
  const displayName = h("input", {name: "display_name", autocomplete: "nickname", maxlength: 100})
  const nameField = h("label", {hidden: true}, h("span", {}, "Display name (optional)"), displayName)
  const invite = h("input", {name: "invite", autocomplete: "off", spellcheck: "false", maxlength: 200, value: code})
  const inviteField = h("label", {hidden: true}, h("span", {}, "Invite code (from this server's administrators)"), invite)
  const closedNote = h("div", {class: "closed-note", role: "note", hidden: true},
    h("p", {}, "This server takes no new accounts. If you have one, sign in."),
    h("button", {type: "button", class: "primary", onclick: () => select("login")}, "Sign in"))
  const status = h("p", {class: "error", role: "alert"}, notice)
  const submit = h("button", {type: "submit", class: "primary"}, "Sign in")
  const forgot = h("button", {type: "button", class: "link", onclick: async () => (await account()).forgotPage(email.value.trim(), pages)}, "Forgot password?")
  const tab = (name, label) => h("button", {type: "button", role: "tab", "aria-selected": String(name === mode), onclick: () => select(name)}, label)
  const tabs = h("div", {class: "tabs", role: "tablist"})
  const select = name => {
    mode = name
    const registering = name === "register"
    const closed = registering && policy === "closed"
    const invited = registering && policy === "invite"
    credentials.hidden = closed
    submit.hidden = closed
    closedNote.hidden = !closed
    nameField.hidden = !registering || closed
    inviteField.hidden = !invited
    invite.required = invited
    password.autocomplete = registering ? "new-password" : "current-password"
    submit.textContent = registering ? "Create account" : "Sign in"
    forgot.hidden = registering
    fill(tabs, tab("login", "Sign in"), tab("register", "Create account"))
  }
  select(mode)
  registrationPolicy().then(answer => {
    policy = answer
    select(mode)
  })
  const form = h("form", {class: "auth", "aria-label": "Sign in"},
    h("h1", {}, "hearth"),
    h("p", {class: "muted"}, "Your password never leaves this device: it derives the keys that encrypt your messages."),
    tabs, credentials, nameField, inviteField, closedNote, status, submit, forgot)
  form.addEventListener("submit", async event => {
    event.preventDefault()
    submit.disabled = true
    status.textContent = ""
    status.className = "muted"
    status.textContent = "Deriving your keys…"
    try {
      const session = mode === "register"
        ? await Session.register(email.value.trim(), password.value, displayName.value.trim(), inviteField.hidden ? "" : invite.value.trim())
        : await Session.login(email.value.trim(), password.value)
      password.value = ""
      await startClient(session)
    } catch(error){
      status.className = "error"
      status.textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`
      submit.disabled = false
    }
  })
  fill(root, form)
  email.focus()
}
