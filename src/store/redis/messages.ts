import type { Cluster, Redis } from 'ioredis'
import { ConversationNotFoundError, InvalidRequestError, MessageNotFoundError, PreconditionFailedError } from '../../errors.js'
import type { Message, MessageWithTokens, PatchMessageBody, RewindResult } from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import { checkPreconditions, tagOf } from '../conversation-rules.js'
import { editMessage } from '../stream-rules.js'
import { positionOf } from '../events.js'
import { absent, reachArgs, runScript, type ScriptName, type ScriptReply } from './commands.js'
import type { Deadline } from './errors.js'
import { conversationKeyList, conversationKeys } from './keys.js'
import { parseMessage } from './records.js'
import { pageItem, windowItem, type ValidatedMessage, type ValidatedMessages } from './validated-messages.js'
import { EVERYWHERE, type MessagePage, type MessageQuery, type Preconditions, type Reach, type Tagged } from '../types.js'
import { conversationUpdated, type UserFeedEvent } from './feeds.js'

export interface RedisMessagesOptions {
  client: Redis | Cluster
  keyPrefix: string
  ttlMs: number
  countTokens: TokenCounter
  clock: () => number
  /** Moves the owner's index entry after a write, with the write's event on the owner's feed (see RedisConversationStore). */
  touchIndex: (userId: string, id: string, updatedAt: number, expiresAt: number, event: UserFeedEvent) => Promise<void>
  /** Validates a stored record: a bad one is reported and becomes CORRUPT_RECORD. */
  corruptUnless: <T>(id: string, parse: () => T) => T
  onCorruptRecord: (id: string, reason: string) => void
  /** Stored messages this process has validated, by their bytes. */
  validated: ValidatedMessages
}

/**
 * The messages of Redis conversations as a resource: pages, context windows, one message,
 * its edit and its deletion. Every call is one script on the conversation's slot that reads
 * or writes only what it returns. A conversation still in the message list of the release
 * before is migrated first, once (`LEGACY`).
 */
export class RedisMessages {
  readonly #options: RedisMessagesOptions

  constructor (options: RedisMessagesOptions) {
    this.#options = options
  }

  async list (id: string, query: MessageQuery, reach: Reach): Promise<MessagePage & { position: string }> {
    const reply = await this.#run('csReadMessages', id, reach, query.after?.incarnation ?? '', query.order,
      query.after?.seq ?? '', query.limit, query.maxTokens ?? '')
    if (reply[0] === 'BAD_CURSOR') throw new InvalidRequestError('querystring/cursor belongs to another conversation, or to one since deleted')
    const [, messageCount, incarnation, lastEvent, next, lines, ...counts] = reply as [string, string, string, number, string, string, ...Array<string | number>]
    const onInvalid = (reason: string): void => { this.#options.onCorruptRecord(id, reason) }
    const cursor = {
      next: next === '' ? null : { incarnation, seq: Number(next) }, messageCount: Number(messageCount), position: positionOf(incarnation, lastEvent)
    }
    const read = this.#options.validated.read(lines, onInvalid)
    if (query.maxTokens !== undefined) return { ...windowOf(read, counts), ...cursor }
    return { items: read.map(pageItem), ...cursor }
  }

  async get (id: string, messageId: string, reach: Reach): Promise<{ message: Message, position: string }> {
    const current = await this.#current(id, messageId, reach)
    return { message: found(current, messageId), position: current.position }
  }

  async patch (
    id: string, messageId: string, patch: PatchMessageBody, preconditions: Preconditions, reach: Reach, deadline: Deadline
  ): Promise<{ message: Message } & Tagged> {
    // Preconditions first, as for every write: a stale tag is 412 whether or not the message exists.
    return await this.#replace(id, messageId, reach, deadline, (current) => {
      checkPreconditions(current.tag, preconditions)
      return editMessage(found(current, messageId), patch)
    }) as { message: Message } & Tagged
  }

  /**
   * Ends a stream without a delta for `idleMs`: it becomes incomplete (`timeout`), a write.
   * Answers 'ended', 'gone' (the message is not in_progress, or not there), or when it will
   * be idle, if it is not yet.
   */
  async timeOutIfIdle (id: string, messageId: string, idleMs: number, deadline: Deadline): Promise<'ended' | 'gone' | number> {
    let due = 0
    const ended = await this.#replace(id, messageId, EVERYWHERE, deadline, ({ message, lastDeltaAt }) => {
      if (message?.status !== 'in_progress' || lastDeltaAt === '') return 'gone'
      due = Number(lastDeltaAt) + idleMs
      return due > this.#options.clock() ? 'alive' : editMessage(message, { status: 'incomplete', statusReason: 'timeout' })
    }).catch((error: unknown) => {
      // Deleted, or expired, since the stream started.
      if (error instanceof ConversationNotFoundError) return 'gone' as const
      throw error
    })
    return ended === 'alive' ? due : ended === 'gone' ? 'gone' : 'ended'
  }

  /**
   * An edit of one message: merged in Node, then a compare-and-set on the conversation's tag
   * in Redis, again until no other write came between. `edit` may answer a word instead of
   * a message, and nothing is written.
   */
  async #replace<W extends string> (
    id: string, messageId: string, reach: Reach, deadline: Deadline, edit: (current: CurrentMessage) => Message | W
  ): Promise<({ message: Message } & Tagged) | W> {
    for (;;) {
      deadline.throwIfAborted()
      const current = await this.#current(id, messageId, reach)
      const message = edit(current)
      if (typeof message === 'string') return message
      const reply = await this.#run('csReplaceMessage', id, reach, current.tag, this.#options.clock(), this.#options.ttlMs,
        messageId, JSON.stringify(message), this.#options.countTokens(message), message.status === 'in_progress' ? '1' : '')
      if (reply[0] === 'CONFLICT') continue
      return { message, ...await this.#written(id, messageId, reply) }
    }
  }

  async delete (id: string, messageId: string, ifMatch: string, reach: Reach): Promise<Tagged> {
    const reply = await this.#run('csDeleteMessage', id, reach, this.#options.clock(), this.#options.ttlMs, ifMatch, messageId)
    return await this.#written(id, messageId, reply)
  }

  async rewind (id: string, afterMessageId: string, ifMatch: string, reach: Reach): Promise<RewindResult & Tagged> {
    const reply = await this.#run('csRewindMessages', id, reach, this.#options.clock(), this.#options.ttlMs, ifMatch, afterMessageId)
    if (reply[0] === 'MESSAGE_NOT_FOUND') throw new MessageNotFoundError(afterMessageId)
    if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
    const [, deleted, messageCount, version, updatedAt, expiresAt, userId, incarnation, lastEvent, record] =
      reply as [string, number, number, number, number, number, string, string, number, string]
    if (deleted > 0) await this.#options.touchIndex(userId, id, updatedAt, expiresAt, conversationUpdated(version, record))
    return { deleted, messageCount, version, etag: tagOf(incarnation, version), position: positionOf(incarnation, lastEvent) }
  }

  /** Runs a conversation script; when the conversation is in the old layout, migrates it and runs it again. */
  async #run (name: ScriptName, id: string, reach: Reach, ...args: Array<string | number>): Promise<ScriptReply> {
    const keys = conversationKeyList(conversationKeys(this.#options.keyPrefix, id))
    for (;;) {
      const reply = await runScript(this.#options.client, name, keys, ...args, ...reachArgs(reach))
      if (absent(reply)) throw new ConversationNotFoundError(id)
      if (reply[0] !== 'LEGACY') return reply
      await this.migrate(id)
    }
  }

  /**
   * Moves a conversation from the message list of the release before to the current layout,
   * counting each message's tokens; the script checks that nothing changed since the read.
   */
  async migrate (id: string): Promise<void> {
    const keys = conversationKeys(this.#options.keyPrefix, id)
    for (;;) {
      const [[, fields], [, list]] = await this.#options.client.multi()
        .hmget(keys.doc, 'version', 'inc').lrange(keys.legacyMessages, 0, -1).exec() as [[null, Array<string | null>], [null, string[]]]
      if (fields[0] === null) return
      const messages = list.map((json) => this.#options.corruptUnless(id, () => parseMessage(json)))
      const reply = await runScript(this.#options.client, 'csMigrateMessages', conversationKeyList(keys),
        tagOf(fields[1] ?? '0', Number(fields[0])), messages.length, ...messages.map((message) => message.id), ...list,
        ...messages.map((message) => this.#options.countTokens(message)))
      if (reply[0] !== 'CONFLICT') return
    }
  }

  /** The message (absent when there is none), its conversation's tag, and when its stream last grew. */
  async #current (id: string, messageId: string, reach: Reach): Promise<CurrentMessage> {
    const reply = await this.#run('csReadMessage', id, reach, messageId) as [string, string, ...Array<string | number>]
    const [status, tag] = reply
    const incarnation = tag.slice(0, tag.lastIndexOf('.'))
    if (status === 'MESSAGE_NOT_FOUND') return { tag, lastDeltaAt: '', position: positionOf(incarnation, Number(reply[2])) }
    const [, , json, lastDeltaAt, lastEvent] = reply as [string, string, string, string, number]
    return { message: this.#options.corruptUnless(id, () => parseMessage(json)), tag, lastDeltaAt, position: positionOf(incarnation, lastEvent) }
  }

  /** After a write to one message: the new tag, with the owner's index entry moved. */
  async #written (id: string, messageId: string, reply: ScriptReply): Promise<Tagged> {
    if (reply[0] === 'MESSAGE_NOT_FOUND') throw new MessageNotFoundError(messageId)
    if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
    const [, version, updatedAt, expiresAt, userId, incarnation, lastEvent, record] = reply as [string, number, number, number, string, string, number, string]
    await this.#options.touchIndex(userId, id, updatedAt, expiresAt, conversationUpdated(version, record))
    return { etag: tagOf(incarnation, version), position: positionOf(incarnation, lastEvent) }
  }
}

/** A message as an edit reads it: lastDeltaAt is '' unless it streams. */
interface CurrentMessage { message?: Message, tag: string, lastDeltaAt: string, position: string }

function found ({ message }: { message?: Message }, messageId: string): Message {
  if (message === undefined) throw new MessageNotFoundError(messageId)
  return message
}

/**
 * A window as the scripts answer it (lua/lib/window.lua): its messages, read, then id,
 * tokens, id, tokens….
 */
export function windowOf (read: ValidatedMessage[], counts: Array<string | number>): { items: MessageWithTokens[], totalTokens: number } {
  const tokens = new Map<string, number>()
  for (let i = 0; i < counts.length; i += 2) tokens.set(String(counts[i]), Number(counts[i + 1]))
  let totalTokens = 0
  const items = read.map((entry) => {
    const count = tokens.get(entry.message.id) ?? 0
    totalTokens += count
    return windowItem(entry, count)
  })
  return { items, totalTokens }
}
