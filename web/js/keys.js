// Each conversation's keys on this device (docs/ARCHITECTURE.md): the member's own key pair, unwrapped
// from the join reply with the wrap key (or made and set on first join), and every member's
// public key, from which messages are encrypted per recipient and decrypted.

import * as e2e from "./e2e.js"

/**
 * The conversation id a key is wrapped for before its conversation exists: the server picks
 * the id, so the creator's first key is wrapped for this and set again, wrapped for the real
 * id, as soon as the reply names it.
 */
export const PROVISIONAL_ID = "00000000-0000-0000-0000-000000000000"

/** A member whose public key is not known yet: nobody can write to them until they set one. */
export class MissingKeys extends Error {
  constructor(userIds){
    super("some members have not set their keys yet")
    this.name = "MissingKeys"
    this.userIds = userIds
  }
}

export class Keyring {
  constructor(wrapKey, userId){
    this.wrapKey = wrapKey
    this.userId = userId
    this.conversations = new Map()
  }

  entry(conversationId){
    let entry = this.conversations.get(conversationId)
    if(!entry){
      entry = {keyPair: null, publicKeys: new Map(), fingerprints: new Map()}
      this.conversations.set(conversationId, entry)
    }
    return entry
  }

  /** A fresh key pair and its private key wrapped provisionally, for starting a conversation. */
  async provisional(){
    const keyPair = await e2e.generateKeyPair()
    return {
      keyPair,
      public_key: await e2e.publicJwk(keyPair),
      private_key: await e2e.wrapPrivateKey(this.wrapKey, PROVISIONAL_ID, keyPair),
    }
  }

  /**
   * Takes a join reply's keys. Returns the keys to set on the server if this member has none
   * usable for this conversation yet (`{public_key, private_key}`), else null.
   */
  async adopt(conversationId, reply, started = null){
    const entry = this.entry(conversationId)
    for(const [userId, jwk] of Object.entries(reply.public_keys ?? {})){
      await this.setPublicKey(conversationId, userId, jwk)
    }
    const wrapped = typeof reply.private_key === "string" ? reply.private_key : null
    if(wrapped){
      try {
        entry.keyPair = await e2e.unwrapPrivateKey(this.wrapKey, conversationId, wrapped)
        return null
      } catch {
        // Wrapped provisionally and never set again (the tab closed in between): still ours.
        try {
          entry.keyPair = await e2e.unwrapPrivateKey(this.wrapKey, PROVISIONAL_ID, wrapped)
        } catch {
          entry.keyPair = null
        }
      }
    }
    // No key, a provisional one, or one this wrap key cannot open (made before a password
    // reset): keep the pair we have or make one, and set it wrapped for this conversation.
    const keyPair = entry.keyPair ?? started ?? await e2e.generateKeyPair()
    entry.keyPair = keyPair
    const publicKey = await e2e.publicJwk(keyPair)
    await this.setPublicKey(conversationId, this.userId, publicKey)
    return {public_key: publicKey, private_key: await e2e.wrapPrivateKey(this.wrapKey, conversationId, keyPair)}
  }

  async setPublicKey(conversationId, userId, jwk){
    const text = typeof jwk === "string" ? jwk : JSON.stringify(jwk)
    const entry = this.entry(conversationId)
    entry.publicKeys.set(userId, text)
    try {
      entry.fingerprints.set(userId, await e2e.fingerprint(text))
    } catch {
      entry.fingerprints.set(userId, null)
    }
  }

  fingerprint(conversationId, userId){ return this.entry(conversationId).fingerprints.get(userId) ?? null }

  /** `{member id: ciphertext}` for every member; MissingKeys if someone has no key yet. */
  async encryptFor(conversationId, memberIds, text){
    const entry = this.entry(conversationId)
    const missing = memberIds.filter(id => !entry.publicKeys.has(id))
    if(missing.length || !entry.keyPair){ throw new MissingKeys(missing) }
    const copies = await Promise.all(memberIds.map(id =>
      e2e.encrypt(entry.keyPair, this.userId, entry.publicKeys.get(id), id, conversationId, text)))
    return Object.fromEntries(memberIds.map((id, i) => [id, copies[i]]))
  }

  /** The text of this member's copy of a message, or null if it cannot be opened. */
  async decrypt(conversationId, message){
    const entry = this.entry(conversationId)
    const senderKey = entry.publicKeys.get(message.sender)
    if(!entry.keyPair || !senderKey){ return null }
    try {
      return await e2e.decrypt(entry.keyPair, this.userId, senderKey, message.sender, conversationId, message.content)
    } catch {
      return null
    }
  }
}
