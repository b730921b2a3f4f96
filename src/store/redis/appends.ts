import { Cluster, type Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import {
  ConversationNotFoundError, deltaOutOfOrder, MessageNotFoundError, messageNotInProgress, MessageTooLargeError, PreconditionFailedError, TooManyMessagesError
} from '../../errors.js'
import type { AppendResult, Message, MessageInput } from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import { tagOf, toMessage, type StoreLimits } from '../conversation-rules.js'
import { absent, ifMatchArg, reachArgs, runScript, type ScriptReply } from './commands.js'
import { PendingIndexMoves } from './index-moves.js'
import { conversationKeyList, conversationKeys, userIndexKey } from './keys.js'
import { windowOf } from './messages.js'
import type { ValidatedMessages } from './validated-messages.js'
import { iso, parseMessage } from './records.js'
import { DEFAULT_STREAM_LIMITS, type Delta, type DeltaResult } from '../stream-rules.js'
import { positionOf } from '../events.js'
import { MAX_WINDOW_MESSAGES, type Preconditions, type Reach, type Tagged, type WindowRequest } from '../types.js'
import { conversationUpdated, type UserFeedEvent } from './feeds.js'

export interface RedisAppendsOptions {
  client: Redis | Cluster
  keyPrefix: string
  ttlMs: number
  limits: StoreLimits
  countTokens: TokenCounter
  clock: () => number
  /** Moves a conversation out of the message list of the release before (RedisMessages). */
  migrate: (id: string) => Promise<void>
  /** Moves the owner's index entry to a new updatedAt (ZADD GT), with the write's event on the owner's feed unless it is a delta's. */
  touchIndex: (userId: string, id: string, updatedAt: number, expiresAt: number, event?: UserFeedEvent) => Promise<void>
  /** Bounds an operation in time and turns Redis failures into 503s. */
  guard: <T>(operation: () => Promise<T>) => Promise<T>
  onCorruptRecord: (id: string, reason: string) => void
  /** Stored messages this process has validated, by their bytes. */
  validated: ValidatedMessages
  /** Validates a stored record: a bad one is reported and becomes CORRUPT_RECORD. */
  corruptUnless: <T>(id: string, parse: () => T) => T
  onIndexMoveFailed: (id: string, error: unknown) => void
}

/**
 * Appends, in one round trip of latency. The script checks, writes and (with a window)
 * reads in the conversation's slot. The owner's index entry lives in another slot:
 * - on a single Redis, the script moves it too when this process knows the owner (and the
 *   script finds that it is the owner), else it moves right after, as before;
 * - on a cluster, it moves after the script without the caller waiting (PendingIndexMoves).
 */
export class RedisAppends {
  readonly #options: RedisAppendsOptions
  readonly #cluster: boolean
  readonly #indexMoves = new PendingIndexMoves()
  // Who owns each conversation this process has seen lately. A wrong guess costs only the
  // round trip it meant to save: an owner changes only when the id is deleted and created
  // again, and the script compares.
  readonly #owners = new LRUCache<string, string>({ max: 100_000 })

  constructor (options: RedisAppendsOptions) {
    this.#options = options
    this.#cluster = options.client instanceof Cluster
  }

  knowOwner (id: string, userId: string): void { this.#owners.set(id, userId) }

  forgetOwner (id: string): void { this.#owners.delete(id) }

  /** Resolves once the index moves of `userId` this process has begun are done. */
  async settled (userId: string): Promise<void> { await this.#indexMoves.settled(userId) }

  async append (id: string, inputs: MessageInput[], preconditions: Preconditions, reach: Reach, window?: WindowRequest): Promise<AppendResult & Tagged> {
    const { client, keyPrefix, clock, ttlMs, limits, countTokens } = this.#options
    // The script skips ids already stored or repeated in the batch.
    const nowIso = iso(clock())
    const all = inputs.map((input) => toMessage(input, nowIso))
    const owner = this.#cluster ? undefined : this.#owners.get(id)
    const keys = conversationKeyList(conversationKeys(keyPrefix, id))
    const windowArgs = window === undefined ? ['', '', ''] : 'maxTokens' in window ? ['tokens', window.maxTokens, MAX_WINDOW_MESSAGES] : ['last', window.last, '']
    const run = async (): Promise<ScriptReply> => await runScript(client,
      owner === undefined ? 'csAppendMessages' : 'csAppendMessagesIndexed', owner === undefined ? keys : [...keys, userIndexKey(keyPrefix, owner)],
      clock(), ttlMs, ifMatchArg(preconditions), limits.maxMessagesPerConversation, ...windowArgs, owner ?? '', all.length,
      ...all.map((message) => message.id), ...all.map((message) => JSON.stringify(message)), ...all.map(countTokens), ...all.map(streamArg),
      ...reachArgs(reach))
    let reply = await run()
    if (reply[0] === 'LEGACY') {
      await this.#options.migrate(id)
      reply = await run()
    }
    if (absent(reply)) throw new ConversationNotFoundError(id)
    if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
    if (reply[0] === 'TOO_MANY') throw new TooManyMessagesError(limits.maxMessagesPerConversation)
    const [, appended, skipped, version, messageCount, updatedAt, expiresAt, userId, incarnation, indexed, lastEvent, record, windowLines, ...counts] =
      reply as [string, number, number, number, number, number, number, string, string, number, number, string, string, ...Array<string | number>]
    this.#owners.set(id, userId)
    if (appended > 0 && indexed !== 1) await this.#moveIndexEntry(userId, id, updatedAt, expiresAt, conversationUpdated(version, record))
    const result: AppendResult & Tagged = {
      appended, skipped, version, messageCount, etag: tagOf(incarnation, version), position: positionOf(incarnation, lastEvent)
    }
    if (window !== undefined) {
      const read = this.#options.validated.read(windowLines, (reason) => { this.#options.onCorruptRecord(id, reason) })
      result.window = { ...windowOf(read, counts), messageCount }
    }
    return result
  }

  /**
   * One delta of a streamed message, in one round trip as an append: the script checks the
   * stream's rules and splices the text into the stored message (lua/append-delta.lua).
   */
  async delta (id: string, messageId: string, delta: Delta, preconditions: Preconditions, reach: Reach): Promise<DeltaResult & Tagged> {
    const { client, keyPrefix, clock, ttlMs, limits, countTokens } = this.#options
    const owner = this.#cluster ? undefined : this.#owners.get(id)
    const keys = conversationKeyList(conversationKeys(keyPrefix, id))
    const run = async (): Promise<ScriptReply> => await runScript(client,
      owner === undefined ? 'csAppendDelta' : 'csAppendDeltaIndexed', owner === undefined ? keys : [...keys, userIndexKey(keyPrefix, owner)],
      clock(), ttlMs, ifMatchArg(preconditions), messageId, delta.seq, JSON.stringify(delta.text).slice(1, -1), delta.text.length,
      countTokens({ text: delta.text }), (limits.streams ?? DEFAULT_STREAM_LIMITS).maxTextChars, owner ?? '', ...reachArgs(reach))
    let reply = await run()
    if (reply[0] === 'LEGACY') {
      await this.#options.migrate(id)
      reply = await run()
    }
    if (absent(reply)) throw new ConversationNotFoundError(id)
    switch (reply[0]) {
      case 'PRECONDITION': throw new PreconditionFailedError()
      case 'MESSAGE_NOT_FOUND': throw new MessageNotFoundError(messageId)
      case 'TOO_LARGE': throw new MessageTooLargeError((limits.streams ?? DEFAULT_STREAM_LIMITS).maxTextChars)
      case 'OUT_OF_ORDER': throw deltaOutOfOrder(Number(reply[1]))
      case 'NOT_IN_PROGRESS': {
        const message = this.#options.corruptUnless(id, () => parseMessage(reply[1] as string))
        throw messageNotInProgress(messageId, message.status, message.statusReason)
      }
      case 'REPEAT': {
        const etag = reply[2] as string
        return { messageId, seq: delta.seq, textLength: Number(reply[1]), etag, position: positionOf(etag.slice(0, etag.lastIndexOf('.')), Number(reply[3])) }
      }
    }
    const [, textLength, version, updatedAt, expiresAt, userId, incarnation, indexed, lastEvent] =
      reply as [string, number, number, number, number, string, string, number, number]
    this.#owners.set(id, userId)
    if (indexed !== 1) await this.#moveIndexEntry(userId, id, updatedAt, expiresAt)
    return { messageId, seq: delta.seq, textLength, etag: tagOf(incarnation, version), position: positionOf(incarnation, lastEvent) }
  }

  /** On a single Redis at once; on a cluster without the caller waiting, bounded in time all the same. */
  async #moveIndexEntry (userId: string, id: string, updatedAt: number, expiresAt: number, event?: UserFeedEvent): Promise<void> {
    const move = async (): Promise<void> => { await this.#options.touchIndex(userId, id, updatedAt, expiresAt, event) }
    if (!this.#cluster) return await move()
    this.#indexMoves.track(userId, this.#options.guard(move).catch((error: unknown) => { this.#options.onIndexMoveFailed(id, error) }))
  }
}

/**
 * How the append script starts an in_progress message's stream ('' for any other): its
 * text's JSON length in bytes (the offset deltas are spliced after) and in characters.
 */
function streamArg (message: Message): string {
  if (message.status !== 'in_progress') return ''
  const text = message.text ?? ''
  return `${Buffer.byteLength(JSON.stringify(text)) - 2} ${text.length}`
}
