// Building the page from data without ever parsing data as HTML: every string becomes a text
// node or an attribute value, so a message holding `<script>` shows as those characters.

/**
 * `h("button", {class: "primary", onclick: f, "aria-label": "…"}, "text", child, …)`.
 * Keys starting with "on" are event listeners; `null`/`false` props and children are skipped.
 */
export function h(tag, props = {}, ...children){
  const element = document.createElement(tag)
  for(const [name, value] of Object.entries(props ?? {})){
    if(value === null || value === undefined || value === false){ continue }
    if(name.startsWith("on") && typeof value === "function"){
      element.addEventListener(name.slice(2), value)
    } else if(name === "class"){
      element.className = value
    } else if(name === "value" || name === "checked" || name === "disabled" || name === "selected"){
      element[name] = value
    } else {
      element.setAttribute(name, value === true ? "" : String(value))
    }
  }
  append(element, children)
  return element
}

function append(element, children){
  for(const child of children){
    if(child === null || child === undefined || child === false){ continue }
    if(Array.isArray(child)){ append(element, child); continue }
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces an element's children. */
export function fill(element, ...children){
  element.replaceChildren()
  append(element, children)
  return element
}

/**
 * A modal dialog; resolves with the value its action returns, or null when cancelled. With
 * `submit: null` it only informs, and has one button, Close.
 */
export function modal(title, body, {submit = "OK", action = () => true, danger = false} = {}){
  return new Promise(resolve => {
    const error = h("p", {class: "error", role: "alert"})
    const form = h("form", {method: "dialog"},
      h("h3", {}, title), body, error,
      h("div", {class: "buttons"},
        h("button", {type: "button", onclick: () => close(null)}, submit === null ? "Close" : "Cancel"),
        submit === null ? null : h("button", {type: "submit", class: danger ? "primary danger" : "primary"}, submit)))
    const dialog = h("dialog", {"aria-label": title}, form)
    const close = value => { dialog.close(); dialog.remove(); resolve(value) }
    form.addEventListener("submit", async event => {
      event.preventDefault()
      error.textContent = ""
      try {
        const value = await action()
        if(value !== undefined && value !== false){ close(value) }
      } catch(failure){
        error.textContent = failure.message
      }
    })
    dialog.addEventListener("cancel", event => { event.preventDefault(); close(null) })
    document.body.append(dialog)
    dialog.showModal()
  })
}
