// hearth's web client once signed in: the conversation list, conversations (end-to-end
// encrypted on this device), the assistant, settings and devices. Plain DOM, no framework:
// every piece of data reaches the page as text (dom.js), never as HTML.
//
// What the keyring (keys.js) decides is shown the way Signal Desktop shows it: a changed
// security key is a notice in the conversation, and sending to that person waits until it is
// acknowledged; each member has a safety number to compare and mark verified; a message the
// server moved, redated or reordered is shown with its warning instead of as genuine; older
// (v1) messages that cannot be checked are marked; an own key that does not open and a
// refused claim that a conversation is not end-to-end are said so.
//
// Rooms (rooms.js, loaded once the client has started) share the list, the main pane and the
// title's unread count; they are not end-to-end encrypted, and say so.

import {ApiError} from "./api.js"
import {h, fill, modal} from "./dom.js"
import {parseIdentityKey} from "./e2e.js"
import {Keyring, TrustError, TrustStore, uuidv7} from "./keys.js"
import {ChannelError, Socket} from "./phoenix.js"
import {account, applyProfile, pages, root, showAuth} from "./signin.js"

/** The sender of the assistant's replies (a fixed id that is no user's). */
export const ASSISTANT = "00000000-0000-0000-0000-0000a5510001"
const SYSTEM = "system:general"
/** Conversations joined at start; more would pass the server's 100 channels per socket. */
const JOINED_AT_MOST = 90
/** The server's channels per socket, less a few for conversations and rooms opened later. */
export const CHANNELS_AT_MOST = 96
const TYPING_IDLE_MS = 3000
const TYPING_SHOWN_MS = 8000
const IMAGE_PATH = /^\/api\/assistant\/images\/[0-9a-f-]{36}$/
const CONFIGURE_PATH = /^\/configure\/[0-9a-f]{64}\.[0-9a-f-]{36}$/

/** One formatter for every message: making one per call (toLocaleTimeString) is slow. */
const clock = new Intl.DateTimeFormat([], {hour: "2-digit", minute: "2-digit"})
export const time = iso => {
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? "" : clock.format(date)
}
const moment = new Intl.DateTimeFormat([], {dateStyle: "medium", timeStyle: "short"})
export const when = value => {
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? "at an unknown time" : moment.format(date)
}

const DAY_MS = 86400000
export const sameDay = (a, b) => a.toDateString() === b.toDateString()
const longDay = new Intl.DateTimeFormat([], {weekday: "long", day: "numeric", month: "long", year: "numeric"})
/** The separator above a day's messages: "Today", "Yesterday" or the date. */
export function dayLabel(iso){
  const date = new Date(iso)
  const today = new Date()
  if(sameDay(date, today)){ return "Today" }
  if(sameDay(date, new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1))){ return "Yesterday" }
  return longDay.format(date)
}
const weekday = new Intl.DateTimeFormat([], {weekday: "short"})
const shortDay = new Intl.DateTimeFormat([], {day: "numeric", month: "short"})
const fullDay = new Intl.DateTimeFormat([], {dateStyle: "medium"})
/** A conversation's last activity in the list: the time today, the weekday this week, else the date. */
export function listTime(iso){
  const date = new Date(iso)
  if(Number.isNaN(date.getTime())){ return "" }
  const now = new Date()
  if(sameDay(date, now)){ return clock.format(date) }
  if(now - date < 6 * DAY_MS){ return weekday.format(date) }
  return (date.getFullYear() === now.getFullYear() ? shortDay : fullDay).format(date)
}

/** Text with its web addresses (http and https only) as links: nodes, never HTML. */
export function linked(text){
  const parts = []
  let rest = 0
  for(const match of text.matchAll(/\bhttps?:\/\/[^\s<>"]+/gi)){
    let address = match[0]
    // Punctuation after an address ends the sentence; a ")" closing a "(" in it is its own.
    while(/[.,;:!?'"\])]$/.test(address) && !(address.endsWith(")") && address.split("(").length >= address.split(")").length)){
      address = address.slice(0, -1)
    }
    let url = null
    try { url = new URL(address) } catch { continue }
    parts.push(text.slice(rest, match.index), h("a", {href: url.href, target: "_blank", rel: "noopener noreferrer"}, address))
    rest = match.index + address.length
  }
  parts.push(text.slice(rest))
  return parts
}

/** A copy as delivered: a live duplicate of it (the send's reply and the push) is opened once. */
const copyKey = message => `${message.id}|${message.updated_at}`

/** What each delivery flag (e2e.js DeliveryChecker) means, for the person. */
const FLAG_TEXT = {
  substituted: () => "Not as sent: the server moved or replaced this message.",
  redated: message => `Redated: the server dates this message ${when(message.at)}, but it was sent ${when(message.sentAt)}.`,
  reordered: () => "Reordered: the server delivered this message out of the order it was sent in.",
}

export class Client {
  /** `renewKeys`: right after a password reset, own keys that no longer open are replaced as conversations join. */
  constructor(session, {renewKeys = false} = {}){
    this.session = session
    this.renewKeys = renewKeys
    this.me = session.user.id
    this.keys = new Keyring(this.me, session.wrapKey, session.identity, new TrustStore(this.me))
    this.users = new Map()
    for(const user of [session.user, ...session.users]){ this.users.set(user.id, user) }
    this.conversations = new Map()
    /** user id → the phx_refs of their connected devices */
    this.presence = new Map()
    this.current = null
    this.editing = null
    this.typingSent = false
    this.notify = JSON.parse(localStorage.getItem(this.notifyKey()) ?? "{}")
    /** Ends this client's page-wide listeners when the person signs out. */
    this.stopped = new AbortController()
  }

  notifyKey(){ return `hearth.notifications.${this.me}` }

  name(userId){
    if(userId === ASSISTANT){ return "Assistant" }
    if(userId === this.me){ return "You" }
    return this.users.get(userId)?.display_name ?? "Someone"
  }

  online(userId){ return (this.presence.get(userId)?.size ?? 0) > 0 }

  title(conversation){
    if(this.plain(conversation)){ return "Assistant" }
    if(conversation.alias){ return conversation.alias }
    const others = conversation.members.filter(id => id !== this.me)
    if(!others.length){ return conversation.private ? "Private conversation" : "Just you" }
    return others.map(id => this.name(id)).join(", ")
  }

  async start(){
    applyProfile(this.session.user)
    // The people the person shares conversations with: their identities are pinned (or
    // checked against the pins) before anything is shown.
    await Promise.all(this.session.users.filter(user => "identity_key" in user)
      .map(user => this.keys.learnIdentity(user.id, user.identity_key)))
    this.session.onSignedOut(() => {
      this.stop()
      showAuth("You were signed out on this device. Sign in again.")
    })
    const signal = this.stopped.signal
    document.addEventListener("visibilitychange", () => {
      const conversation = this.conversations.get(this.current)
      if(document.visibilityState === "visible" && conversation?.unread){ this.markRead(conversation) }
      if(document.visibilityState === "visible"){ this.rooms?.visible(this.current) }
    }, {signal})
    // Back and Forward move between the list and a conversation (on a phone, Back returns to
    // the list); "#/…" addresses are pages of their own.
    addEventListener("popstate", () => {
      if(location.hash.startsWith("#/")){ return }
      const match = location.pathname.match(/^\/chat\/([0-9a-f-]{36})$/)
      this.open(match && this.opens(match[1]) ? match[1] : null)
    }, {signal})
    document.addEventListener("click", event => { if(!event.target.closest?.(".message-menu")){ this.closeMenus() } }, {signal})
    document.addEventListener("keydown", event => { if(event.key === "Escape"){ this.closeMenus() } }, {signal})
    // Fetched while the conversations load; started after them (see loadRooms).
    const roomsModule = import("./rooms.js")
    roomsModule.catch(() => {})
    this.roomsReady = new Promise((resolve, reject) => { this.roomsLoaded = {resolve, reject} })
    this.roomsReady.catch(() => {})
    this.renderShell()
    const scheme = location.protocol === "https:" ? "wss:" : "ws:"
    this.socket = new Socket(`${scheme}//${location.host}/socket/websocket`, fresh => this.session.token(fresh))
    this.socket.on("open", () => this.setStatus(""))
    this.socket.on("close", () => this.setStatus("Reconnecting…"))
    this.system = this.socket.channel(SYSTEM)
    this.system.on("presence_state", state => this.presenceState(state))
    this.system.on("presence_diff", diff => this.presenceDiff(diff))
    this.system.on("set_display_name", ({user_id, display_name}) => {
      const user = this.users.get(user_id)
      if(user){ user.display_name = display_name }
      this.renderList()
      this.renderConversation()
      this.rooms?.render()
    })
    const inbox = this.inbox = this.socket.channel(`user:${this.me}`)
    inbox.on("new_conversation", payload => this.introduced(payload))
    // Made or joined on another device, or added by a moderator: the room list is read again.
    inbox.on("new_room", ({id}) => { if(this.rooms && !this.rooms.has(id)){ this.rooms.refresh().catch(error => this.fail(error)) } })
    inbox.on("new_message", payload => this.delivered(payload, false))
    inbox.on("edit_message", payload => this.delivered(payload, true))
    inbox.on("delete_message", payload => this.deleted(payload.conversation_id, payload.message_group_id))
    inbox.on("phx_join", () => this.catchUp())
    this.socket.connect()
    this.system.join().catch(() => {})
    inbox.join().catch(() => {})
    await this.loadConversations()
    const match = location.pathname.match(/^\/chat\/([0-9a-f-]{36})$/)
    if(match && this.conversations.has(match[1])){
      // The list first in the history, so that Back leads there.
      history.replaceState(null, "", "/")
      this.open(match[1])
    }
    await this.loadRooms(roomsModule, match && !this.current ? match[1] : null)
  }

  /**
   * Starts the rooms (rooms.js) once the conversations have their channels: rooms take the
   * channels left. `deepLink`, a room's id, is opened once its room is known.
   */
  async loadRooms(roomsModule, deepLink){
    try {
      const {Rooms} = await roomsModule.catch(error => { this.roomsLoaded.reject(error); throw error })
      if(this.stopped.signal.aborted){ return }
      this.rooms = new Rooms(this)
      this.roomsLoaded.resolve(this.rooms)
      await this.rooms.load(CHANNELS_AT_MOST - this.socket.channels.size)
    } catch(error){
      return this.fail(error)
    }
    if(deepLink && !this.current && this.rooms.has(deepLink)){
      history.replaceState(null, "", "/")
      this.open(deepLink)
    }
    this.renderList()
  }

  /** Whether `id` is a conversation or a room this client shows. */
  opens(id){ return this.conversations.has(id) || Boolean(this.rooms?.has(id)) }

  /** Runs `action(rooms)` once the rooms module is there, showing what fails. */
  withRooms(action){
    this.roomsReady.then(action).catch(error => this.fail(error))
  }

  stop(){
    this.stopped.abort()
    this.socket?.disconnect()
    document.title = "hearth"
  }

  setStatus(text, isError = false){
    if(!this.status){ return }
    this.status.textContent = text
    this.status.className = isError ? "status error" : "status muted"
  }

  fail(error){
    this.setStatus(this.explain(error), true)
  }

  explain(error){
    const names = ids => ids.map(id => this.name(id)).join(", ")
    if(error instanceof TrustError){
      switch(error.code){
        case "blocked": return `The security key of ${names(error.users)} changed: acknowledge it above before sending.`
        case "waiting": return `${names(error.users)} cannot be written to until they sign in again: their account has no security key yet.`
        case "own_key_unopenable": return "Your key for this conversation does not open: make a new key (above) to write here."
        case "identity_unopenable": return "Your security key does not open with your password: replace it to write."
        case "not_joined": return "This conversation is still loading: try again in a moment."
        default: return error.message
      }
    }
    return error instanceof ChannelError || error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`
  }

  /** Whether a conversation is shown and written to as the assistant's (plain text): see Keyring.mayBePlain. */
  plain(conversation){
    return this.keys.mayBePlain(conversation.id, conversation.assistant, conversation.members)
  }

  // --- conversations ---

  async loadConversations(){
    const {items} = await this.session.api("GET", "/api/conversations")
    for(const item of items){
      // Whatever arrived while the person was away has now reached a device of theirs.
      if(item.unread > 0){ this.markDelivered(this.remember(item)) } else { this.remember(item) }
    }
    const newest = [...this.conversations.values()].sort(byActivity).slice(0, JOINED_AT_MOST)
    this.renderList()
    await Promise.all(newest.map(conversation => this.join(conversation).catch(error => this.fail(error))))
    this.renderList()
  }

  /** Adds or updates a conversation from a list item or an announcement. */
  remember(item, memberIds = null){
    let conversation = this.conversations.get(item.id)
    if(!conversation){
      conversation = {
        id: item.id, members: [], readTimes: new Map(), deliveredTimes: new Map(), messages: new Map(), streams: new Map(),
        typing: new Map(), pageToken: null, unread: item.unread ?? 0, lastAt: item.last_message_at ?? item.inserted_at,
        channel: null, seen: new Set(), keyed: false, pending: [], order: [], paged: false,
      }
      this.conversations.set(item.id, conversation)
    }
    conversation.private = item.private
    conversation.alias = item.alias ?? null
    conversation.assistant = item.assistant === true
    if(memberIds){ conversation.members = memberIds }
    return conversation
  }

  async join(conversation){
    if(conversation.channel){ return conversation.channel.joined }
    const channel = this.socket.channel(`conversation:${conversation.id}`)
    conversation.channel = channel
    const is = () => this.current === conversation.id
    channel.on("phx_join", reply => this.joined(conversation, reply).catch(error => this.fail(error)))
    channel.on("phx_close", () => this.gone(conversation.id))
    channel.on("set_encryption_keys", ({user_id, public_key}) => this.keySet(conversation, user_id, public_key)
      .catch(error => this.fail(error)))
    channel.on("identity_key", ({user_id, identity_key}) => this.identityChanged(conversation, user_id, identity_key ?? null)
      .catch(error => this.fail(error)))
    const typing = shown => ({user_id}) => {
      if(user_id === this.me){ return }
      clearTimeout(conversation.typing.get(user_id))
      conversation.typing.delete(user_id)
      if(shown){ conversation.typing.set(user_id, setTimeout(() => { conversation.typing.delete(user_id); if(is()){ this.renderTyping() } }, TYPING_SHOWN_MS)) }
      if(is()){ this.renderTyping() }
    }
    channel.on("start_typing", typing(true))
    channel.on("finish_typing", typing(false))
    const receipt = (times, userId, at) => {
      times.set(userId, at)
      if(is()){ this.renderMessages() }
    }
    channel.on("read_conversation", ({user_id, read_at}) => receipt(conversation.readTimes, user_id, read_at))
    channel.on("delivered_conversation", ({user_id, delivered_at}) => receipt(conversation.deliveredTimes, user_id, delivered_at))
    channel.on("update_alias", ({alias}) => {
      conversation.alias = alias
      this.renderList()
      if(is()){ this.renderConversation() }
    })
    channel.on("leave_conversation", ({user_id}) => {
      if(user_id !== this.me && conversation.members.includes(user_id)){ this.systemLine(conversation, `${this.name(user_id)} left`) }
      conversation.members = conversation.members.filter(id => id !== user_id)
      conversation.readTimes.delete(user_id)
      this.keys.membersChanged(conversation.id, conversation.members)
      if(is()){ this.renderConversation() }
      this.renderList()
    })
    channel.on("delete_message", ({message_group_id}) => this.deleted(conversation.id, message_group_id))
    channel.on("assistant_delta", delta => this.streamed(conversation, delta))
    return channel.join()
  }

  /**
   * A (re)join reply: members, their identities and keys (judged by the keyring), read
   * times and the newest page of history, opened and checked.
   */
  async joined(conversation, reply){
    this.remember(reply.conversation, Object.keys(reply.read_times ?? {}))
    conversation.readTimes = new Map(Object.entries(reply.read_times ?? {}))
    conversation.deliveredTimes = new Map(Object.entries(reply.delivered_times ?? {}))
    // Queued in the keyring at once: messages that arrive from now on are opened after it.
    const joining = this.keys.join(reply)
    conversation.keyed = true
    await this.ensureUsers(conversation.members)
    const {publish, opened} = await joining
    if(publish){
      await conversation.channel.push("set_encryption_keys", {public_key: publish.public_key, private_key: publish.private_key})
    }
    if(this.renewKeys && this.keys.ownKeyState(conversation.id) === "unopenable"){ await this.makeNewKey(conversation) }
    const known = conversation.messages.size > 0
    const items = reply.messages?.items ?? []
    this.applyOpened(conversation, items, opened, "page")
    if(!known){ conversation.pageToken = reply.messages?.page_token ?? null }
    // What arrived before the keyring had the conversation, and is not in the page.
    for(const message of conversation.pending.splice(0)){ await this.arrived(conversation, message) }
    this.renderList()
    if(this.current === conversation.id){
      this.renderConversation()
      this.markRead(conversation)
    }
  }

  /** After the inbox (re)joins: anything missed while away arrives with the rejoins; new conversations with the list. */
  async catchUp(){
    if(!this.listLoaded){ this.listLoaded = true; return }
    const {items} = await this.session.api("GET", "/api/conversations").catch(() => ({items: []}))
    for(const item of items){
      const conversation = this.remember(item)
      if(item.unread > 0){ this.markDelivered(conversation) }
      if(!conversation.channel){ this.join(conversation).catch(error => this.fail(error)) }
    }
    // Rooms someone added the person to while away.
    await this.rooms?.refresh().catch(() => {})
    this.renderList()
  }

  async introduced({conversation: item, user_ids}){
    const known = this.conversations.get(item.id)
    const before = known?.members ?? []
    const conversation = this.remember(item, user_ids)
    await this.ensureUsers(user_ids)
    const added = user_ids.filter(id => !before.includes(id))
    if(known && added.length && !item.private){ this.addedLine(conversation, added) }
    if(conversation.channel){ await this.membersAdded(conversation, added) }
    this.renderList()
    if(!conversation.channel){ await this.join(conversation).catch(error => this.fail(error)) }
    if(this.current === conversation.id){ this.renderConversation() }
  }

  /** A line in the history saying what happened to the conversation (kept on this page only). */
  systemLine(conversation, text){
    const group = `system:${uuidv7()}`
    conversation.messages.set(group, {group, system: true, text, at: new Date().toISOString()})
    this.place(conversation, [group], "live")
    if(this.current === conversation.id){ this.renderMessages() }
  }

  addedLine(conversation, ids){
    const names = ids.map(id => this.name(id)).join(", ")
    this.systemLine(conversation, ids.every(id => conversation.adding?.has(id)) ? `You added ${names}` : `${names} ${ids.length > 1 ? "were" : "was"} added`)
  }

  gone(conversationId){
    const conversation = this.conversations.get(conversationId)
    if(!conversation || conversation.members.includes(this.me) && !conversation.left){ return }
    conversation.channel?.leave()
    this.conversations.delete(conversationId)
    if(this.current === conversationId){ this.open(null) }
    this.renderList()
  }

  /** Names for user ids this client has not seen yet (from the user directory). */
  async ensureUsers(ids){
    const missing = () => ids.some(id => id !== ASSISTANT && !this.users.has(id))
    if(!missing()){ return }
    try {
      for await (const _page of this.userPages()){
        if(!missing()){ return }
      }
    } catch {
      // Names are a nicety: "Someone" stands in until the directory answers.
    }
  }

  /** The user directory a page at a time (at most 20 pages of 100), remembering every name. */
  async *userPages(){
    let pageToken = null
    for(let page = 0; page < 20; page++){
      const query = pageToken ? `?page_token=${encodeURIComponent(pageToken)}&page_size=100` : "?page_size=100"
      const reply = await this.session.api("GET", `/api/users${query}`)
      for(const user of reply.items){ this.users.set(user.id, {...this.users.get(user.id), ...user}) }
      yield reply.items
      pageToken = reply.page_token
      if(!pageToken){ return }
    }
  }

  // --- keys and identities ---

  /** A member set a conversation key: accepted only when their identity signed it. */
  async keySet(conversation, userId, publicKey){
    // Someone whose identity this page has not seen yet (a new member, a stale directory):
    // look it up first, or their signed key would be judged as one from before identities.
    if(userId !== this.me && !this.keys.hasIdentity(userId)){ await this.lookUpIdentity(userId) }
    // A member's first key: they opened the conversation for the first time.
    const first = userId !== this.me && this.keys.memberKeyState(conversation.id, userId) === "none"
    await this.keys.memberKeySet(conversation.id, userId, publicKey)
    if(first && !conversation.private && !this.plain(conversation)){ this.systemLine(conversation, `${this.name(userId)} joined`) }
    await this.reopen(conversation, userId)
    if(this.current === conversation.id){ this.renderConversation() }
  }

  /** A member published a new identity (or lost theirs to a password reset). */
  async identityChanged(conversation, userId, identityKey){
    if(userId === this.me){ return this.ownIdentityChanged(identityKey) }
    const user = this.users.get(userId)
    if(user){ user.identity_key = identityKey }
    await this.keys.learnIdentity(userId, identityKey)
    await this.reopen(conversation, userId)
    this.renderList()
    if(this.current === conversation.id){ this.renderConversation() }
  }

  /** A user's identity as the user directory has it now, learnt (when the directory lists them). */
  async lookUpIdentity(userId){
    try {
      for await (const page of this.userPages()){
        const user = page.find(user => user.id === userId)
        if(user){
          if("identity_key" in user){ await this.keys.learnIdentity(userId, user.identity_key) }
          return
        }
      }
    } catch {
      // The directory did not answer: the key is judged with what is known.
    }
  }

  /**
   * The person's own identity was published anew elsewhere (another browser replaced it):
   * this page stops writing with the old one until it is reloaded (which unwraps the new one).
   */
  async ownIdentityChanged(identityKey){
    const mine = this.session.identity?.publicKey ?? null
    const published = identityKey === null ? null : await parseIdentityKey(identityKey).catch(() => null)
    if(published !== null && published === mine){ return }
    this.session.identity = null
    this.session.identityProblem = "It was replaced on another device: reload this page to use the new one."
    this.session.identityElsewhere = true
    this.keys.identity = null
    this.renderMain()
  }

  /** Members added to a joined conversation: their identities, from the user directory. */
  async membersAdded(conversation, userIds){
    this.keys.membersChanged(conversation.id, conversation.members)
    for(const id of userIds){
      const user = this.users.get(id)
      if(user && "identity_key" in user){ await this.keys.learnIdentity(id, user.identity_key) }
    }
  }

  /** The person accepts a member's new security key: sending to them resumes. */
  acknowledge(userId){
    try {
      this.keys.acknowledge(userId)
    } catch(error){
      return this.fail(error)
    }
    this.setStatus("")
    this.renderConversation()
    this.renderList()
  }

  /** The person chose to make a new key for a conversation whose key does not open. */
  async makeNewKey(conversation){
    const keys = await this.keys.replaceOwnKey(conversation.id)
    await conversation.channel.push("set_encryption_keys", {public_key: keys.public_key, private_key: keys.private_key})
    this.setStatus("A new key is set: new messages can be read and written here. Earlier ones stay unreadable.")
    this.renderConversation()
  }

  /** Replaces the person's identity when the stored one does not open (asks for the password). */
  async replaceIdentity(){
    const password = h("input", {type: "password", name: "password", autocomplete: "current-password", required: true})
    const done = await modal("Replace your security key", [
      h("p", {}, "Your security key does not open with your password. A new one lets you write again; the people you talk with see that your security key changed, and messages sent to the old one stay unreadable."),
      h("label", {}, h("span", {}, "Password"), password),
    ], {submit: "Make a new security key", danger: true, action: async () => {
      await this.session.replaceIdentity(password.value)
      return true
    }})
    if(done){ location.reload() }
  }

  /** A notice across the page when the person's own identity does not open, else null. */
  identityNotice(){
    if(this.session.identity){ return null }
    return h("div", {class: "alert danger identity-problem", role: "alert"},
      h("strong", {}, "Your security key cannot be used. "),
      this.session.identityProblem ?? "",
      " You can read what your conversation keys open, but not write. ",
      this.session.identityElsewhere
        ? h("button", {type: "button", onclick: () => location.reload()}, "Reload")
        : h("button", {type: "button", onclick: () => this.replaceIdentity().catch(e => this.fail(e))}, "Replace my security key"))
  }

  // --- messages ---

  /**
   * Takes what the keyring opened of `items` (as the server listed them, newest first): each
   * message with its text (null when it cannot be read), error, flags, whether it is unchecked
   * (v1) and its sender's time; placed as `placement` says (see `place`).
   */
  applyOpened(conversation, items, opened, placement = "live"){
    items.forEach((message, i) => {
      const result = opened[i]
      conversation.seen.add(copyKey(message))
      conversation.messages.set(message.message_group, {
        group: message.message_group, sender: message.sender, content: message.content, copy: message,
        text: result.text, error: result.error, flags: result.flags, unchecked: result.unchecked, sentAt: result.sentAt,
        at: message.inserted_at, edited: message.updated_at !== message.inserted_at,
      })
      conversation.streams.delete(message.message_group)
      if(!conversation.lastAt || message.inserted_at > conversation.lastAt){ conversation.lastAt = message.inserted_at }
    })
    this.place(conversation, items.map(message => message.message_group), placement)
  }

  /**
   * Keeps `conversation.order`, the message groups in the order the server delivered them
   * (which is how they are shown: a message group's id is chosen by its sender's client, so
   * sorting by it would let a sender place a message anywhere in everyone's history).
   * `groups` is newest first. "live": after everything (one that just arrived); "older": before
   * everything (a page of older history); "page": a join's page, around the groups it shares
   * with what is shown (before everything on the first join, after everything on a rejoin when
   * it shares none). Groups already placed stay where they are.
   */
  place(conversation, groups, placement){
    const order = conversation.order
    const fresh = [...groups].reverse()
    if(placement === "older"){
      order.unshift(...fresh.filter(group => !order.includes(group)))
    } else if(placement === "live"){
      order.push(...fresh.filter(group => !order.includes(group)))
    } else {
      let at = null
      fresh.forEach((group, i) => {
        const index = order.indexOf(group)
        if(index >= 0){
          at = index + 1
          return
        }
        if(at === null){
          const later = fresh.slice(i + 1).find(next => order.includes(next))
          at = later ? order.indexOf(later) : conversation.paged ? order.length : 0
        }
        order.splice(at, 0, group)
        at += 1
      })
      conversation.paged = true
    }
  }

  /**
   * A copy that just arrived (a push, or the reply to a send), opened with the live checks;
   * false if this copy was opened already.
   */
  async arrived(conversation, message){
    const key = copyKey(message)
    if(conversation.seen.has(key)){ return false }
    if(!conversation.keyed){
      // Opened once the join reply reached the keyring (see `joined`); shown as pending till then.
      conversation.pending.push(message)
      this.applyOpened(conversation, [message], [{text: null, error: "not joined yet", flags: [], unchecked: false, sentAt: null}], "live")
      conversation.seen.delete(key)
      return true
    }
    conversation.seen.add(key)
    const opened = await this.keys.open(conversation.id, message)
    this.applyOpened(conversation, [message], [opened], "live")
    return true
  }

  /** Opens again the unreadable messages from `userId` (a key of theirs arrived), each on its own. */
  async reopen(conversation, userId){
    const copies = [...conversation.messages.values()].filter(m => m.text === null && m.sender === userId).map(m => m.copy)
    for(const copy of copies){
      const [opened] = await this.keys.openPage(conversation.id, [copy])
      if(opened.text !== null){ this.applyOpened(conversation, [copy], [opened], "live") }
    }
  }

  async delivered({conversation_id, message}, edit){
    let conversation = this.conversations.get(conversation_id)
    if(!conversation){
      await this.catchUp()
      conversation = this.conversations.get(conversation_id)
      if(!conversation){ return }
    }
    const fresh = !conversation.messages.has(message.message_group)
    if(!await this.arrived(conversation, message)){ return }
    if(edit){ conversation.messages.get(message.message_group).edited = true }
    clearTimeout(conversation.typing.get(message.sender))
    conversation.typing.delete(message.sender)
    if(fresh && !edit && message.sender !== this.me){
      if(this.current === conversation_id && document.visibilityState === "visible"){
        this.markRead(conversation)
      } else {
        conversation.unread += 1
        this.markDelivered(conversation)
        this.notifyOf(conversation, conversation.messages.get(message.message_group))
      }
    }
    if(this.current === conversation_id){
      this.renderMessages()
      this.renderTyping()
    }
    this.renderList()
  }

  deleted(conversationId, group){
    const conversation = this.conversations.get(conversationId)
    if(!conversation?.messages.delete(group)){ return }
    conversation.order = conversation.order.filter(placed => placed !== group)
    conversation.nodes?.delete(group)
    if(this.current === conversationId){ this.renderMessages() }
  }

  streamed(conversation, {reply_id, index, delta}){
    // Only the assistant's own conversation streams replies: nothing unencrypted is shown elsewhere.
    if(conversation.messages.has(reply_id) || !this.plain(conversation)){ return }
    const stream = conversation.streams.get(reply_id) ?? {parts: [], at: new Date().toISOString()}
    stream.parts[index] = delta
    conversation.streams.set(reply_id, stream)
    if(this.current === conversation.id){ this.renderMessages() }
  }

  /** Tells the sender's side that what arrived reached this device (read receipts imply it). */
  markDelivered(conversation){
    clearTimeout(conversation.deliveredTimer)
    conversation.deliveredTimer = setTimeout(() => {
      this.inbox.push("delivered_conversation", {conversation_id: conversation.id}).catch(() => {})
    }, 300)
  }

  /** A browser notification for a message that arrived while the page is hidden, if the person turned them on. */
  notifyOf(conversation, message){
    if(!this.notify.on || document.visibilityState !== "hidden" || !message || globalThis.Notification?.permission !== "granted"){ return }
    const sender = this.name(message.sender)
    const title = conversation.private || this.plain(conversation) ? sender : `${sender} in ${this.title(conversation)}`
    const preview = this.notify.previews && message.text !== null && !message.flags?.length
    const notification = new Notification(title, {body: preview ? message.text.slice(0, 200) : "New message", tag: conversation.id})
    notification.onclick = () => {
      focus()
      this.open(conversation.id)
      notification.close()
    }
  }

  markRead(conversation){
    conversation.unread = 0
    this.renderList()
    clearTimeout(conversation.readTimer)
    // Several arrivals in a row make one read receipt.
    conversation.readTimer = setTimeout(() => {
      conversation.channel?.push("read_conversation").catch(() => {})
    }, 300)
  }

  async olderMessages(conversation){
    if(!conversation.pageToken){ return }
    const query = `conversation_id=${conversation.id}&page_token=${encodeURIComponent(conversation.pageToken)}`
    const page = await this.session.api("GET", `/api/messages?${query}`)
    // A page of its own: checked against itself, oldest first.
    this.applyOpened(conversation, page.items, await this.keys.openPage(conversation.id, page.items), "older")
    conversation.pageToken = page.page_token
    this.renderMessages({keepTop: true})
  }

  async send(text){
    const conversation = this.conversations.get(this.current)
    if(!conversation || !text.trim()){ return false }
    this.stopTyping(conversation)
    if(this.keys.plaintextAllowed(conversation.id)){
      // The assistant's conversation: the server reads it by design.
      const reply = await conversation.channel.push("send_message", {encrypted_messages: {[this.me]: text}, client_msg_id: uuidv7()})
      if(reply.message){ await this.arrived(conversation, reply.message) }
    } else if(this.editing){
      const group = this.editing
      const {copies} = await this.keys.seal(conversation.id, text, group)
      await conversation.channel.push("edit_message", {message_group_id: group, encrypted_messages: copies})
      const message = conversation.messages.get(group)
      if(message){ message.text = text; message.edited = true }
      this.stopEditing()
    } else {
      const {message_group_id: group, copies} = await this.keys.seal(conversation.id, text)
      // Shown at once as "Sending…"; the server's copy takes its place when it answers.
      conversation.messages.set(group, {group, sender: this.me, text, at: new Date().toISOString(), pending: true})
      this.place(conversation, [group], "live")
      this.renderMessages()
      try {
        const reply = await conversation.channel.push("send_message", {encrypted_messages: copies, message_group_id: group, client_msg_id: group})
        if(reply.message){ await this.arrived(conversation, reply.message) }
      } catch(error){
        if(conversation.messages.get(group)?.pending){ this.deleted(conversation.id, group) }
        throw error
      }
    }
    this.setStatus("")
    this.renderList()
    this.renderConversation()
    return true
  }

  typed(conversation){
    if(this.plain(conversation)){ return }
    if(!this.typingSent){
      this.typingSent = true
      conversation.channel?.push("start_typing").catch(() => {})
    }
    clearTimeout(this.typingTimer)
    this.typingTimer = setTimeout(() => this.stopTyping(conversation), TYPING_IDLE_MS)
  }

  stopTyping(conversation){
    clearTimeout(this.typingTimer)
    if(this.typingSent){
      this.typingSent = false
      conversation.channel?.push("finish_typing").catch(() => {})
    }
  }

  // --- presence ---

  presenceState(state){
    this.presence = new Map(Object.entries(state).map(([id, {metas}]) => [id, new Set(metas.map(m => m.phx_ref))]))
    this.renderPresence()
  }

  presenceDiff({joins, leaves}){
    for(const [id, {metas}] of Object.entries(leaves ?? {})){
      const refs = this.presence.get(id)
      for(const meta of metas){ refs?.delete(meta.phx_ref) }
    }
    for(const [id, {metas}] of Object.entries(joins ?? {})){
      if(!this.presence.has(id)){ this.presence.set(id, new Set()) }
      for(const meta of metas){ this.presence.get(id).add(meta.phx_ref) }
    }
    this.renderPresence()
  }

  renderPresence(){
    this.renderList()
    if(this.current){ this.renderHeader() }
    this.rooms?.presenceChanged()
  }

  // --- rendering ---

  renderShell(){
    this.list = h("ul", {class: "conversations", "aria-label": "Conversations"})
    this.meLabel = h("div", {class: "me"})
    this.main = h("main", {class: "main"})
    this.layout = h("div", {class: "layout"},
      h("nav", {class: "sidebar", "aria-label": "Conversations"},
        h("header", {},
          this.meLabel,
          h("div", {class: "actions"},
            h("button", {type: "button", onclick: () => this.newPrivate().catch(e => this.fail(e))}, "New chat"),
            h("button", {type: "button", onclick: () => this.newGroup().catch(e => this.fail(e))}, "New group"),
            h("button", {type: "button", onclick: () => this.openAssistant().catch(e => this.fail(e))}, "Assistant"),
            h("button", {type: "button", onclick: () => this.withRooms(rooms => rooms.browse())}, "Browse rooms"),
            h("button", {type: "button", onclick: () => this.withRooms(rooms => rooms.create())}, "New room"),
            h("button", {type: "button", onclick: () => this.settings()}, "Settings"),
            h("button", {type: "button", onclick: () => this.devices().catch(e => this.fail(e))}, "Devices"),
            h("button", {type: "button", onclick: () => this.notifications().catch(e => this.fail(e))}, "Notifications"),
            h("button", {type: "button", class: "link", onclick: () => this.signOut()}, "Sign out"))),
        this.list),
      this.main)
    fill(root, this.layout)
    this.renderMain()
  }

  renderList(){
    if(!this.list){ return }
    fill(this.meLabel, this.users.get(this.me)?.display_name ?? this.session.user.email)
    const conversations = [...this.conversations.values()].map(conversation => {
      const partner = conversation.private ? conversation.members.find(id => id !== this.me) : null
      const dot = partner ? h("span", {class: this.online(partner) ? "dot online" : "dot", title: this.online(partner) ? "online" : "offline"}) : null
      const badge = conversation.unread > 0 ? h("span", {class: "badge", "aria-label": `${conversation.unread} unread`}, String(conversation.unread)) : null
      return {lastAt: conversation.lastAt, node: h("li", {},
        h("button", {type: "button", "data-conversation": conversation.id, "aria-current": String(this.current === conversation.id), onclick: () => this.open(conversation.id)},
          dot,
          h("span", {class: "summary"},
            h("span", {class: "name"}, this.title(conversation)),
            conversation.lastAt ? h("time", {datetime: conversation.lastAt}, listTime(conversation.lastAt)) : null,
            h("span", {class: "preview"}, this.preview(conversation))),
          badge))}
    })
    // Rooms beside conversations, by the same last activity (each marked as a room).
    const items = [...conversations, ...this.rooms?.listRows() ?? []].sort(byActivity).map(row => row.node)
    fill(this.list, items.length ? items : h("li", {class: "muted notice"}, "No conversations yet. Start one with New chat, or find a room with Browse rooms."))
    const unread = [...this.conversations.values()].reduce((sum, conversation) => sum + conversation.unread, 0) + (this.rooms?.unread() ?? 0)
    document.title = unread ? `(${unread}) hearth` : "hearth"
  }

  /** The newest message of a conversation as the list shows it, decrypted here ("" before the first). */
  preview(conversation){
    const group = conversation.order.findLast(group => conversation.messages.get(group) && !conversation.messages.get(group).system)
    const message = conversation.messages.get(group)
    if(!message){ return "" }
    const text = message.text === null ? "Encrypted message" : message.flags?.length ? "A message with a warning" : message.text.replace(/\s+/g, " ").slice(0, 120)
    const sender = message.sender === this.me ? "You: " : conversation.private || this.plain(conversation) ? "" : `${this.name(message.sender)}: `
    return sender + text
  }

  renderMain(){
    const conversation = this.conversations.get(this.current)
    const room = !conversation && this.rooms?.has(this.current)
    this.layout.classList.toggle("open", Boolean(conversation || room))
    if(room){ return this.rooms.show(this.current, this.main) }
    if(!conversation){
      this.status = h("div", {class: "status", role: "status"})
      fill(this.main, this.identityNotice(), this.status, h("p", {class: "empty"}, "Pick a conversation or a room, or start one."))
      return
    }
    this.header = h("header")
    this.membersPanel = h("details", {class: "members"})
    this.messageList = h("div", {class: "messages", role: "log", "aria-label": "Messages"})
    this.stickToBottom = true
    this.messageList.addEventListener("scroll", () => {
      const list = this.messageList
      this.stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
    }, {passive: true})
    this.typingLine = h("div", {class: "typing", "aria-live": "polite"})
    this.status = h("div", {class: "status", role: "status"})
    const input = h("textarea", {name: "message", rows: 1, placeholder: this.plain(conversation) ? "Ask the assistant, or /help" : "Write a message", "aria-label": "Message", maxlength: 10000})
    this.input = input
    const form = h("form", {class: "composer"}, input, h("button", {type: "submit", class: "primary"}, "Send"))
    const submit = async () => {
      const text = input.value
      input.value = ""
      try {
        if(!await this.send(text)){ input.value = text }
      } catch(error){
        input.value = text
        this.fail(error)
      }
    }
    form.addEventListener("submit", event => { event.preventDefault(); submit() })
    input.addEventListener("keydown", event => {
      if(event.key === "Enter" && !event.shiftKey){ event.preventDefault(); submit() }
      if(event.key === "Escape" && this.editing){ this.stopEditing(); input.value = "" }
    })
    input.addEventListener("input", () => this.typed(conversation))
    this.notices = h("div", {class: "notices"})
    this.editBar = h("div", {class: "editing", role: "status"})
    fill(this.main, this.identityNotice(), this.header, this.plain(conversation) ? null : this.membersPanel, this.notices, this.messageList, this.typingLine, this.status, this.editBar, form)
    this.renderConversation()
  }

  renderConversation(){
    if(!this.conversations.has(this.current)){ return }
    this.renderHeader()
    this.renderNotices()
    this.renderMessages()
    this.renderTyping()
  }

  /**
   * What the person must know about this conversation's keys, above its messages: changed
   * security keys (sending to them waits for an acknowledgement), refused keys, an own key
   * that does not open, a refused claim that the conversation is not end-to-end.
   */
  renderNotices(){
    const conversation = this.conversations.get(this.current)
    if(!conversation || !this.notices){ return }
    const notices = []
    if(this.keys.downgradeRefused(conversation.id)){
      notices.push(h("div", {class: "alert danger downgrade-refused", role: "alert"},
        h("strong", {}, "The server claimed this conversation is not end-to-end encrypted. "),
        "That was refused: it stays end-to-end encrypted, and nothing is sent here in plain text."))
    }
    if(this.keys.ownKeyState(conversation.id) === "unopenable"){
      notices.push(h("div", {class: "alert danger own-key-unopenable", role: "alert"},
        h("strong", {}, "Your key for this conversation does not open with your password. "),
        "It was made before a password reset, or the server replaced it. Its messages cannot be read here, and you cannot write until you make a new key; earlier messages stay unreadable. ",
        h("button", {type: "button", onclick: () => this.makeNewKey(conversation).catch(e => this.fail(e))}, "Make a new key")))
    }
    for(const id of conversation.members.filter(id => id !== this.me)){
      const name = this.name(id)
      const state = this.keys.contactState(id)
      if(state.kind === "changed"){
        const replaced = this.keys.hasIdentity(id)
        notices.push(h("div", {class: state.wasVerified ? "alert danger key-changed verified" : "alert key-changed", role: "alert", "data-user": id},
          h("strong", {}, `${name}'s security key changed. `),
          state.wasVerified
            ? `${name} had been verified: compare your safety number with ${name} again before you trust the new key. `
            : `This happens when ${name} resets their password, or when someone else tries to read this conversation. Compare safety numbers to be sure. `,
          replaced
            ? [`Nothing is sent to ${name} until you acknowledge it. `,
              h("button", {type: "button", onclick: () => this.acknowledge(id)}, "Acknowledge")]
            : `${name} has no security key now: nothing can be sent to ${name} until they sign in again.`))
      } else if(this.keys.memberKeyState(conversation.id, id) === "refused"){
        notices.push(h("div", {class: "alert key-refused", role: "alert", "data-user": id},
          h("strong", {}, `${name}'s key was refused. `),
          `A key set for ${name} in this conversation is not signed by ${name}'s security key: someone with access to the server, or to ${name}'s session, may have set it. Your messages to ${name} are encrypted to ${name}'s security key instead.`))
      }
    }
    fill(this.notices, notices)
  }

  renderHeader(){
    const conversation = this.conversations.get(this.current)
    if(!conversation || !this.header){ return }
    const group = !conversation.private && !this.plain(conversation)
    fill(this.header,
      h("button", {type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => history.state?.list ? history.back() : this.open(null)}, "←"),
      h("h2", {}, this.title(conversation)),
      group ? [
        h("button", {type: "button", onclick: () => this.rename(conversation).catch(e => this.fail(e))}, "Rename"),
        h("button", {type: "button", onclick: () => this.addMembers(conversation).catch(e => this.fail(e))}, "Add people"),
        h("button", {type: "button", class: "danger", onclick: () => this.leave(conversation).catch(e => this.fail(e))}, "Leave"),
      ] : null)
    const wasOpen = this.membersPanel.open
    const changed = conversation.members.some(id => this.keys.contactState(id).kind === "changed")
    fill(this.membersPanel,
      h("summary", {}, `${conversation.members.length} members · security`, changed ? h("span", {class: "error"}, " · a security key changed") : null),
      h("ul", {}, conversation.members.map(id => this.memberRow(conversation, id))),
      h("p", {class: "muted"}, "Compare safety numbers with each person (in person or on a call) and mark them verified: if they match, nobody else can read this conversation."))
    this.membersPanel.open = wasOpen
  }

  /**
   * A member, with how far their security key is trusted (`data-trust`) and how their key for
   * this conversation was judged (`data-key`: "verified" once their signed key is accepted;
   * for the person, "ready" once their own key opens).
   */
  memberRow(conversation, id){
    const dot = h("span", {class: this.online(id) ? "dot online" : "dot"})
    if(id === this.me){
      const own = this.keys.ownKeyState(conversation.id)
      return h("li", {"data-member": id, "data-trust": "you", "data-key": own},
        dot, h("span", {}, `${this.users.get(id)?.display_name ?? "You"} (you)`),
        h("span", {class: own === "unopenable" ? "trust error" : "trust muted"}, own === "unopenable" ? "your key does not open" : own === "ready" ? "" : "no key yet"))
    }
    const state = this.keys.contactState(id)
    const key = this.keys.memberKeyState(conversation.id, id)
    const trust = state.kind === "changed" ? "changed" : state.kind === "trusted" ? (state.verified ? "verified" : "trusted") : "none"
    const label = {
      changed: "security key changed",
      verified: "verified ✓",
      trusted: "not verified",
      none: "no security key yet",
    }[trust]
    const detail = key === "refused" ? " · key refused" : key === "none" && state.kind !== "none" ? " · has not opened it yet" : ""
    return h("li", {"data-member": id, "data-trust": trust, "data-key": key},
      dot, h("span", {}, this.name(id)),
      h("span", {class: trust === "changed" || key === "refused" ? "trust error" : "trust muted"}, label + detail),
      state.kind === "none" ? null : h("button", {type: "button", class: "link", "aria-label": `Safety number with ${this.name(id)}`,
        onclick: () => this.showSafetyNumber(id).catch(e => this.fail(e))}, "Safety number"))
  }

  /** The safety number with a member, to compare with them, and "Mark as verified". */
  async showSafetyNumber(id){
    const number = await this.keys.safetyNumber(id)
    if(!number){ throw new Error(`${this.name(id)} has no security key yet, or yours does not open.`) }
    const name = this.name(id)
    const state = this.keys.contactState(id)
    const groups = number.split(" ")
    const rows = [0, 4, 8].map(start => h("div", {}, groups.slice(start, start + 4).join(" ")))
    const body = [
      h("p", {}, `Compare these numbers with the ones ${name} sees, in person or on a call. If they match, nobody is between you.`),
      h("div", {class: "safety-number", "data-safety-number": number, "aria-label": number}, rows),
      state.kind === "changed"
        ? h("p", {class: "error"}, `${name}'s security key changed: acknowledge the change in the conversation before marking it verified.`)
        : state.verified ? h("p", {class: "muted"}, `You marked ${name} as verified.`) : null,
    ]
    const canVerify = state.kind === "trusted" && !state.verified
    await modal(`Safety number with ${name}`, body, {submit: canVerify ? "Mark as verified" : null, action: () => {
      if(canVerify){ this.keys.markVerified(id) }
      return true
    }})
    this.renderConversation()
  }

  renderMessages({keepTop = false} = {}){
    const conversation = this.conversations.get(this.current)
    if(!conversation || !this.messageList){ return }
    const list = this.messageList
    // Read only when paging back; otherwise reading the layout here would force it twice
    // per arrival (the scroll listener keeps `stickToBottom` instead).
    const fromBottom = keepTop ? list.scrollHeight - list.scrollTop : 0
    const sorted = conversation.order.map(group => conversation.messages.get(group)).filter(Boolean)
    const lastMine = this.plain(conversation) ? null : sorted.findLast(message => message.sender === this.me && !message.system)
    const nodes = []
    let previous = null
    for(const message of sorted){
      const day = new Date(message.at)
      if(!previous || !sameDay(day, new Date(previous.at))){
        nodes.push(h("div", {class: "day", role: "separator"}, h("span", {}, dayLabel(message.at))))
        previous = null
      }
      const node = this.cachedMessageNode(conversation, message)
      // A sender's messages in a row, a few minutes apart, are one group: the name once.
      node.classList.toggle("grouped", Boolean(previous && !message.system && !previous.system && previous.sender === message.sender && day - new Date(previous.at) < 5 * 60000))
      nodes.push(node)
      if(message === lastMine){ nodes.push(this.receiptNode(conversation, message)) }
      previous = message
    }
    for(const [replyId, stream] of conversation.streams){
      nodes.push(h("article", {class: "message streaming", "data-group": replyId},
        h("div", {class: "meta"}, "Assistant", h("span", {}, "writing…")),
        h("div", {class: "text"}, stream.parts.join(""))))
    }
    fill(list,
      conversation.pageToken ? h("button", {type: "button", class: "older link", onclick: () => this.olderMessages(conversation).catch(e => this.fail(e))}, "Load older messages") : null,
      nodes.length ? nodes : h("p", {class: "empty"}, this.plain(conversation) ? "Ask anything. /help lists the commands." : "No messages yet."))
    if(keepTop){
      list.scrollTop = list.scrollHeight - fromBottom
    } else if(this.stickToBottom){
      // In the next frame, whose layout happens anyway.
      requestAnimationFrame(() => { list.scrollTop = list.scrollHeight })
    }
  }

  /**
   * How far the person's latest message got: sending… → sent (the server has it) → delivered
   * (to a device of every other member) → read; in a group, how many or who so far.
   */
  receiptNode(conversation, message){
    const others = conversation.members.filter(id => id !== this.me)
    const reached = times => others.filter(id => (times.get(id) ?? "") >= message.at)
    const read = reached(conversation.readTimes)
    const delivered = others.filter(id => read.includes(id) || (conversation.deliveredTimes.get(id) ?? "") >= message.at)
    const readers = read.map(id => this.name(id)).join(", ")
    let state = "sent"
    let text = "Sent"
    if(message.pending){
      [state, text] = ["sending", "Sending…"]
    } else if(others.length && read.length === others.length){
      [state, text] = ["read", others.length === 1 ? "Read" : "Read by everyone"]
    } else if(others.length && delivered.length === others.length){
      [state, text] = ["delivered", read.length ? `Delivered · read by ${readers}` : "Delivered"]
    } else if(delivered.length){
      text = `Delivered to ${delivered.length} of ${others.length}${read.length ? ` · read by ${readers}` : ""}`
    }
    return h("div", {class: "receipt", "data-state": state, "data-group": message.group}, text)
  }

  /** A message's node, made again only when what it shows changed. */
  cachedMessageNode(conversation, message){
    conversation.nodes ??= new Map()
    const shows = JSON.stringify([message.text, message.edited, this.name(message.sender), message.flags, message.unchecked, message.error, message.at, message.pending])
    const cached = conversation.nodes.get(message.group)
    if(cached?.shows === shows){ return cached.node }
    const node = this.messageNode(conversation, message)
    conversation.nodes.set(message.group, {shows, node})
    return node
  }

  messageNode(conversation, message){
    if(message.system){ return h("p", {class: "system", role: "note"}, message.text) }
    const mine = message.sender === this.me
    const flagged = (message.flags?.length ?? 0) > 0
    const classes = ["message", mine ? "mine" : "", message.text === null ? "undecryptable" : "", flagged ? "flagged" : "",
      message.unchecked ? "unchecked" : "", message.pending ? "pending" : ""].filter(Boolean).join(" ")
    let body
    if(message.text === null){
      body = h("div", {class: "text", title: message.error ?? null}, "This message cannot be decrypted on this device.")
    } else if(flagged){
      // Not shown as genuine: the warning first, the text only on request.
      body = [
        h("div", {class: "warning", role: "note"}, message.flags.map(flag => h("p", {"data-flag": flag}, FLAG_TEXT[flag]?.(message) ?? flag))),
        h("details", {class: "flagged-text"}, h("summary", {}, "Show what it says anyway"), h("div", {}, message.text)),
      ]
    } else {
      body = this.messageBody(conversation, message.text)
    }
    const current = () => conversation.messages.get(message.group) ?? message
    return h("article", {class: classes, "data-group": message.group},
      h("div", {class: "meta"},
        h("span", {class: "sender"}, this.name(message.sender)),
        h("time", {datetime: message.at, title: when(message.at)}, time(message.at)),
        message.edited ? h("span", {}, "edited") : null,
        message.unchecked ? h("span", {class: "unchecked", title: "Sent before messages were authenticated: hearth cannot check that the server delivered it as it was sent."}, "unchecked") : null,
        mine && !this.plain(conversation) && message.text !== null && !flagged && !message.pending ? this.messageMenu(
          h("button", {type: "button", "aria-label": "Edit message", onclick: () => this.startEdit(current())}, "Edit"),
          h("button", {type: "button", class: "danger", "aria-label": "Delete message", onclick: () => this.remove(conversation, current()).catch(e => this.fail(e))}, "Delete…"))
          : null),
      body)
  }

  /** A "⋯" button opening a message's actions. */
  messageMenu(...actions){
    const items = h("div", {class: "menu-items", hidden: true}, actions)
    const toggle = h("button", {type: "button", class: "link", "aria-label": "Message actions", "aria-expanded": "false", onclick: () => {
      const opening = items.hidden
      this.closeMenus()
      items.hidden = !opening
      toggle.setAttribute("aria-expanded", String(opening))
    }}, "⋯")
    return h("span", {class: "message-menu"}, toggle, items)
  }

  /** Text with links; the assistant's image and configure links become an image and a link. */
  messageBody(conversation, text){
    if(!this.plain(conversation)){ return h("div", {class: "text"}, linked(text)) }
    const parts = text.split("\n").map((line, i) => {
      const separator = i > 0 ? "\n" : ""
      let url = null
      try { url = /^https?:\/\/\S+$/.test(line.trim()) ? new URL(line.trim()) : null } catch { url = null }
      if(url && IMAGE_PATH.test(url.pathname)){
        // Sized before it loads (the server's images are square), so the view scrolls to its end.
        const image = h("img", {alt: "Generated image", "data-image": url.pathname, width: 1024, height: 1024})
        image.addEventListener("load", () => { if(this.stickToBottom){ this.messageList.scrollTop = this.messageList.scrollHeight } })
        this.session.blobUrl(url.pathname).then(src => { image.src = src }).catch(() => {
          image.alt = "The image is not available."
          image.removeAttribute("height")
        })
        return [separator, image]
      }
      if(url && CONFIGURE_PATH.test(url.pathname)){
        return [separator, h("a", {href: url.pathname, target: "_blank", rel: "noopener noreferrer"}, "Open the page to add your key")]
      }
      return [separator, linked(line)]
    })
    return h("div", {class: "text"}, parts)
  }

  renderTyping(){
    const conversation = this.conversations.get(this.current)
    if(!conversation || !this.typingLine){ return }
    const names = [...conversation.typing.keys()].map(id => this.name(id))
    this.typingLine.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`
  }

  startEdit(message){
    this.closeMenus()
    this.editing = message.group
    this.input.value = message.text
    this.input.focus()
    fill(this.editBar, h("span", {}, "Editing a message: Enter saves, Escape cancels."),
      h("button", {type: "button", class: "link", onclick: () => { this.stopEditing(); this.input.value = "" }}, "Cancel"))
  }

  stopEditing(){
    this.editing = null
    if(this.editBar){ fill(this.editBar) }
  }

  async remove(conversation, message){
    this.closeMenus()
    const removed = await modal("Delete this message?", h("p", {}, "It is deleted for everyone in this conversation."), {submit: "Delete", danger: true, action: async () => {
      await conversation.channel.push("delete_message", {message_group_id: message.group})
      return true
    }})
    if(removed){ this.deleted(conversation.id, message.group) }
  }

  closeMenus(){
    for(const menu of document.querySelectorAll(".message-menu [aria-expanded=true]")){
      menu.setAttribute("aria-expanded", "false")
      menu.nextSibling.hidden = true
    }
  }

  /** Opens a conversation or a room (null: the list alone). */
  open(conversationId){
    if(this.current && this.current !== conversationId){
      const previous = this.conversations.get(this.current)
      if(previous){ this.stopTyping(previous) }
      this.rooms?.closed(this.current)
    }
    this.current = conversationId
    this.editing = null
    const conversation = this.conversations.get(conversationId)
    const room = !conversation && conversationId !== null && this.rooms?.has(conversationId)
    // Rooms have deep links of the same shape: their ids are UUIDs too.
    const path = conversation || room ? `/chat/${conversationId}` : "/"
    // Opened from the list: a step in the history, so that Back returns to the list.
    if((conversation || room) && location.pathname === "/"){ history.pushState({list: true}, "", path) } else if(location.pathname !== path){ history.replaceState(history.state, "", path) }
    this.renderMain()
    this.renderList()
    if(conversation){
      if(!conversation.channel){ this.join(conversation).catch(error => this.fail(error)) }
      this.markRead(conversation)
      this.input.focus()
      this.rememberRecent(conversationId)
    } else if(room){
      this.rooms.opened(conversationId)
    }
  }

  rememberRecent(conversationId){
    const path = `/chat/${conversationId}`
    const recents = [path, ...(this.session.user.recents ?? []).filter(p => p !== path)].slice(0, 10)
    this.session.user.recents = recents
    this.session.api("PATCH", "/api/profile", {recents}).catch(() => {})
  }

  // --- starting and changing conversations ---

  /** Everyone else in the user directory. */
  async directory(){
    const users = []
    for await (const page of this.userPages()){ users.push(...page) }
    return users.filter(user => user.id !== this.me)
  }

  /** The people picker (account.js): the directory's people, found by name or exact address. */
  async userChoices(type, excluded = []){
    return (await account()).peoplePicker(this, await this.directory(), type, excluded)
  }

  async newPrivate(){
    const {box, chosen} = await this.userChoices("radio")
    const id = await modal("New private conversation", box, {submit: "Start", action: async () => {
      const [other] = chosen()
      if(!other){ throw new Error("Choose someone.") }
      const {conversation_id: existing} = await this.session.api("GET", `/api/conversations/private/${other}`)
      if(existing){ return existing }
      // The id is chosen here, so the key is wrapped and signed for the real conversation.
      const keys = await this.keys.startConversation()
      const started = await this.system.push("start_private_conversation", {
        conversation_id: keys.conversation_id, other_user_id: other, public_key: keys.public_key, private_key: keys.private_key,
      })
      return this.started(started)
    }})
    if(id){ await this.ensureJoined(id); this.open(id) }
  }

  async newGroup(){
    const {box, chosen} = await this.userChoices("checkbox")
    const alias = h("input", {name: "alias", maxlength: 100, placeholder: "Optional"})
    const id = await modal("New group", [h("label", {}, h("span", {}, "Group name"), alias), box], {submit: "Start", action: async () => {
      const userIds = chosen()
      if(!userIds.length){ throw new Error("Choose at least one person.") }
      const keys = await this.keys.startConversation()
      const started = await this.system.push("start_group_conversation", {
        conversation_id: keys.conversation_id, user_ids: userIds, alias: alias.value.trim() || null,
        public_key: keys.public_key, private_key: keys.private_key,
      })
      return this.started(started)
    }})
    if(id){ await this.ensureJoined(id); this.open(id) }
  }

  started({conversation: item, user_ids}){
    this.remember(item, user_ids)
    this.renderList()
    return item.id
  }

  async ensureJoined(id){
    const conversation = this.conversations.get(id)
    if(conversation){ await this.join(conversation) }
  }

  async openAssistant(){
    const started = await this.system.push("start_assistant_conversation")
    const conversation = this.remember(started.conversation, started.user_ids)
    await this.join(conversation)
    this.open(conversation.id)
  }

  async rename(conversation){
    const alias = h("input", {name: "alias", maxlength: 100, value: conversation.alias ?? ""})
    await modal("Rename the group", h("label", {}, h("span", {}, "Group name"), alias), {submit: "Rename", action: async () => {
      const reply = await conversation.channel.push("change_alias", {alias: alias.value.trim()})
      conversation.alias = reply.conversation.alias
      this.renderList()
      this.renderHeader()
      return true
    }})
  }

  async addMembers(conversation){
    const {box, chosen} = await this.userChoices("checkbox", conversation.members)
    await modal("Add people", [h("p", {class: "muted"}, "They will see messages sent from now on."), box], {submit: "Add", action: async () => {
      const ids = chosen()
      if(!ids.length){ throw new Error("Choose at least one person.") }
      conversation.adding = new Set(ids)
      const reply = await conversation.channel.push("modify_conversation", {new_members: ids})
      // The announcement of the same change may have come first.
      const added = ids.filter(id => !conversation.members.includes(id))
      if(added.length){ this.addedLine(conversation, added) }
      conversation.members = reply.user_ids
      await this.membersAdded(conversation, ids)
      this.renderHeader()
      return true
    }})
  }

  async leave(conversation){
    const left = await modal("Leave this group?", h("p", {}, "You will no longer receive its messages."), {submit: "Leave", danger: true, action: async () => {
      conversation.left = true
      await conversation.channel.push("leave_conversation")
      return true
    }})
    if(left){ this.gone(conversation.id) }
  }

  // --- settings, devices ---

  settings(){
    const user = this.session.user
    const displayName = h("input", {name: "display_name", maxlength: 100, value: this.users.get(this.me)?.display_name ?? user.display_name})
    const theme = h("select", {name: "theme"},
      h("option", {value: "day", selected: user.theme !== "night"}, "Day"),
      h("option", {value: "night", selected: user.theme === "night"}, "Night"))
    const magnification = h("input", {type: "range", name: "magnification", min: "0.7", max: "1.4", step: "0.1", value: String(user.magnification ?? 1)})
    const shown = h("output", {}, `${Math.round((user.magnification ?? 1) * 100)}%`)
    magnification.addEventListener("input", () => {
      shown.textContent = `${Math.round(Number(magnification.value) * 100)}%`
      applyProfile({theme: theme.value, magnification: magnification.value})
    })
    theme.addEventListener("change", () => applyProfile({theme: theme.value, magnification: magnification.value}))
    const hidden = h("input", {type: "checkbox", name: "hidden", checked: Boolean(user.hidden)})
    const password = h("input", {type: "password", name: "password", autocomplete: "current-password"})
    const newPassword = h("input", {type: "password", name: "new_password", autocomplete: "new-password", minlength: 8})
    const emailSection = h("details", {class: "email-settings"}, h("summary", {}, "Email address"))
    const leave = () => { this.socket.disconnect(); document.querySelectorAll("dialog").forEach(dialog => dialog.remove()) }
    account().then(module => module.emailSettings(emailSection, this.session, leave, pages))
    modal("Settings", [
      h("label", {}, h("span", {}, "Display name"), displayName),
      h("label", {}, h("span", {}, "Theme"), theme),
      h("label", {}, h("span", {}, "Text size "), magnification, shown),
      h("label", {class: "inline"}, hidden, h("span", {}, "Hidden: nobody sees when I am online")),
      emailSection,
      h("details", {},
        h("summary", {}, "Change password"),
        h("p", {class: "muted"}, "Your conversation keys are re-encrypted with the new password on this device, so your history stays readable."),
        h("label", {}, h("span", {}, "Current password"), password),
        h("label", {}, h("span", {}, "New password (at least 8 characters)"), newPassword)),
    ], {submit: "Save", action: async () => {
      const profile = await this.session.api("PATCH", "/api/profile", {theme: theme.value, magnification: Number(magnification.value)})
      Object.assign(user, profile)
      if(hidden.checked !== Boolean(user.hidden)){
        await this.system.push("set_hidden", {hidden: hidden.checked})
        user.hidden = hidden.checked
      }
      const name = displayName.value.trim()
      if(name && name !== this.users.get(this.me)?.display_name){
        await this.system.push("set_display_name", {display_name: name})
        this.users.get(this.me).display_name = name
      }
      if(newPassword.value){
        if(newPassword.value.length < 8){ throw new Error("The new password needs at least 8 characters.") }
        await this.session.changePassword(password.value, newPassword.value)
        this.keys.wrapKey = this.session.wrapKey
        if(this.session.identity){ this.keys.identity = this.session.identity }
      }
      return true
    }}).then(() => {
      applyProfile(user)
      this.renderList()
    })
  }

  async devices(){
    const {items} = await this.session.api("GET", "/api/devices")
    const list = h("ul", {class: "devices"})
    const render = devices => fill(list, devices.map(device => h("li", {"data-device": device.id},
      h("span", {}, device.name, h("br"), h("span", {class: "muted"}, device.current ? "this device" : `last seen ${new Date(device.last_seen_at).toLocaleString()}`)),
      device.current ? null : h("button", {type: "button", class: "danger", onclick: async () => {
        await this.session.api("DELETE", `/api/devices/${device.id}`).catch(error => this.fail(error))
        render(devices.filter(d => d.id !== device.id))
      }}, "Sign out"))))
    render(items)
    await modal("Devices", [h("p", {class: "muted"}, "Where you are signed in. Signing a device out closes its connections at once."), list], {submit: null})
  }

  /** This device's choice of browser notifications (off until the person turns them on). */
  async notifications(){
    if(!globalThis.Notification){
      return modal("Notifications", h("p", {}, "This browser cannot show notifications."), {submit: null})
    }
    const on = h("input", {type: "checkbox", name: "notify", checked: Boolean(this.notify.on)})
    const previews = h("input", {type: "checkbox", name: "previews", checked: Boolean(this.notify.previews)})
    await modal("Notifications", [
      h("p", {class: "muted"}, "On this device, while hearth is in the background."),
      h("label", {class: "inline"}, on, h("span", {}, "Notify me of new messages")),
      h("label", {class: "inline"}, previews, h("span", {}, "Show the message text in notifications")),
    ], {submit: "Save", action: async () => {
      if(on.checked && await Notification.requestPermission() !== "granted"){
        throw new Error("The browser refused: allow notifications for this site in its settings.")
      }
      this.notify = {on: on.checked, previews: previews.checked}
      localStorage.setItem(this.notifyKey(), JSON.stringify(this.notify))
      return true
    }})
  }

  async signOut(){
    this.stop()
    await this.session.signOut()
    history.replaceState(null, "", "/")
    showAuth()
  }
}

/** Newest activity first. */
function byActivity(a, b){
  return (b.lastAt ?? "") < (a.lastAt ?? "") ? -1 : (b.lastAt ?? "") > (a.lastAt ?? "") ? 1 : 0
}
