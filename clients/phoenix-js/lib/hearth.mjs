// Test support: hearth's REST API over fetch, and users connected through the official
// `phoenix` client (Socket, Channel, Presence) on the `ws` WebSocket implementation.
//
// Everything waits on events with a deadline; nothing polls.

import {randomUUID} from "node:crypto"
import {Socket, Presence} from "phoenix"
import WebSocket from "ws"

/** The server under test, e.g. `http://127.0.0.1:4000`. */
export const HEARTH_URL = (process.env.HEARTH_URL || "").replace(/\/+$/, "")
if(!HEARTH_URL){
  throw new Error("set HEARTH_URL to the server under test, e.g. HEARTH_URL=http://127.0.0.1:4000")
}

/**
 * `POST` here restarts the server on the same address; the answer comes once it listens
 * again. Set by the Rust runner (`cargo test -p hearth --test cli phoenix_js`).
 */
export const RESTART_URL = process.env.HEARTH_RESTART_URL || ""

/** How long any one expected event, reply or state may take. */
export const WAIT_MS = 5000

/** How long to give an event that must *not* arrive the chance to arrive anyway. */
export const SETTLE_MS = 300

export const PASSWORD = "VerySecurePassword1!"

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A stand-in public key (a JWK), distinct per owner. */
export const jwk = owner => ({kty: "EC", crv: "P-256", x: `x-of-${owner}`, y: `y-of-${owner}`})

/** Calls the REST API; returns `{status, body}` (body parsed as JSON when there is one). */
export async function api(method, path, {token, body} = {}){
  const headers = {accept: "application/json"}
  if(token){ headers.authorization = `Bearer ${token}` }
  if(body !== undefined){ headers["content-type"] = "application/json" }
  const response = await fetch(HEARTH_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return {status: response.status, body: text ? JSON.parse(text) : null}
}

/** Asks the Rust runner to restart the server, and waits until it listens again. */
export async function restartServer(){
  if(!RESTART_URL){ throw new Error("HEARTH_RESTART_URL is not set") }
  const response = await fetch(RESTART_URL, {method: "POST"})
  const text = await response.text()
  if(response.status !== 200){ throw new Error(`restart failed: ${response.status} ${text}`) }
}

const sorted = list => [...list].sort()

/** A refused push or join: carries the reply's response. */
export class Refused extends Error {
  constructor(what, response){
    super(`${what} was refused: ${JSON.stringify(response)}`)
    this.response = response
  }
}

/**
 * One person: a registered account and, once `connect`ed, one phoenix Socket with its
 * channels. Every message a channel receives is kept in `inbox` (in order), so a test can
 * wait for it whether it came before or after the test started waiting.
 */
export class User {
  constructor(name, session){
    this.name = name
    this.id = session.user.id
    this.email = session.user.email
    this.token = session.auth_token
    this.session = session
    this.socket = null
    this.channels = new Map()
    /** `{topic, event, payload, taken}` for every channel message (replies excluded). */
    this.inbox = []
    /** Every ok join reply per topic, rejoins included. */
    this.joinReplies = new Map()
    this.presence = null
    /** How many `presence_state`s the Presence has applied (one per join and rejoin). */
    this.presenceStates = 0
    this.opens = 0
    /** Heartbeat replies received. */
    this.heartbeats = 0
    this.closes = 0
    this.waiters = new Set()
  }

  /** Registers a new account with a random email. */
  static async register(name){
    const email = `${name}-${randomUUID()}@example.org`
    const {status, body} = await api("POST", "/auth/register", {
      body: {email, password: PASSWORD, display_name: name},
    })
    if(status !== 201){ throw new Error(`register ${name}: ${status} ${JSON.stringify(body)}`) }
    return new User(name, body)
  }

  /** Connects the socket (token as a connect param, re-read on every reconnect). */
  connect(){
    this.socket = new Socket(HEARTH_URL.replace(/^http/, "ws") + "/socket", {
      transport: WebSocket,
      params: () => ({token: this.token}),
      reconnectAfterMs: () => 50,
      rejoinAfterMs: () => 50,
      heartbeatIntervalMs: 1000,
    })
    this.socket.onOpen(() => { this.opens++; this.notify() })
    this.socket.onClose(() => { this.closes++; this.notify() })
    this.socket.onMessage(({topic, event}) => {
      if(topic === "phoenix" && event === "phx_reply"){ this.heartbeats++; this.notify() }
    })
    this.socket.connect()
  }

  /** The channel on `topic`, created (not joined) on first use; records what it receives. */
  channel(topic){
    let channel = this.channels.get(topic)
    if(!channel){
      channel = this.socket.channel(topic, {token: this.token})
      channel.onMessage = (event, payload) => {
        if(event !== "phx_reply" && !event.startsWith("chan_reply_")){
          this.inbox.push({topic, event, payload, taken: false})
          this.notify()
        }
        return payload
      }
      this.channels.set(topic, channel)
    }
    return channel
  }

  /**
   * Joins `topic`; resolves with the join reply's response, rejects with `Refused`.
   * The channel keeps every later ok reply (automatic rejoins) in `joinReplies`.
   */
  join(topic){
    const channel = this.channel(topic)
    if(topic === "system:general" && !this.presence){
      this.presence = new Presence(channel)
      this.presence.onSync(() => this.notify())
      // Bound after the Presence's own handler, so this runs once the state is applied.
      channel.on("presence_state", () => { this.presenceStates++; this.notify() })
    }
    const replies = []
    this.joinReplies.set(topic, replies)
    return new Promise((resolve, reject) => {
      channel.join()
        .receive("ok", response => { replies.push(response); this.notify(); resolve(response) })
        .receive("error", response => reject(new Refused(`${this.name}: join ${topic}`, response)))
        .receive("timeout", () => reject(new Error(`${this.name}: join ${topic} timed out`)))
    })
  }

  /**
   * Joins a topic the server must refuse; returns the reason, and leaves the channel so the
   * client stops retrying the join.
   */
  async refusedJoin(topic){
    try {
      await this.join(topic)
    } catch(error){
      if(!(error instanceof Refused)){ throw error }
      await this.leave(topic)
      return error.response.reason
    }
    throw new Error(`${this.name}: joining ${topic} should have been refused`)
  }

  /** Leaves `topic` (resolves once the client considers the channel closed). */
  leave(topic){
    const channel = this.channels.get(topic)
    this.channels.delete(topic)
    return new Promise(resolve => channel.leave().receive("ok", resolve).receive("timeout", resolve))
  }

  /** Pushes an event; resolves with `{status, response}` for ok and error replies. */
  push(topic, event, payload = {}){
    const channel = this.channels.get(topic)
    if(!channel){ throw new Error(`${this.name} has no channel on ${topic}`) }
    return new Promise((resolve, reject) => {
      channel.push(event, payload, WAIT_MS)
        .receive("ok", response => resolve({status: "ok", response}))
        .receive("error", response => resolve({status: "error", response}))
        .receive("timeout", () => reject(new Error(`${this.name}: ${event} on ${topic}: no reply`)))
    })
  }

  /** Pushes an event that must succeed; returns the reply's response. */
  async ok(topic, event, payload = {}){
    const {status, response} = await this.push(topic, event, payload)
    if(status !== "ok"){ throw new Refused(`${this.name}: ${event} on ${topic}`, response) }
    return response
  }

  /** Pushes an event that must be refused; returns the error reply's reason. */
  async refused(topic, event, payload = {}){
    const {status, response} = await this.push(topic, event, payload)
    if(status !== "error"){
      throw new Error(`${this.name}: ${event} on ${topic} should be refused, got ${status} ${JSON.stringify(response)}`)
    }
    if(typeof response.reason !== "string" || !response.reason){
      throw new Error(`${this.name}: ${event} on ${topic}: refusal without a reason: ${JSON.stringify(response)}`)
    }
    return response.reason
  }

  notify(){
    for(const waiter of [...this.waiters]){ waiter() }
  }

  /**
   * Waits until `check()` returns something other than `undefined`/`false` (re-checked
   * whenever this user receives anything); resolves with it.
   */
  until(check, what, timeout = WAIT_MS){
    return new Promise((resolve, reject) => {
      let timer = null
      const waiter = () => {
        const value = check()
        if(value === undefined || value === false){ return }
        this.waiters.delete(waiter)
        clearTimeout(timer)
        resolve(value)
      }
      this.waiters.add(waiter)
      timer = setTimeout(() => {
        this.waiters.delete(waiter)
        const seen = this.inbox.map(m => `  ${m.topic} ${m.event} ${JSON.stringify(m.payload)}`).join("\n")
        reject(new Error(`${this.name}: no ${what} within ${timeout} ms; received so far:\n${seen}`))
      }, timeout)
      waiter()
    })
  }

  /** Waits for the first not yet taken `event` on `topic` whose payload `matches`; takes it. */
  expect(topic, event, matches = () => true, timeout = WAIT_MS){
    return this.until(() => {
      const message = this.inbox.find(m => !m.taken && m.topic === topic && m.event === event && matches(m.payload))
      if(!message){ return undefined }
      message.taken = true
      return message.payload
    }, `${event} on ${topic}`, timeout)
  }

  /** Every `event` on `topic` received so far (taken or not) whose payload `matches`. */
  received(topic, event, matches = () => true){
    return this.inbox.filter(m => m.topic === topic && m.event === event && matches(m.payload)).map(m => m.payload)
  }

  /** The user ids this user's Presence shows, sorted. */
  present(){
    return this.presence ? sorted(this.presence.list(id => id)) : []
  }

  /** Waits until this user's Presence shows exactly `users`. */
  seesExactly(users, timeout = WAIT_MS){
    const want = sorted(users.map(u => u.id))
    return this.until(
      () => this.presenceStates > 0 && JSON.stringify(this.present()) === JSON.stringify(want),
      `presence of exactly [${users.map(u => u.name).join(", ")}] (shows ${this.present()})`,
      timeout,
    )
  }

  /** Waits for `condition` on the number of socket opens, join replies, … (see `until`). */
  async waitFor(condition, what, timeout = WAIT_MS){
    return this.until(() => condition() || undefined, what, timeout)
  }

  /** Closes the socket for good. */
  disconnect(){
    return new Promise(resolve => {
      if(!this.socket){ return resolve() }
      this.socket.disconnect(resolve)
    })
  }
}
