// Rooms (issue 25): group channels the server can read, like a guild's channels. Loaded once
// the signed-in client (client.js) has started, so neither signing in nor the conversation list
// waits for it; rooms then share the list, the main pane and the title's unread count.
//
// Nothing in a room is end-to-end encrypted, and the page says so wherever a room shows: a
// marker on every room in the list and a sentence under the room's header, so nobody mistakes
// a room for a private conversation.
//
// A room's channel (`room:{id}`) brings its members and newest posts on joining, then posts,
// edits, deletions, typing, read marks, members joining and leaving and the assistant's
// streamed answers; older pages, search, joining, leaving and adding people are REST calls.

import {h, fill, modal} from "./dom.js"
import {ASSISTANT, CHANNELS_AT_MOST, dayLabel, linked, listTime, sameDay, time, when} from "./client.js"
import {uuidv7} from "./keys.js"

/** Rooms whose channels are joined at start (the rest join when opened). */
const JOINED_AT_MOST = 30
const MAX_POST_CHARS = 4000
const TYPING_IDLE_MS = 3000
const TYPING_SHOWN_MS = 8000
/** A list of the rooms the person is in and of the public ones: at most this many pages of 100. */
const LIST_PAGES = 20
/** Names shown in "Seen by …" before "and N more". */
const SEEN_NAMES = 3
const NOT_E2E = "not end-to-end encrypted"

// The rooms' styles come with the rooms: the first load stays what signing in needs.
document.head.append(h("link", {rel: "stylesheet", href: "/css/rooms.css"}))

/**
 * Pending posts have ids made here that sort after every server id (those are hex UUIDs), so
 * they show below what is posted, in the order they were written.
 */
const PENDING = "pending:"
const byId = (a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0

export class Rooms {
  constructor(client){
    this.client = client
    /** The rooms the person is in, by id. */
    this.rooms = new Map()
    /** Public rooms the person is not in, by id (to browse). */
    this.others = new Map()
    this.view = null
    this.editing = null
    this.typingSent = false
    /** Whether rooms that come in later (joined elsewhere, added to) are joined live at once. */
    this.started = false
  }

  get me(){ return this.client.me }

  has(id){ return this.rooms.has(id) }

  /** Lists the rooms and joins the channels of up to `channels` of them (the newest first). */
  async load(channels){
    await this.refresh()
    const newest = [...this.rooms.values()].sort(byActivity).slice(0, Math.max(0, Math.min(channels, JOINED_AT_MOST)))
    this.started = true
    await Promise.all(newest.map(room => this.join(room).catch(error => this.client.fail(error))))
  }

  /** Reads the room list again: rooms joined elsewhere or added to come in, rooms left go. */
  async refresh(){
    const listed = []
    let pageToken = null
    for(let page = 0; page < LIST_PAGES; page++){
      const query = pageToken ? `?page_size=100&page_token=${encodeURIComponent(pageToken)}` : "?page_size=100"
      const reply = await this.client.session.api("GET", `/api/rooms${query}`)
      listed.push(...reply.items)
      pageToken = reply.page_token
      if(!pageToken){ break }
    }
    this.others.clear()
    const joined = new Set()
    for(const item of listed){
      if(item.joined){
        joined.add(item.id)
        const room = this.remember(item)
        // Rooms that came in since the start: live, as long as channels are left.
        if(this.started && !room.channel && this.client.socket.channels.size < CHANNELS_AT_MOST){ this.join(room).catch(() => {}) }
      } else if(item.visibility === "public"){
        this.others.set(item.id, item)
      }
    }
    for(const id of [...this.rooms.keys()]){
      if(!joined.has(id)){ this.gone(id) }
    }
    this.client.renderList()
  }

  /** Adds or updates a room the person is in from a listed room. */
  remember(item){
    let room = this.rooms.get(item.id)
    if(!room){
      room = {
        id: item.id, members: new Map(), posts: new Map(), nodes: new Map(), typing: new Map(), streams: new Map(),
        pageToken: null, paged: false, unread: 0, lastAt: item.inserted_at, channel: null, readTimer: null,
      }
      this.rooms.set(item.id, room)
    }
    room.name = item.name
    room.topic = item.topic ?? null
    room.visibility = item.visibility
    room.moderator = item.moderator === true
    return room
  }

  // --- the room's channel ---

  join(room){
    if(room.channel){ return room.channel.joined }
    const channel = this.client.socket.channel(`room:${room.id}`)
    room.channel = channel
    channel.on("phx_join", reply => this.joined(room, reply))
    channel.on("phx_close", () => this.gone(room.id))
    channel.on("new_post", post => this.posted(room, post))
    channel.on("edit_post", post => {
      const known = room.posts.get(post.id)
      if(known){ Object.assign(known, this.shape(post)) }
      this.changed(room)
    })
    channel.on("delete_post", ({message_id}) => this.removed(room, message_id))
    channel.on("member_joined", ({user_id}) => this.memberJoined(room, user_id))
    channel.on("member_left", ({user_id}) => {
      room.memberCount = Math.max(1, room.memberCount - 1)
      if(!room.members.delete(user_id)){ this.changed(room); return }
      if(user_id !== this.me){ this.line(room, `${this.client.name(user_id)} left`) }
      this.changed(room)
    })
    // The last moderator left: the member there longest moderates now, at once on every page.
    channel.on("moderator_appointed", ({user_id}) => {
      const member = room.members.get(user_id)
      if(member){ member.moderator = true }
      if(user_id === this.me){
        room.moderator = true
        this.line(room, "You now moderate this room")
      } else {
        this.line(room, `${this.client.name(user_id)} now moderates this room`)
      }
      this.changed(room)
    })
    const typing = shown => ({user_id}) => {
      if(user_id === this.me){ return }
      clearTimeout(room.typing.get(user_id))
      room.typing.delete(user_id)
      if(shown){ room.typing.set(user_id, setTimeout(() => { room.typing.delete(user_id); this.renderTyping(room) }, TYPING_SHOWN_MS)) }
      this.renderTyping(room)
    }
    channel.on("start_typing", typing(true))
    channel.on("finish_typing", typing(false))
    channel.on("read_room", ({user_id, read_at}) => {
      const member = room.members.get(user_id)
      if(member){ member.read_at = read_at }
      if(this.showing(room)){ this.renderPosts(room) }
    })
    channel.on("assistant_delta", ({reply_id, index, delta}) => {
      if(room.posts.has(reply_id)){ return }
      const stream = room.streams.get(reply_id) ?? {parts: [], at: new Date().toISOString()}
      stream.parts[index] = delta
      room.streams.set(reply_id, stream)
      if(this.showing(room)){ this.renderPosts(room) }
    })
    return channel.join()
  }

  /** A (re)join reply: the room, its members and its newest page of posts. */
  async joined(room, {room: item, members, member_count, messages}){
    this.remember(item)
    // A big room's reply has only its first hundred members; the count is the whole room's.
    room.members = new Map(members.map(member => [member.user_id, member]))
    room.memberCount = member_count ?? room.members.size
    const page = messages.items.map(post => this.shape(post))
    // A rejoin whose page shares nothing with what is shown missed more than a page: the
    // page starts the history again.
    const continues = page.some(post => room.posts.has(post.id))
    if(!room.paged || !continues && page.length){
      for(const id of [...room.posts.keys()]){ if(!room.posts.get(id).pending){ room.posts.delete(id) } }
      room.nodes.clear()
      room.pageToken = messages.page_token
    }
    room.paged = true
    for(const post of page){
      room.posts.set(post.id, post)
      room.streams.delete(post.id)
    }
    if(page.length){ room.lastAt = page[0].at > room.lastAt ? page[0].at : room.lastAt }
    const readAt = room.members.get(this.me)?.read_at ?? ""
    room.unread = page.filter(post => post.sender !== this.me && post.at > readAt).length
    await this.client.ensureUsers([...room.members.keys()])
    if(this.showing(room) && document.visibilityState === "visible"){ this.markRead(room) }
    this.changed(room)
  }

  /** A post as shown, from the server's. */
  shape(post){
    return {id: post.id, sender: post.sender, text: post.text, at: post.inserted_at, edited: post.updated_at !== post.inserted_at}
  }

  posted(room, post){
    const fresh = !room.posts.has(post.id)
    if(post.sender === this.me){
      // This page's own post, pushed before the reply to it came: it takes the place of the pending one.
      const pending = [...room.posts.values()].find(known => known.pending && known.text === post.text)
      if(pending){ room.posts.delete(pending.id) }
    }
    room.posts.set(post.id, this.shape(post))
    room.streams.delete(post.id)
    clearTimeout(room.typing.get(post.sender))
    room.typing.delete(post.sender)
    if(post.inserted_at > room.lastAt){ room.lastAt = post.inserted_at }
    if(fresh && post.sender !== this.me){
      if(this.showing(room) && document.visibilityState === "visible"){ this.markRead(room) } else { room.unread += 1 }
    }
    this.changed(room)
  }

  removed(room, postId){
    if(!room.posts.delete(postId)){ return }
    room.nodes.delete(postId)
    if(this.editing === postId){ this.stopEditing() }
    this.changed(room)
  }

  async memberJoined(room, userId){
    const known = room.members.has(userId)
    if(!known){
      room.members.set(userId, {user_id: userId, moderator: false, read_at: null})
      room.memberCount += 1
    }
    await this.client.ensureUsers([userId])
    if(!known && userId !== this.me){ this.line(room, `${this.client.name(userId)} joined`) }
    this.changed(room)
  }

  /** A line in the room's history saying what happened (kept on this page only). */
  line(room, text){
    const id = uuidv7()
    room.posts.set(id, {id, system: true, text, at: new Date().toISOString()})
  }

  /** The person left the room (here or on another device), or it is no longer theirs. */
  gone(roomId){
    const room = this.rooms.get(roomId)
    if(!room){ return }
    room.channel?.leave()
    this.rooms.delete(roomId)
    if(room.visibility === "public"){ this.others.set(roomId, {id: roomId, name: room.name, topic: room.topic, visibility: "public"}) }
    if(this.client.current === roomId){ this.client.open(null) }
    this.client.renderList()
  }

  /** Something in `room` changed: the list and, when it is shown, the room. */
  changed(room){
    this.client.renderList()
    if(this.showing(room)){
      this.renderHeader(room)
      this.renderPosts(room)
      this.renderTyping(room)
    }
  }

  markRead(room){
    room.unread = 0
    clearTimeout(room.readTimer)
    // Several arrivals in a row make one read mark.
    room.readTimer = setTimeout(() => room.channel?.push("read_room").catch(() => {}), 300)
  }

  /** The total of unread posts in rooms, for the page's title. */
  unread(){
    return [...this.rooms.values()].reduce((sum, room) => sum + room.unread, 0)
  }

  // --- the list ---

  /** The rooms' rows of the list, each with its last activity (the client orders them with the conversations). */
  listRows(){
    return [...this.rooms.values()].map(room => {
      const badge = room.unread > 0 ? h("span", {class: "badge", "aria-label": `${room.unread} unread`}, String(room.unread)) : null
      return {lastAt: room.lastAt, node: h("li", {},
        h("button", {type: "button", class: "room", "data-room": room.id, "aria-current": String(this.client.current === room.id),
          onclick: () => this.client.open(room.id)},
          h("span", {class: "room-mark", "aria-hidden": "true"}, "#"),
          h("span", {class: "summary"},
            h("span", {class: "name"}, room.name),
            h("time", {datetime: room.lastAt}, listTime(room.lastAt)),
            h("span", {class: "preview"}, this.preview(room)),
            h("span", {class: "not-e2e", title: "The server can read this room's posts."}, `Room · ${NOT_E2E}`)),
          badge))}
    })
  }

  preview(room){
    const post = [...room.posts.values()].filter(post => !post.system && !post.pending).sort(byId).at(-1)
    if(!post){ return room.topic ?? "" }
    const sender = post.sender === this.me ? "You" : this.client.name(post.sender)
    return `${sender}: ${post.text.replace(/\s+/g, " ").slice(0, 120)}`
  }

  // --- the room's view ---

  showing(room){ return this.view?.roomId === room.id && this.client.current === room.id }

  /** Fills the main pane with the room `roomId`. */
  show(roomId, main){
    const room = this.rooms.get(roomId)
    const client = this.client
    const header = h("header", {class: "room-header"})
    const notice = h("div", {class: "room-notice", role: "note"})
    const members = h("details", {class: "members"})
    const list = h("div", {class: "messages", role: "log", "aria-label": "Posts"})
    const typingLine = h("div", {class: "typing", "aria-live": "polite"})
    client.status = h("div", {class: "status", role: "status"})
    const editBar = h("div", {class: "editing", role: "status"})
    const input = h("textarea", {name: "message", rows: 1, maxlength: MAX_POST_CHARS, "aria-label": "Post",
      placeholder: "Post, or ask @assistant"})
    const form = h("form", {class: "composer"}, input, h("button", {type: "submit", class: "primary"}, "Post"))
    this.view = {roomId, header, notice, members, list, typingLine, editBar, input, stickToBottom: true}
    list.addEventListener("scroll", () => {
      this.view.stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
      // Older posts come when the top is near.
      if(list.scrollTop < 80 && room.pageToken && !room.loadingOlder){ this.older(room).catch(error => client.fail(error)) }
    }, {passive: true})
    const submit = async () => {
      const text = input.value
      if(!text.trim()){ return }
      input.value = ""
      try {
        await (this.editing ? this.saveEdit(room, text) : this.post(room, text))
        client.setStatus("")
      } catch(error){
        input.value = text
        client.fail(error)
      }
    }
    form.addEventListener("submit", event => { event.preventDefault(); submit() })
    input.addEventListener("keydown", event => {
      if(event.key === "Enter" && !event.shiftKey){ event.preventDefault(); submit() }
      if(event.key === "Escape" && this.editing){ this.stopEditing(); input.value = "" }
    })
    input.addEventListener("input", () => this.typed(room))
    fill(main, client.identityNotice(), header, notice, members, list, typingLine, client.status, editBar, form)
    this.renderHeader(room)
    this.renderPosts(room)
    this.renderTyping(room)
  }

  /** The client opened the room (from the list, a link, Back or Forward). */
  opened(roomId){
    const room = this.rooms.get(roomId)
    this.stopEditing()
    if(!room.channel){ this.join(room).catch(error => this.client.fail(error)) }
    this.markRead(room)
    this.client.renderList()
    this.view?.input.focus()
  }

  /** The client moved away from the room `roomId` (to another, or to the list). */
  closed(roomId){
    const room = this.rooms.get(roomId)
    if(room){ this.stopTyping(room) }
    this.stopEditing()
    this.view = null
  }

  /** The page became visible again: the shown room's new posts are read now. */
  visible(currentId){
    const room = this.rooms.get(currentId)
    if(room?.unread){ this.markRead(room); this.client.renderList() }
  }

  /** Draws the shown room again (names changed). */
  render(){
    const room = this.rooms.get(this.view?.roomId)
    if(room && this.showing(room)){ this.changed(room) }
  }

  presenceChanged(){
    const room = this.rooms.get(this.view?.roomId)
    if(room && this.showing(room)){ this.renderHeader(room) }
  }

  renderHeader(room){
    const {header, notice, members} = this.view
    const client = this.client
    // The person is online, reading this; the others by presence.
    const online = [...room.members.keys()].filter(id => id === this.me || client.online(id)).length
    const count = room.memberCount ?? room.members.size
    fill(header,
      h("button", {type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => history.state?.list ? history.back() : client.open(null)}, "←"),
      h("h2", {}, h("span", {class: "room-mark", "aria-hidden": "true"}, "#"), room.name),
      h("span", {class: "visibility"}, room.visibility === "public" ? "Public room" : "Private room"),
      h("button", {type: "button", onclick: () => this.search(room).catch(e => client.fail(e))}, "Search"),
      room.moderator ? h("button", {type: "button", onclick: () => this.addMembers(room).catch(e => client.fail(e))}, "Add people") : null,
      h("button", {type: "button", class: "danger", onclick: () => this.leave(room).catch(e => client.fail(e))}, "Leave"))
    fill(notice,
      h("strong", {}, `This room is ${NOT_E2E}. `),
      "The server and its administrators can read its posts, and people who join later read its history: keep private things to conversations.",
      room.topic ? h("span", {class: "topic"}, room.topic) : null)
    const wasOpen = members.open
    const ids = [...room.members.keys()].sort((a, b) => client.name(a).localeCompare(client.name(b)))
    fill(members,
      h("summary", {}, `${count} ${count === 1 ? "member" : "members"} · ${online} online`),
      h("ul", {}, ids.map(id => h("li", {"data-member": id},
        h("span", {class: id === this.me || client.online(id) ? "dot online" : "dot", title: id === this.me || client.online(id) ? "online" : "offline"}),
        h("span", {}, id === this.me ? `${client.users.get(id)?.display_name ?? "You"} (you)` : client.name(id)),
        room.members.get(id).moderator ? h("span", {class: "muted"}, "moderator") : null))))
    members.open = wasOpen
  }

  renderPosts(room, {keepTop = false} = {}){
    const {list} = this.view
    const fromBottom = keepTop ? list.scrollHeight - list.scrollTop : 0
    const posts = [...room.posts.values()].sort(byId)
    const lastMine = posts.findLast(post => post.sender === this.me && !post.system)
    const nodes = []
    let previous = null
    for(const post of posts){
      const day = new Date(post.at)
      if(!previous || !sameDay(day, new Date(previous.at))){
        nodes.push(h("div", {class: "day", role: "separator"}, h("span", {}, dayLabel(post.at))))
        previous = null
      }
      const node = this.cachedNode(room, post)
      node.classList.toggle("grouped", Boolean(previous && !post.system && !previous.system && previous.sender === post.sender && day - new Date(previous.at) < 5 * 60000))
      nodes.push(node)
      if(post === lastMine){ nodes.push(this.seenNode(room, post)) }
      previous = post
    }
    for(const [replyId, stream] of room.streams){
      nodes.push(h("article", {class: "message streaming", "data-post": replyId},
        h("div", {class: "meta"}, "Assistant", h("span", {}, "writing…")),
        h("div", {class: "text"}, stream.parts.join(""))))
    }
    fill(list,
      room.pageToken ? h("button", {type: "button", class: "older link", onclick: () => this.older(room).catch(e => this.client.fail(e))}, "Load older posts") : null,
      nodes.length ? nodes : h("p", {class: "empty"}, "No posts yet. Say hello, or ask @assistant something."))
    if(keepTop){
      list.scrollTop = list.scrollHeight - fromBottom
    } else if(this.view.stickToBottom){
      requestAnimationFrame(() => { list.scrollTop = list.scrollHeight })
    }
  }

  /** Under the person's latest post: who has read the room since (read marks). */
  seenNode(room, post){
    if(post.pending){ return h("div", {class: "receipt", "data-state": "sending"}, "Posting…") }
    const readers = [...room.members.values()].filter(m => m.user_id !== this.me && (m.read_at ?? "") >= post.at).map(m => this.client.name(m.user_id))
    const others = (room.memberCount ?? room.members.size) - 1
    let text = "Posted"
    if(readers.length && readers.length === others){
      text = others === 1 ? `Seen by ${readers[0]}` : "Seen by everyone"
    } else if(readers.length){
      const named = readers.slice(0, SEEN_NAMES).join(", ")
      text = readers.length > SEEN_NAMES ? `Seen by ${named} and ${readers.length - SEEN_NAMES} more` : `Seen by ${named}`
    }
    return h("div", {class: "receipt", "data-state": readers.length ? "read" : "sent"}, text)
  }

  cachedNode(room, post){
    const shows = JSON.stringify([post.text, post.edited, this.client.name(post.sender), post.at, post.pending, room.moderator])
    const cached = room.nodes.get(post.id)
    if(cached?.shows === shows){ return cached.node }
    const node = this.postNode(room, post)
    room.nodes.set(post.id, {shows, node})
    return node
  }

  postNode(room, post){
    if(post.system){ return h("p", {class: "system", role: "note"}, post.text) }
    const mine = post.sender === this.me
    const current = () => room.posts.get(post.id) ?? post
    const actions = post.pending ? [] : [
      mine ? h("button", {type: "button", "aria-label": "Edit post", onclick: () => this.startEdit(current())}, "Edit") : null,
      mine || room.moderator ? h("button", {type: "button", class: "danger", "aria-label": "Delete post", onclick: () => this.remove(room, current()).catch(e => this.client.fail(e))}, "Delete…") : null,
    ].filter(Boolean)
    return h("article", {class: ["message", mine ? "mine" : "", post.sender === ASSISTANT ? "assistant" : "", post.pending ? "pending" : ""].filter(Boolean).join(" "), "data-post": post.id},
      h("div", {class: "meta"},
        h("span", {class: "sender"}, this.client.name(post.sender)),
        h("time", {datetime: post.at, title: when(post.at)}, time(post.at)),
        post.edited ? h("span", {}, "edited") : null,
        actions.length ? this.client.messageMenu(...actions) : null),
      h("div", {class: "text"}, linked(post.text)))
  }

  renderTyping(room){
    if(!this.showing(room)){ return }
    const names = [...room.typing.keys()].map(id => this.client.name(id))
    this.view.typingLine.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`
  }

  async older(room){
    if(!room.pageToken || room.loadingOlder){ return }
    room.loadingOlder = true
    try {
      const page = await this.client.session.api("GET", `/api/rooms/${room.id}/messages?page_token=${encodeURIComponent(room.pageToken)}`)
      for(const post of page.items){ room.posts.set(post.id, this.shape(post)) }
      room.pageToken = page.page_token
    } finally {
      room.loadingOlder = false
    }
    if(this.showing(room)){ this.renderPosts(room, {keepTop: true}) }
  }

  // --- writing ---

  async post(room, text){
    if(text.length > MAX_POST_CHARS){ throw new Error(`A post holds at most ${MAX_POST_CHARS} characters.`) }
    this.stopTyping(room)
    const clientMsgId = uuidv7()
    const pendingId = PENDING + clientMsgId
    // Shown at once as "Posting…"; the server's post takes its place when it answers.
    room.posts.set(pendingId, {id: pendingId, sender: this.me, text, at: new Date().toISOString(), pending: true})
    this.view.stickToBottom = true
    this.changed(room)
    try {
      const post = await room.channel.push("post", {text, client_msg_id: clientMsgId})
      room.posts.delete(pendingId)
      this.posted(room, post)
    } catch(error){
      room.posts.delete(pendingId)
      this.changed(room)
      throw error
    }
  }

  startEdit(post){
    this.client.closeMenus()
    const {input, editBar} = this.view
    this.editing = post.id
    input.value = post.text
    input.focus()
    fill(editBar, h("span", {}, "Editing a post: Enter saves, Escape cancels."),
      h("button", {type: "button", class: "link", onclick: () => { this.stopEditing(); input.value = "" }}, "Cancel"))
  }

  stopEditing(){
    this.editing = null
    if(this.view){ fill(this.view.editBar) }
  }

  async saveEdit(room, text){
    const post = await room.channel.push("edit_post", {message_id: this.editing, text})
    const known = room.posts.get(post.id)
    if(known){ Object.assign(known, this.shape(post)) }
    this.stopEditing()
    this.changed(room)
  }

  async remove(room, post){
    this.client.closeMenus()
    const whose = post.sender === this.me ? "" : ` ${this.client.name(post.sender)} wrote it; as a moderator you may remove it.`
    const removed = await modal("Delete this post?", h("p", {}, `It is deleted for everyone in this room.${whose}`), {submit: "Delete", danger: true, action: async () => {
      await room.channel.push("delete_post", {message_id: post.id})
      return true
    }})
    if(removed){ this.removed(room, post.id) }
  }

  typed(room){
    if(!this.typingSent){
      this.typingSent = true
      room.channel?.push("start_typing").catch(() => {})
    }
    clearTimeout(this.typingTimer)
    this.typingTimer = setTimeout(() => this.stopTyping(room), TYPING_IDLE_MS)
  }

  stopTyping(room){
    clearTimeout(this.typingTimer)
    if(this.typingSent){
      this.typingSent = false
      room.channel?.push("finish_typing").catch(() => {})
    }
  }

  // --- finding, making, joining and leaving rooms ---

  /** The public rooms the person is not in, to join one. */
  async browse(){
    await this.refresh()
    const filter = h("input", {type: "search", placeholder: "A name or a topic", "aria-label": "Filter rooms"})
    const rooms = [...this.others.values()].sort((a, b) => a.name.localeCompare(b.name))
    const rows = rooms.map(item => h("label", {class: "inline room-choice", "data-room": item.id},
      h("input", {type: "radio", name: "room", value: item.id}),
      h("span", {}, h("span", {}, item.name), item.topic ? h("span", {class: "muted"}, item.topic) : null)))
    const none = h("p", {class: "muted"}, rooms.length ? "No room by that name or topic." : "No public rooms to join yet. Make one with New room.")
    const show = () => {
      const needle = filter.value.trim().toLowerCase()
      rooms.forEach((item, i) => { rows[i].hidden = !`${item.name}\n${item.topic ?? ""}`.toLowerCase().includes(needle) })
      none.hidden = rows.some(row => !row.hidden)
    }
    filter.addEventListener("input", show)
    show()
    const id = await modal("Public rooms", [
      h("p", {class: "muted"}, `Rooms are ${NOT_E2E}: the server can read them.`),
      filter, h("div", {class: "pick"}, rows), none,
    ], {submit: "Join", action: async () => {
      const chosen = rows.map(row => row.querySelector("input")).find(input => input.checked && !input.closest("label").hidden)
      if(!chosen){ throw new Error("Choose a room.") }
      const item = await this.client.session.api("POST", `/api/rooms/${chosen.value}/join`)
      this.others.delete(item.id)
      this.remember(item)
      return item.id
    }})
    if(id){ await this.enter(id) }
  }

  /** Makes a room: name, topic, public or private. */
  async create(){
    const name = h("input", {name: "name", required: true, maxlength: 100})
    const topic = h("input", {name: "topic", maxlength: 500, placeholder: "Optional"})
    const visibility = h("select", {name: "visibility"},
      h("option", {value: "public"}, "Public: anyone here can find and join it"),
      h("option", {value: "private"}, "Private: only people a moderator adds"))
    const id = await modal("New room", [
      h("p", {class: "muted"}, `A room is ${NOT_E2E}: the server and its administrators can read it. You will moderate it.`),
      h("label", {}, h("span", {}, "Name"), name),
      h("label", {}, h("span", {}, "Topic"), topic),
      h("label", {}, h("span", {}, "Who may join"), visibility),
    ], {submit: "Create", action: async () => {
      if(!name.value.trim()){ throw new Error("Give the room a name.") }
      const item = await this.client.session.api("POST", "/api/rooms", {name: name.value.trim(), topic: topic.value.trim() || null, visibility: visibility.value})
      this.remember(item)
      return item.id
    }})
    if(id){ await this.enter(id) }
  }

  /** Joins a room's channel and opens it. */
  async enter(id){
    const room = this.rooms.get(id)
    this.client.renderList()
    await this.join(room)
    this.client.open(id)
  }

  /** A moderator adds people (the people picker of groups). */
  async addMembers(room){
    const {box, chosen} = await this.client.userChoices("checkbox", [...room.members.keys()])
    await modal(`Add people to ${room.name}`, [h("p", {class: "muted"}, "They can read the room's history and everything posted from now on."), box], {submit: "Add", action: async () => {
      const ids = chosen()
      if(!ids.length){ throw new Error("Choose at least one person.") }
      await this.client.session.api("POST", `/api/rooms/${room.id}/members`, {user_ids: ids})
      return true
    }})
  }

  async leave(room){
    const left = await modal("Leave this room?", h("p", {}, room.visibility === "public"
      ? "You will no longer receive its posts. You can join it again from Browse rooms."
      : "You will no longer receive its posts. Only a moderator can add you again."), {submit: "Leave", danger: true, action: async () => {
      await this.client.session.api("POST", `/api/rooms/${room.id}/leave`)
      return true
    }})
    if(left){ this.gone(room.id) }
  }

  /** Full-text search of the room's posts. */
  async search(room){
    const query = h("input", {type: "search", name: "q", required: true, maxlength: 200, "aria-label": "Search words"})
    const results = h("ul", {class: "search-results", "aria-live": "polite"})
    await modal(`Search ${room.name}`, [h("p", {class: "muted"}, "Whole words, in any case; newest first."), query, results], {submit: "Search", action: async () => {
      const q = query.value.trim()
      if(!q){ throw new Error("Type a word to find.") }
      const {items} = await this.client.session.api("GET", `/api/rooms/${room.id}/search?q=${encodeURIComponent(q)}`)
      fill(results, items.length ? items.map(post => h("li", {"data-post": post.id},
        h("div", {class: "meta"}, h("span", {class: "sender"}, this.client.name(post.sender)), h("time", {datetime: post.inserted_at}, when(post.inserted_at))),
        h("div", {class: "text"}, linked(post.text)))) : h("li", {class: "muted"}, "Nothing found."))
      // The dialog stays open with its results.
      return false
    }})
  }
}

/** Newest activity first. */
function byActivity(a, b){
  return (b.lastAt ?? "") < (a.lastAt ?? "") ? -1 : (b.lastAt ?? "") > (a.lastAt ?? "") ? 1 : 0
}
