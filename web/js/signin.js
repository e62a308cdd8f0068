// Signing in: the page a new visitor sees first. It loads only what signing in needs (api.js,
// e2e.js); the signed-in client (client.js, with the keyring and the socket) comes after.

import {ApiError, Session} from "./api.js"
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

export function showAuth(notice = ""){
  applyProfile({theme: matchMedia("(prefers-color-scheme: dark)").matches ? "night" : "day", magnification: 1})
  let mode = "login"
  const email = h("input", {type: "email", name: "email", autocomplete: "username", required: true})
  const password = h("input", {type: "password", name: "password", autocomplete: "current-password", required: true, minlength: 8})
  const displayName = h("input", {name: "display_name", autocomplete: "nickname", maxlength: 100})
  const nameField = h("label", {hidden: true}, h("span", {}, "Display name (optional)"), displayName)
  const status = h("p", {class: "error", role: "alert"}, notice)
  const submit = h("button", {type: "submit", class: "primary"}, "Sign in")
  const forgot = h("button", {type: "button", class: "link", onclick: async () => (await account()).forgotPage(email.value.trim(), pages)}, "Forgot password?")
  const tab = (name, label) => h("button", {type: "button", role: "tab", "aria-selected": String(name === mode), onclick: () => select(name)}, label)
  const tabs = h("div", {class: "tabs", role: "tablist"})
  const select = name => {
    mode = name
    nameField.hidden = name !== "register"
    password.autocomplete = name === "register" ? "new-password" : "current-password"
    submit.textContent = name === "register" ? "Create account" : "Sign in"
    forgot.hidden = name === "register"
    fill(tabs, tab("login", "Sign in"), tab("register", "Create account"))
  }
  select("login")
  const form = h("form", {class: "auth", "aria-label": "Sign in"},
    h("h1", {}, "hearth"),
    h("p", {class: "muted"}, "Your password never leaves this device: it derives the keys that encrypt your messages."),
    tabs,
    h("label", {}, h("span", {}, "Email"), email),
    h("label", {}, h("span", {}, "Password (at least 8 characters)"), password),
    nameField, status, submit, forgot)
  form.addEventListener("submit", async event => {
    event.preventDefault()
    submit.disabled = true
    status.textContent = ""
    status.className = "muted"
    status.textContent = "Deriving your keys…"
    try {
      const session = mode === "register"
        ? await Session.register(email.value.trim(), password.value, displayName.value.trim())
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
