// The keys of the signed-in person and the rules that decide which keys of others this browser
// uses (docs/e2e.md, "What clients keep and refuse"): the same rules as the Rust client's
// Keyring (crates/hearth-client/src/trust/keyring.rs).
//
// - Pins on first sight: each contact's identity fingerprint is kept (per signed-in account,
//   in localStorage) the first time it is seen; a different identity later is a security key
//   change, and nothing is sent to that person until the change is acknowledged.
// - Signed conversation keys only: a member's conversation key is used only when their
//   identity signed it. An account with no identity ever seen (from before identities) may
//   have its unsigned key used to read its old (v1) messages, never to write to it.
// - Copies to identities: a member without an accepted conversation key (someone who has not
//   opened the conversation yet) gets their copy encrypted to their identity ("v2i").
// - No downgrade: a conversation seen end-to-end stays so, and plain text is sent only where
//   the server says it is the assistant's, this browser never saw it end-to-end, and the
//   person is its only member.
// - Own keys are never replaced silently: a key that does not unwrap is reported, and the
//   person may choose to make a new one.
// - Fresh key pairs are wrapped once and then used as their non-extractable re-import.
// - Every delivered message is checked against its authenticated header (DeliveryChecker):
//   one checker per history page, oldest first; the join's page continues with live messages.
//
// Everything is async (WebCrypto); the operations on one conversation run one after another,
// in the order they were called, so that the delivery checks see messages in arrival order.

import * as e2e from "./e2e.js"

let lastMillis = 0
let counter = 0

/**
 * A new UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, the version (7), 12 bits that
 * count up within one millisecond (from a random start, so that ids made here sort in the
 * order they were made), the variant (10) and 62 random bits. Lowercase and hyphenated.
 */
export function uuidv7(now = Date.now()){
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let millis = Math.max(Math.floor(now), 0)
  if(millis <= lastMillis){
    millis = lastMillis
    counter += 1
    if(counter > 0xfff){
      millis += 1
      counter = bytes[7] & 0x7f
    }
  } else {
    counter = ((bytes[6] & 0x07) << 8) | bytes[7]
  }
  lastMillis = millis
  for(let i = 5; i >= 0; i--){
    bytes[i] = millis % 256
    millis = Math.floor(millis / 256)
  }
  bytes[6] = 0x70 | (counter >> 8)
  bytes[7] = counter & 0xff
  bytes[8] = 0x80 | (bytes[8] & 0x3f)
  const hex = Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Why the keyring refused: `code` is one of the names below; `users` whom it is about. */
export class TrustError extends Error {
  constructor(code, message, users = []){
    super(message)
    this.name = "TrustError"
    this.code = code
    this.users = users
  }
}

const refuse = (code, message, users) => { throw new TrustError(code, message, users) }

/**
 * A key-value storage (localStorage's getItem/setItem/removeItem) that forgets everything: for
 * tests, and where localStorage cannot be used.
 */
export function memoryStorage(){
  const items = new Map()
  return {
    getItem: key => items.has(key) ? items.get(key) : null,
    setItem: (key, value) => { items.set(key, String(value)) },
    removeItem: key => { items.delete(key) },
  }
}

/**
 * What this browser remembers about whom and what the signed-in account trusts: each
 * contact's pinned identity fingerprint (and whether it was verified) and which conversations
 * it saw end-to-end encrypted. Kept in localStorage per account, and read again before every
 * change, so that two tabs do not undo each other's pins.
 */
export class TrustStore {
  constructor(userId, storage = globalThis.localStorage ?? memoryStorage()){
    this.key = `hearth.trust.${userId}`
    this.storage = storage
  }

  read(){
    try {
      const saved = JSON.parse(this.storage.getItem(this.key) ?? "null")
      return {
        pins: saved?.pins && typeof saved.pins === "object" ? saved.pins : {},
        end_to_end: Array.isArray(saved?.end_to_end) ? saved.end_to_end : [],
      }
    } catch {
      return {pins: {}, end_to_end: []}
    }
  }

  change(update){
    const remembered = this.read()
    if(update(remembered) !== false){ this.storage.setItem(this.key, JSON.stringify(remembered)) }
  }

  /** `{fingerprint, verified}` of `user`, if one was pinned. */
  pin(user){
    const pin = this.read().pins[user]
    return pin && typeof pin.fingerprint === "string" ? {fingerprint: pin.fingerprint, verified: pin.verified === true} : null
  }

  setPin(user, {fingerprint, verified}){
    this.change(remembered => {
      const pin = remembered.pins[user]
      if(pin?.fingerprint === fingerprint && pin?.verified === verified){ return false }
      remembered.pins[user] = {fingerprint, verified}
    })
  }

  isEndToEnd(conversation){ return this.read().end_to_end.includes(conversation) }

  /** Remembers for good that `conversation` is end-to-end encrypted. */
  recordEndToEnd(conversation){
    this.change(remembered => {
      if(remembered.end_to_end.includes(conversation)){ return false }
      remembered.end_to_end.push(conversation)
    })
  }
}

/** A key as the server relays it (a JSON text, or the object it parsed it to) as text. */
const keyText = key => typeof key === "string" ? key : key === null || key === undefined ? null : JSON.stringify(key)

const unreadable = reason => ({text: null, error: reason, flags: [], unchecked: false, sentAt: null})

function describe(error){
  if(error?.code === "decrypt"){ return "it does not decrypt with the keys it names" }
  return error?.message ?? String(error)
}

const UNOPENABLE = "unopenable"

/**
 * The keys of one signed-in account: its identity (null when the stored one does not open:
 * nothing can be signed or sent then), its key pair per conversation, the members' keys it
 * accepted, the pins, and the checks of what the server delivers. It does no network I/O:
 * the caller sends what it returns and feeds it what arrives.
 */
export class Keyring {
  constructor(me, wrapKey, identity, store){
    this.me = me
    this.wrapKey = wrapKey
    this.identity = identity
    this.store = store
    /** This run's stream: with `seq`, orders the messages this browser sends. */
    this.stream = Array.from(crypto.getRandomValues(new Uint8Array(8)), b => b.toString(16).padStart(2, "0")).join("")
    /** user id → {identity: canonical text or null, fingerprint, state} */
    this.contacts = new Map()
    /** conversation id → its keys (see `join`) */
    this.conversations = new Map()
    /** published identity (JSON text) → the promise of its canonical text and fingerprint */
    this.identities = new Map()
    /** conversation id → the promise of its last queued operation */
    this.queues = new Map()
  }

  /** Runs `operation` after every operation on `conversation` queued before it. */
  serial(conversation, operation){
    const previous = this.queues.get(conversation) ?? Promise.resolve()
    const next = previous.then(operation, operation)
    const settled = next.then(() => {}, () => {})
    this.queues.set(conversation, settled)
    settled.then(() => { if(this.queues.get(conversation) === settled){ this.queues.delete(conversation) } })
    return next
  }

  // --- contacts ---

  /**
   * Takes note of the identity the server publishes for `user` (a user object's or a join
   * reply's `identity_key`, or an `identity_key` event's). The first identity seen is pinned;
   * a different one later (or none where one was pinned) makes the contact "changed" and is
   * reported once: the notice `{kind: "identity_changed", user, wasVerified}`, else null.
   */
  async learnIdentity(user, published){
    const {notice, rejudged} = await this.learn(user, published)
    await rejudged
    return notice
  }

  /** learnIdentity without waiting for the re-judged keys (inside a conversation's queue). */
  async learn(user, published){
    if(user === this.me){ return {notice: null, rejudged: Promise.resolve()} }
    const {identity, fingerprint} = await this.parsed(published)
    // From here on synchronous: concurrent calls for one contact each see the other's result.
    const previous = this.contacts.get(user)
    const pin = this.store.pin(user)
    let state
    if(!identity && !pin){
      state = {kind: "none"}
    } else if(identity && !pin){
      this.store.setPin(user, {fingerprint, verified: false})
      state = {kind: "trusted", verified: false}
    } else if(identity && pin.fingerprint === fingerprint){
      state = {kind: "trusted", verified: pin.verified}
    } else {
      // Another identity, or none where one was pinned: both are changes.
      state = {kind: "changed", wasVerified: pin.verified}
    }
    this.contacts.set(user, {identity, fingerprint, state})
    const rejudged = previous?.identity === identity ? Promise.resolve() : this.rejudge(user)
    const notice = state.kind === "changed" && previous?.state.kind !== "changed"
      ? {kind: "identity_changed", user, wasVerified: state.wasVerified}
      : null
    return {notice, rejudged}
  }

  /**
   * The canonical text and fingerprint of a published identity (both null for none, or for
   * one that is not an identity key), remembered: every join reply repeats its members'.
   */
  async parsed(published){
    if(published === null || published === undefined){ return {identity: null, fingerprint: null} }
    const text = typeof published === "string" ? published : JSON.stringify(published)
    let parsed = this.identities.get(text)
    if(!parsed){
      parsed = (async () => {
        try {
          const identity = await e2e.parseIdentityKey(published)
          return {identity, fingerprint: await e2e.identityFingerprint(identity)}
        } catch {
          return {identity: null, fingerprint: null}
        }
      })()
      this.identities.set(text, parsed)
    }
    return parsed
  }

  /** `{kind: "none"}`, `{kind: "trusted", verified}` or `{kind: "changed", wasVerified}`. */
  contactState(user){
    return this.contacts.get(user)?.state ?? {kind: "none"}
  }

  /** Whether `user` has an identity this browser knows (pinned, or changed). */
  hasIdentity(user){ return Boolean(this.contacts.get(user)?.identity) }

  /** The person accepts `user`'s changed identity: it is pinned (unverified) and sending to them resumes. */
  acknowledge(user){
    const contact = this.contacts.get(user)
    if(!contact?.identity){ refuse("unknown_contact", "that person has no security key to acknowledge") }
    this.store.setPin(user, {fingerprint: contact.fingerprint, verified: false})
    contact.state = {kind: "trusted", verified: false}
  }

  /** The person compared safety numbers with `user` and they matched. */
  markVerified(user){
    const contact = this.contacts.get(user)
    if(!contact?.identity || contact.state.kind !== "trusted"){
      refuse("unknown_contact", "only a trusted security key can be marked verified")
    }
    this.store.setPin(user, {fingerprint: contact.fingerprint, verified: true})
    contact.state = {kind: "trusted", verified: true}
  }

  /** The safety number of the person and `user` (12 groups of 5 digits), or null if `user` has no identity. */
  async safetyNumber(user){
    const identity = this.contacts.get(user)?.identity
    if(!identity || !this.identity){ return null }
    return e2e.safetyNumber(this.me, this.identity.publicKey, user, identity)
  }

  // --- conversations ---

  /**
   * Keys for a conversation this browser is about to start: its id (a UUID v7 chosen here)
   * and a fresh key pair signed and wrapped for it, `{conversation_id, public_key,
   * private_key}`. The conversation counts as end-to-end from now on.
   */
  async startConversation(){
    this.requireIdentity()
    const id = uuidv7()
    const {keys, keyPair} = await this.freshKeys(id)
    this.store.recordEndToEnd(id)
    this.conversations.set(id, this.entry({own: keyPair, members: new Set([this.me])}))
    return keys
  }

  entry({endToEnd = true, own = null, members, keys = new Map(), nextSeq = 0, downgradeRefused = false}){
    return {endToEnd, own, members, keys, nextSeq, checker: new e2e.DeliveryChecker(), downgradeRefused}
  }

  /**
   * Takes a join reply: the members' identities (pinned or checked), whether the conversation
   * is end-to-end (never turning back), the person's own key (unwrapped, made, or signed for
   * the first time), the members' keys (accepted only when signed), and the reply's page of
   * messages, opened and checked oldest first (its checker continues with `open`).
   * Returns `{publish, notices, opened}`: keys to set with `set_encryption_keys` (or null),
   * what to tell the person, and for each message of the page (in the reply's order) what
   * `open` gives.
   */
  join(reply){
    const id = reply.conversation.id
    return this.serial(id, async () => {
      const notices = []
      for(const [user, published] of Object.entries(reply.identity_keys ?? {})){
        const {notice} = await this.learn(user, published)
        if(notice){ notices.push(notice) }
      }
      const members = new Set(Object.keys(reply.read_times ?? {}))
      members.add(this.me)
      // Plain text only where the server says so, this browser never saw it end-to-end, and
      // nobody else is in it (the assistant's replies come from no member).
      const claimsPlaintext = reply.conversation.assistant === true
      const plaintext = claimsPlaintext && !this.store.isEndToEnd(id) && members.size === 1
      if(claimsPlaintext && !plaintext){ notices.push({kind: "downgrade_refused", conversation: id}) }
      if(!plaintext){ this.store.recordEndToEnd(id) }
      const previous = this.conversations.get(id)
      let publish = null
      let own = null
      if(!plaintext){
        const hasPrivate = reply.private_key !== null && reply.private_key !== undefined
        const published = keyText(reply.public_keys?.[this.me])
        if(hasPrivate){
          const wrapped = keyText(reply.private_key)
          try {
            own = await e2e.unwrapPrivateKey(this.wrapKey, id, wrapped, published)
          } catch {
            notices.push({kind: "own_key_unopenable", conversation: id})
            own = UNOPENABLE
          }
          if(own !== UNOPENABLE && this.identity && !await this.isOwnSignedKey(id, own, published)){
            // The same key pair (wrapped as it is), signed by the identity for the first time.
            publish = {conversation_id: id, public_key: await this.sign(id, own.publicJwk), private_key: wrapped}
          }
        } else if(this.identity){
          const fresh = await this.freshKeys(id)
          publish = fresh.keys
          own = fresh.keyPair
        }
      }
      const keys = new Map()
      for(const [user, publicKey] of Object.entries(reply.public_keys ?? {})){
        if(user === this.me){ continue }
        const text = keyText(publicKey)
        const judged = await this.judge(id, user, text)
        if(judged.kind === "refused"){ notices.push({kind: "key_refused", conversation: id, user}) }
        keys.set(user, {text, judged})
      }
      const entry = this.entry({
        endToEnd: !plaintext, own, members, keys, nextSeq: previous?.nextSeq ?? 0,
        downgradeRefused: claimsPlaintext && !plaintext,
      })
      this.conversations.set(id, entry)
      const items = reply.messages?.items ?? []
      const opened = await this.openChecked(id, entry, items, entry.checker)
      return {publish, notices, opened}
    })
  }

  /**
   * A member set a key (`set_encryption_keys`): accepted only when signed by their identity.
   * The notice `{kind: "key_refused", conversation, user}` when refused, else null.
   */
  memberKeySet(conversation, user, publicKey){
    return this.serial(conversation, async () => {
      if(user === this.me){ return null }
      const text = keyText(publicKey)
      const judged = await this.judge(conversation, user, text)
      const entry = this.conversations.get(conversation)
      if(!entry){ return null }
      entry.keys.set(user, {text, judged})
      return judged.kind === "refused" ? {kind: "key_refused", conversation, user} : null
    })
  }

  /** The conversation's members now (after a change or a leave). */
  membersChanged(conversation, members){
    const entry = this.conversations.get(conversation)
    if(!entry){ return }
    entry.members = new Set([...members, this.me])
    for(const user of [...entry.keys.keys()]){
      if(!entry.members.has(user)){ entry.keys.delete(user) }
    }
  }

  /**
   * The person chose to make a new key for a conversation whose key does not open: the keys
   * to publish (`{conversation_id, public_key, private_key}`). Earlier messages there stay
   * unreadable.
   */
  replaceOwnKey(conversation){
    return this.serial(conversation, async () => {
      this.requireIdentity()
      const entry = this.conversations.get(conversation)
      if(!entry){ refuse("not_joined", "that conversation is not joined") }
      const {keys, keyPair} = await this.freshKeys(conversation)
      entry.own = keyPair
      return keys
    })
  }

  /** Whether plain text may be sent in `conversation` (the assistant's, see `join`). */
  plaintextAllowed(conversation){
    const entry = this.conversations.get(conversation)
    return Boolean(entry && !entry.endToEnd)
  }

  /**
   * Whether a conversation the server calls the assistant's may be shown as such before it
   * is joined: never once this browser saw it end-to-end, nor with other members.
   */
  mayBePlain(conversation, claimsPlaintext, memberIds){
    const entry = this.conversations.get(conversation)
    if(entry){ return !entry.endToEnd }
    return claimsPlaintext && !this.store.isEndToEnd(conversation) && memberIds.every(id => id === this.me)
  }

  /** Whether the server's claim that `conversation` is not end-to-end was refused. */
  downgradeRefused(conversation){ return this.conversations.get(conversation)?.downgradeRefused === true }

  /** "ready", "unopenable" or "none" (no key yet, or not joined). */
  ownKeyState(conversation){
    const own = this.conversations.get(conversation)?.own
    return own === UNOPENABLE ? "unopenable" : own ? "ready" : "none"
  }

  /**
   * How a member's conversation key was judged: "verified" (signed by their identity),
   * "legacy" (unsigned, from someone without an identity: read only), "refused" (not signed
   * by their identity) or "none" (no key set).
   */
  memberKeyState(conversation, user){
    return this.conversations.get(conversation)?.keys.get(user)?.judged.kind ?? "none"
  }

  /** How `user` is written to in `conversation`: "key" (their signed key), "identity" (v2i), or null (cannot be). */
  writesTo(conversation, user){
    if(this.memberKeyState(conversation, user) === "verified"){ return "key" }
    return this.hasIdentity(user) ? "identity" : null
  }

  /**
   * Encrypts `text` for every member of `conversation`: to their signed conversation key, or
   * to their identity when they have none yet. For an edit, `editOf` is the message group it
   * replaces. Returns `{message_group_id, copies: {member id: content}}`.
   *
   * Refused (TrustError) when a member's identity changed unacknowledged ("blocked") or a
   * member can be written to neither way ("waiting"), and when the person's own key or
   * identity does not open.
   */
  seal(conversation, text, editOf = null){
    return this.serial(conversation, async () => {
      const entry = this.conversations.get(conversation)
      if(!entry){ refuse("not_joined", "that conversation is not joined yet") }
      if(!entry.endToEnd){ refuse("not_end_to_end", "that conversation is not end-to-end encrypted") }
      this.requireIdentity()
      if(!entry.own || entry.own === UNOPENABLE){
        refuse("own_key_unopenable", "your key for this conversation cannot be opened: make a new one to write here")
      }
      const own = entry.own
      const others = [...entry.members].filter(member => member !== this.me)
      const blocked = others.filter(member => this.contactState(member).kind === "changed")
      if(blocked.length){
        refuse("blocked", "a security key changed: acknowledge it before sending", blocked)
      }
      const group = editOf ?? uuidv7()
      const message = {
        id: editOf ? uuidv7() : group,
        sent_at: Date.now(),
        edit_of: editOf,
        stream: this.stream,
        seq: entry.nextSeq,
        text,
      }
      const copies = {[this.me]: await e2e.encryptMessage(own, this.me, own.publicJwk, this.me, conversation, message)}
      const waiting = []
      for(const member of others){
        const key = entry.keys.get(member)?.judged
        const identity = this.contacts.get(member)?.identity
        if(key?.kind === "verified"){
          copies[member] = await e2e.encryptMessage(own, this.me, key.jwk, member, conversation, message)
        } else if(identity){
          copies[member] = await e2e.encryptToIdentity(this.identity, this.me, identity, member, conversation, message)
        } else {
          waiting.push(member)
        }
      }
      if(waiting.length){
        refuse("waiting", "some members cannot be written to until they sign in with a current client", waiting)
      }
      entry.nextSeq += 1
      return {message_group_id: group, copies}
    })
  }

  /**
   * Opens a message that just arrived (after the join's page), checking it against the
   * messages before it: `{text, error, flags, unchecked, sentAt}` (text null when it cannot
   * be read, with the reason in error; flags from DeliveryChecker; unchecked for v1).
   */
  open(conversation, message){
    return this.serial(conversation, async () => {
      const entry = this.conversations.get(conversation)
      if(!entry){ return unreadable("not joined") }
      const [opened] = await this.openChecked(conversation, entry, [message], entry.checker)
      return opened
    })
  }

  /**
   * Opens a page of history (as the server lists it, newest first), checking its messages
   * against each other oldest first with a checker of its own; in the page's order.
   */
  openPage(conversation, messages){
    return this.serial(conversation, async () => {
      const entry = this.conversations.get(conversation)
      if(!entry){ return messages.map(() => unreadable("not joined")) }
      return this.openChecked(conversation, entry, messages, new e2e.DeliveryChecker())
    })
  }

  /** Decrypts newest-first `messages` at once, then checks them oldest first, in order. */
  async openChecked(conversation, entry, messages, checker){
    const decrypted = await Promise.all(messages.map(message => this.decrypt(conversation, entry, message)))
    for(let i = messages.length - 1; i >= 0; i--){
      const result = decrypted[i]
      if(!result.message){ continue }
      const message = messages[i]
      let flags
      try {
        flags = checker.check({
          message_group: message.message_group, sender: message.sender,
          inserted_at: message.inserted_at, updated_at: message.updated_at,
        }, result.message)
      } catch(error){
        decrypted[i] = unreadable(`the server's description of it is not valid: ${describe(error)}`)
        continue
      }
      decrypted[i] = {text: result.message.text, error: null, flags, unchecked: false, sentAt: result.message.sent_at}
    }
    return decrypted
  }

  /** A message's text (v1, or plain) or decrypted v2 message object, before the checks. */
  async decrypt(conversation, entry, message){
    if(!entry.endToEnd){
      return {text: message.content, error: null, flags: [], unchecked: false, sentAt: null}
    }
    if(!entry.own || entry.own === UNOPENABLE){ return unreadable("your key for this conversation cannot be opened") }
    const own = entry.own
    const sender = message.sender
    const content = typeof message.content === "string" ? message.content : ""
    const tag = content.split(".", 1)[0]
    try {
      if(tag === "v2"){
        const key = this.senderKey(entry, own, sender)
        return {message: await e2e.decryptMessage(own, this.me, key, sender, conversation, content)}
      }
      if(tag === "v2i"){
        const identity = this.senderIdentity(sender)
        if(!this.identity){ return unreadable("your security key does not open") }
        return {message: await e2e.decryptFromIdentity(this.identity, this.me, identity, sender, conversation, content)}
      }
      if(tag === "v1"){
        let key
        try {
          key = this.senderKey(entry, own, sender)
        } catch(error){
          const legacy = entry.keys.get(sender)?.judged
          if(legacy?.kind !== "legacy"){ throw error }
          key = legacy.jwk
        }
        const text = await e2e.decrypt(own, this.me, key, sender, conversation, content)
        return {text, error: null, flags: [], unchecked: true, sentAt: null}
      }
      return unreadable("not a message format this client knows")
    } catch(error){
      return unreadable(describe(error))
    }
  }

  /** The accepted conversation key of `sender` (the person's own for their own messages). */
  senderKey(entry, own, sender){
    if(sender === this.me){ return own.publicJwk }
    const judged = entry.keys.get(sender)?.judged
    if(judged?.kind === "verified"){ return judged.jwk }
    if(judged?.kind === "refused"){ throw new Error("the sender's key is not signed by their security key") }
    if(judged?.kind === "legacy"){ throw new Error("the sender has no security key yet") }
    throw new Error("the sender's key is unknown")
  }

  senderIdentity(sender){
    if(sender === this.me){
      if(!this.identity){ throw new Error("your security key does not open") }
      return this.identity.publicKey
    }
    const identity = this.contacts.get(sender)?.identity
    if(!identity){ throw new Error("the sender has no security key") }
    return identity
  }

  /** A member's published conversation key, judged against their identity. */
  async judge(conversation, user, text){
    const identity = this.contacts.get(user)?.identity
    if(identity){
      try {
        return {kind: "verified", jwk: await e2e.verifyConversationKey(identity, user, conversation, text)}
      } catch {
        return {kind: "refused"}
      }
    }
    // Nobody ever saw an identity of theirs: an account from before identities, whose old
    // messages stay readable. Once one was pinned, an unsigned key is refused.
    if(!this.store.pin(user)){
      try {
        await e2e.fingerprint(text)
        return {kind: "legacy", jwk: text}
      } catch {
        return {kind: "refused"}
      }
    }
    return {kind: "refused"}
  }

  /** Judges `user`'s keys in every conversation again (each in its queue), against the identity now known. */
  rejudge(user){
    const jobs = []
    for(const [id, entry] of this.conversations){
      if(!entry.keys.has(user)){ continue }
      jobs.push(this.serial(id, async () => {
        const current = this.conversations.get(id)?.keys.get(user)
        if(current){ current.judged = await this.judge(id, user, current.text) }
      }))
    }
    return Promise.all(jobs)
  }

  /** Whether `published` is `keyPair`'s public key signed by the person's identity for this conversation. */
  async isOwnSignedKey(conversation, keyPair, published){
    if(!published || !this.identity){ return false }
    try {
      return await e2e.verifyConversationKey(this.identity.publicKey, this.me, conversation, published) === keyPair.publicJwk
    } catch {
      return false
    }
  }

  sign(conversation, publicJwk){
    return e2e.signConversationKey(this.identity, this.me, conversation, publicJwk)
  }

  /**
   * A fresh key pair for `conversation`: `{keys: {conversation_id, public_key, private_key}}`
   * to publish, and `keyPair`, the non-extractable re-import of what was wrapped (the
   * extractable original is dropped).
   */
  async freshKeys(conversation){
    this.requireIdentity()
    const fresh = await e2e.generateKeyPair()
    const privateKey = await e2e.wrapPrivateKey(this.wrapKey, conversation, fresh)
    const keyPair = await e2e.unwrapPrivateKey(this.wrapKey, conversation, privateKey, fresh.publicJwk)
    const publicKey = await this.sign(conversation, keyPair.publicJwk)
    return {keys: {conversation_id: conversation, public_key: publicKey, private_key: privateKey}, keyPair}
  }

  requireIdentity(){
    if(!this.identity){
      refuse("identity_unopenable", "your security key does not open with your password: replace it to write")
    }
  }
}
