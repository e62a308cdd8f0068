// A Phoenix Channels client (serializer 2.0.0, JSON text frames) for the browser: the protocol
// of docs/phoenix.md, the parts the web client uses. Written here rather than taken
// from the `phoenix` npm package because the web client is plain ES modules embedded in the
// binary with no build step, and that package is not available when the binary is built.
// hearth is tested against the official package separately (clients/phoenix-js).
//
// The access token travels in the `base64url.bearer.phx.<token>` subprotocol, never in the URL
// (URLs end up in logs). Each connect asks `token()` afresh, so a refreshed token is used.

const HEARTBEAT_MS = 30000
const BACKOFF_MS = [100, 500, 1000, 2000, 5000]
const REPLY_TIMEOUT_MS = 10000

/** Why a push or join failed: the server's reason, or "timeout" / "disconnected". */
export class ChannelError extends Error {
  constructor(reason){
    super(reason)
    this.name = "ChannelError"
    this.reason = reason
  }
}

const base64url = text => btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")

export class Socket {
  /**
   * @param {string} url  the socket endpoint, e.g. wss://host/socket/websocket
   * @param {(fresh: boolean) => Promise<string>} token  the access token to connect with;
   *   `fresh` after the server refused a connection or went away (the token may be revoked)
   */
  constructor(url, token){
    this.url = url
    this.token = token
    this.channels = new Map()
    this.pending = new Map()
    this.ref = 0
    this.attempt = 0
    this.ws = null
    this.closedByUs = false
    this.stale = false
    this.listeners = {open: [], close: []}
  }

  /** `event` is "open" (after every (re)connect) or "close". */
  on(event, callback){ this.listeners[event].push(callback) }

  nextRef(){ this.ref += 1; return String(this.ref) }

  async connect(){
    this.closedByUs = false
    let token
    try {
      token = await this.token(this.stale)
    } catch(error){
      // Signed out for good: the app has been told by whoever refused the token.
      if(error?.signedOut){ return }
      return this.retry()
    }
    if(this.closedByUs){ return }
    const ws = new WebSocket(`${this.url}?vsn=2.0.0`, ["phoenix", `base64url.bearer.phx.${base64url(token)}`])
    this.ws = ws
    let opened = false
    ws.onopen = () => {
      opened = true
      this.stale = false
      this.attempt = 0
      this.heartbeat = setInterval(() => this.sendHeartbeat(), HEARTBEAT_MS)
      for(const channel of this.channels.values()){
        if(channel.state !== "closed"){ channel.rejoin() }
      }
      this.listeners.open.forEach(f => f())
    }
    ws.onmessage = event => this.receive(event.data)
    ws.onclose = event => {
      clearInterval(this.heartbeat)
      if(this.ws !== ws){ return }
      this.ws = null
      // Closed before it opened (refused with HTTP 403, or unreachable), or by the server going
      // away (1001: signed out, password changed, restarting): reconnect with a fresh token,
      // whose refresh also tells a revoked session that it is over.
      if(!opened || event.code === 1001){ this.stale = true }
      this.failPending("disconnected")
      for(const channel of this.channels.values()){
        if(channel.state === "joined" || channel.state === "joining"){ channel.state = "errored" }
      }
      this.listeners.close.forEach(f => f())
      if(!this.closedByUs){ this.retry() }
    }
  }

  retry(){
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]
    this.attempt += 1
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => this.connect(), delay * (0.75 + Math.random() / 2))
  }

  disconnect(){
    this.closedByUs = true
    clearTimeout(this.retryTimer)
    clearInterval(this.heartbeat)
    const ws = this.ws
    this.ws = null
    if(ws){ ws.close(1000) }
    this.failPending("disconnected")
  }

  get connected(){ return this.ws?.readyState === WebSocket.OPEN }

  sendHeartbeat(){
    const ref = this.nextRef()
    this.send([null, ref, "phoenix", "heartbeat", {}])
    // No reply in time: the connection is dead without having said so.
    const timer = setTimeout(() => this.ws?.close(), REPLY_TIMEOUT_MS)
    this.pending.set(ref, {resolve: () => clearTimeout(timer), reject: () => clearTimeout(timer), timer})
  }

  send(frame){
    if(!this.connected){ return false }
    this.ws.send(JSON.stringify(frame))
    return true
  }

  /** Sends a frame and resolves with the reply's payload (`status` "ok"), rejecting otherwise. */
  request(joinRef, topic, event, payload){
    return new Promise((resolve, reject) => {
      const ref = this.nextRef()
      if(!this.send([joinRef ?? ref, ref, topic, event, payload ?? {}])){
        return reject(new ChannelError("disconnected"))
      }
      const timer = setTimeout(() => {
        this.pending.delete(ref)
        reject(new ChannelError("timeout"))
      }, REPLY_TIMEOUT_MS)
      this.pending.set(ref, {resolve, reject, timer, joinRef: joinRef ?? ref})
    })
  }

  failPending(reason){
    for(const {reject, timer} of this.pending.values()){
      clearTimeout(timer)
      reject(new ChannelError(reason))
    }
    this.pending.clear()
  }

  receive(data){
    if(typeof data !== "string"){ return }
    let frame
    try { frame = JSON.parse(data) } catch { return }
    if(!Array.isArray(frame) || frame.length < 5){ return }
    const [joinRef, ref, topic, event, payload] = frame
    if(event === "phx_reply" && ref !== null){
      const waiting = this.pending.get(ref)
      if(!waiting){ return }
      this.pending.delete(ref)
      clearTimeout(waiting.timer)
      if(payload?.status === "ok"){
        waiting.resolve(payload.response)
      } else {
        waiting.reject(new ChannelError(payload?.response?.reason ?? "error"))
      }
      return
    }
    const channel = this.channels.get(topic)
    if(!channel){ return }
    // Pushes for an earlier join of the topic are stale.
    if(joinRef !== null && joinRef !== channel.joinRef){ return }
    if(event === "phx_close" || event === "phx_error"){
      channel.state = event === "phx_close" ? "closed" : "errored"
      channel.emit(event, payload)
      if(event === "phx_error" && this.connected){ setTimeout(() => channel.rejoin(), 1000) }
      return
    }
    channel.emit(event, payload)
  }

  /** The channel of a topic, made on first use; join it with `join()`. */
  channel(topic, params = {}){
    let channel = this.channels.get(topic)
    if(!channel){
      channel = new Channel(this, topic, params)
      this.channels.set(topic, channel)
    }
    return channel
  }
}

export class Channel {
  constructor(socket, topic, params){
    this.socket = socket
    this.topic = topic
    this.params = params
    this.state = "closed"
    this.joinRef = null
    this.handlers = new Map()
    this.joined = null
  }

  /** Calls `callback(payload)` for every `event` pushed on this topic. */
  on(event, callback){
    if(!this.handlers.has(event)){ this.handlers.set(event, []) }
    this.handlers.get(event).push(callback)
    return this
  }

  emit(event, payload){
    for(const handler of this.handlers.get(event) ?? []){
      try { handler(payload) } catch(error){ console.error(`handler of ${this.topic} ${event}`, error) }
    }
  }

  /** Joins; resolves with the join reply. The channel rejoins by itself after a reconnect. */
  join(){
    this.state = "joining"
    const ref = this.socket.nextRef()
    this.joinRef = ref
    this.joined = new Promise((resolve, reject) => {
      if(!this.socket.send([ref, ref, this.topic, "phx_join", this.params])){
        // Not connected yet: the socket's open handler joins it.
        this.onJoined = {resolve, reject}
        return
      }
      const timer = setTimeout(() => {
        this.socket.pending.delete(ref)
        reject(new ChannelError("timeout"))
      }, REPLY_TIMEOUT_MS)
      this.socket.pending.set(ref, {
        timer,
        resolve: reply => {
          this.state = "joined"
          this.emit("phx_join", reply)
          resolve(reply)
        },
        reject: error => {
          this.state = "errored"
          reject(error)
        },
      })
    })
    return this.joined
  }

  rejoin(){
    const waiting = this.onJoined
    this.onJoined = null
    const joined = this.join()
    if(waiting){ joined.then(waiting.resolve, waiting.reject) }
    joined.catch(() => {})
  }

  /** Pushes an event; resolves with the `ok` reply's response, rejects with a ChannelError. */
  async push(event, payload = {}){
    if(this.state !== "joined"){ await this.joined }
    return this.socket.request(this.joinRef, this.topic, event, payload)
  }

  leave(){
    if(this.state === "joined"){ this.socket.send([this.joinRef, this.socket.nextRef(), this.topic, "phx_leave", {}]) }
    this.state = "closed"
    this.socket.channels.delete(this.topic)
  }
}
