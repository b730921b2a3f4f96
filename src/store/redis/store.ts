import { randomUUID } from 'node:crypto'
import { Cluster, type Redis } from 'ioredis'
import { ConversationNotFoundError, CorruptRecordError, PreconditionFailedError } from '../../errors.js'
import type {
  AppendResult, ConversationFields, Message, MessageInput, PatchConversationBody, PatchMessageBody, RewindResult, WorkflowStateBody
} from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import { canFollowUser, canReach, type StoreLimits } from '../conversation-rules.js'
import { absent, defineScripts, ifMatchArg, reachArgs, runScript, type ScriptName, type ScriptReply } from './commands.js'
import { conversationKeyList, conversationKeys, idleStreamsKey } from './keys.js'
import { RedisIdleStreams } from './idle-streams.js'
import { IdleStreamSweeper } from '../idle-streams.js'
import { DEFAULT_STREAM_LIMITS, type Delta, type DeltaResult } from '../stream-rules.js'
import { DEFAULT_EVENTS_RETAINED, NO_USER_FEED, type FeedEvent, type Following } from '../events.js'
import { RedisFeeds, touchIndex, type UserFeedEvent } from './feeds.js'
import { patchConversation, type RedisPatchesOptions } from './patches.js'
import { RedisAppends } from './appends.js'
import { RedisSnapshots } from './snapshots.js'
import { RedisUserCap } from './user-cap.js'
import { RedisMessages } from './messages.js'
import { RedisUserLists } from './user-lists.js'
import { RedisWrites } from './writes.js'
import { InvalidRecordError } from './records.js'
import { RedisViews } from './views.js'
import { RedisWorkflowStates } from './workflow-states.js'
import { pingRedis } from './connection.js'
import { guardRedisCall, type Deadline } from './errors.js'
import {
  EVERYWHERE, type ConversationPage, type ConversationSnapshot, type ConversationStore, type ListOptions, type MessagePage, type MessageQuery,
  type MessageSelection, type Preconditions, type PutResult, type Reach, type RestoreMode, type RestoreRecord, type RestoreResult, type StoreHealth,
  type StoreStats, type Tagged, type TaggedConversation, type TaggedView, type TaggedWorkflowState, type WindowRequest
} from '../types.js'
import { ViewCache } from '../view-cache.js'
import { ValidatedMessages } from './validated-messages.js'

export interface RedisStoreOptions {
  client: Redis | Cluster
  keyPrefix: string
  limits: StoreLimits
  countTokens: TokenCounter
  /** Every operation finishes or fails within this many milliseconds. */
  timeoutMs: number
  /** Bound of the validated views this process keeps (view-cache.ts), and of its validated messages (validated-messages.ts); 0 keeps none. */
  viewCacheBytes?: number
  /** Logs records that fail validation; never given data beyond the id. */
  onCorruptRecord?: (id: string, reason: string) => void
  /** How many events each conversation keeps for its followers (EVENTS_RETAINED). */
  eventsRetained?: number
  /** Logs a failed sweep of idle streams or event delivery (Redis away, or a corrupt record). */
  onSweepError?: (error: unknown) => void
  /** Logs a failed index move that no caller waits for (on a cluster, after an append). */
  onIndexMoveFailed?: (id: string, error: unknown) => void
  clock?: () => number
}

/**
 * The Redis backend. Each conversation write is one Lua script on the conversation's own
 * hash slot; the per-user index lives in another slot and is kept in step without a
 * cross-slot transaction (see writes.ts and user-lists.ts for why the order is safe).
 */
export class RedisConversationStore implements ConversationStore {
  readonly backend = 'redis'
  readonly #client: Redis | Cluster
  readonly #prefix: string
  readonly #limits: StoreLimits
  readonly #timeoutMs: number
  readonly #clock: () => number
  readonly #onCorruptRecord: (id: string, reason: string) => void
  readonly #countTokens: TokenCounter
  readonly #messages: RedisMessages
  readonly #lists: RedisUserLists
  readonly #views: RedisViews
  readonly #validated: ValidatedMessages
  readonly #workflowStates: RedisWorkflowStates
  readonly #appends: RedisAppends
  readonly #snapshots: RedisSnapshots
  readonly #writes: RedisWrites
  readonly #cap: RedisUserCap | undefined
  readonly #idleStreams: RedisIdleStreams
  readonly #sweeper: IdleStreamSweeper
  readonly #feeds: RedisFeeds
  readonly #patches: RedisPatchesOptions

  constructor (options: RedisStoreOptions) {
    this.#client = options.client
    this.#prefix = options.keyPrefix
    this.#limits = options.limits
    this.#timeoutMs = options.timeoutMs
    this.#clock = options.clock ?? Date.now
    this.#onCorruptRecord = options.onCorruptRecord ?? (() => {})
    this.#validated = new ValidatedMessages(options.viewCacheBytes ?? 0)
    this.#views = new RedisViews({
      client: this.#client,
      keyPrefix: this.#prefix,
      cache: new ViewCache(options.viewCacheBytes ?? 0),
      validated: this.#validated,
      corruptUnless: (id, parse) => this.#corruptUnless(id, parse)
    })
    // Index entries of absent conversations older than this are pruned; younger ones may be a create in flight, so are only skipped.
    const staleAfterMs = Math.max(60_000, options.timeoutMs * 4)
    this.#lists = new RedisUserLists({ client: this.#client, keyPrefix: this.#prefix, staleAfterMs, clock: this.#clock, views: this.#views })
    const cap = this.#limits.maxConversationsPerUser
    this.#cap = cap === undefined
      ? undefined
      : new RedisUserCap({ client: this.#client, keyPrefix: this.#prefix, cap, staleAfterMs, clock: this.#clock, views: this.#views })
    this.#countTokens = options.countTokens
    defineScripts(this.#client, options.eventsRetained ?? DEFAULT_EVENTS_RETAINED)
    this.#feeds = new RedisFeeds({ client: this.#client, keyPrefix: this.#prefix, guard: async (operation) => await this.#guard(operation), onError: options.onSweepError ?? (() => {}) })
    const moveEntry = async (userId: string, id: string, updatedAt: number, expiresAt: number, event?: UserFeedEvent): Promise<void> => {
      await touchIndex(this.#client, this.#prefix, 'GT', userId, id, updatedAt, expiresAt, event)
    }
    this.#workflowStates = new RedisWorkflowStates({
      client: this.#client, keyPrefix: this.#prefix, ttlMs: this.#ttlMs, clock: this.#clock, corruptUnless: (id, parse) => this.#corruptUnless(id, parse)
    })
    this.#messages = new RedisMessages({
      client: this.#client,
      keyPrefix: this.#prefix,
      ttlMs: this.#ttlMs,
      countTokens: this.#countTokens,
      clock: this.#clock,
      touchIndex: moveEntry,
      corruptUnless: (id, parse) => this.#corruptUnless(id, parse),
      onCorruptRecord: this.#onCorruptRecord,
      validated: this.#validated
    })
    this.#appends = new RedisAppends({
      client: this.#client,
      keyPrefix: this.#prefix,
      ttlMs: this.#ttlMs,
      limits: this.#limits,
      countTokens: this.#countTokens,
      clock: this.#clock,
      migrate: async (id) => { await this.#messages.migrate(id) },
      touchIndex: moveEntry,
      guard: async (operation) => await this.#guard(operation),
      onCorruptRecord: this.#onCorruptRecord,
      validated: this.#validated,
      corruptUnless: (id, parse) => this.#corruptUnless(id, parse),
      onIndexMoveFailed: options.onIndexMoveFailed ?? (() => {})
    })
    this.#patches = {
      client: this.#client,
      keyPrefix: this.#prefix,
      limits: this.#limits,
      clock: this.#clock,
      views: this.#views,
      touchIndex: moveEntry,
      knowOwner: (id, userId) => { this.#appends.knowOwner(id, userId) }
    }
    const streamLimits = this.#limits.streams ?? DEFAULT_STREAM_LIMITS
    this.#idleStreams = new RedisIdleStreams({
      client: this.#client,
      key: idleStreamsKey(this.#prefix),
      idleTimeoutMs: streamLimits.idleTimeoutMs,
      ttlMs: this.#ttlMs,
      clock: this.#clock,
      timeOutIfIdle: async (id, messageId, idleMs) =>
        await this.#guardWrite(id, async (deadline) => await this.#messages.timeOutIfIdle(id, messageId, idleMs, deadline)),
      guard: async (operation) => await this.#guard(operation),
      onError: options.onSweepError ?? (() => {})
    })
    this.#sweeper = new IdleStreamSweeper(streamLimits, async () => { await this.#idleStreams.sweep() }, options.onSweepError ?? (() => {}))
    this.#snapshots = new RedisSnapshots({
      client: this.#client,
      keyPrefix: this.#prefix,
      views: this.#views,
      migrate: async (id) => { await this.#messages.migrate(id) },
      corruptUnless: (id, parse) => this.#corruptUnless(id, parse)
    })
    this.#writes = new RedisWrites({
      client: this.#client,
      limits: this.#limits,
      countTokens: this.#countTokens,
      clock: this.#clock,
      touchIndex: async (mode, userId, id, score, expiresAt, event) => { await touchIndex(this.#client, this.#prefix, mode, userId, id, score, expiresAt, event) },
      createScript: (name, id, userId) => this.#cap?.createScript(name, this.#keys(id), userId) ?? { name, keys: this.#keys(id), cap: '' },
      knowOwner: (id, userId) => { this.#appends.knowOwner(id, userId) },
      afterCreate: async (userId) => { await this.#cap?.afterCreate(userId) }
    })
  }

  get #ttlMs (): number { return this.#limits.ttlSeconds * 1000 }

  async create (id: string, fields: ConversationFields): Promise<TaggedConversation> {
    const { conversation } = await this.#guardWrite(id, async () => await this.#writes.write('create', id, fields, {}, EVERYWHERE))
    return conversation
  }

  async get (id: string, messages: MessageSelection = 'all', reach = EVERYWHERE): Promise<TaggedView | undefined> {
    const view = await this.#guard(async () => await this.#views.get(id, messages))
    if (view !== undefined) this.#appends.knowOwner(id, view.userId)
    return view !== undefined && canReach(reach, view) ? view : undefined
  }

  async put (id: string, fields: ConversationFields, preconditions: Preconditions, reach = EVERYWHERE): Promise<PutResult> {
    return await this.#guardWrite(id, async () => await this.#writes.write('put', id, fields, preconditions, reach))
  }

  async patch (id: string, patch: PatchConversationBody, preconditions: Preconditions, reach = EVERYWHERE): Promise<TaggedConversation> {
    return await this.#guardWrite(id, async (deadline) => await patchConversation(this.#patches, id, patch, preconditions, reach, deadline))
  }

  async delete (id: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<void> {
    await this.#guardWrite(id, async () => {
      const reply = await this.#script('csDeleteConversation', this.#keys(id), ifMatchArg(preconditions), '', ...reachArgs(reach))
      if (absent(reply)) throw new ConversationNotFoundError(id)
      if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
      const [, userId, updatedAt, version, data] = reply as [string, string, number, number, string]
      this.#appends.forgetOwner(id)
      await touchIndex(this.#client, this.#prefix, 'REM', userId, id, updatedAt, '', { type: 'conversation.deleted', version, data })
    })
  }

  async appendMessages (
    id: string, inputs: MessageInput[], preconditions: Preconditions, reach = EVERYWHERE, window?: WindowRequest
  ): Promise<AppendResult & Tagged> {
    // A stream's entry for the idle sweep goes in first, so it needs its id now.
    const messages = inputs.map((input) => input.status === 'in_progress' && input.id === undefined ? { ...input, id: randomUUID() } : input)
    const streams = messages.filter((input) => input.status === 'in_progress').map((input) => input.id as string)
    return await this.#guardWrite(id, async () => {
      if (streams.length > 0) await this.#idleStreams.track(id, streams)
      return await this.#appends.append(id, messages, preconditions, reach, window)
    })
  }

  async appendDelta (id: string, messageId: string, delta: Delta, preconditions: Preconditions, reach = EVERYWHERE): Promise<DeltaResult & Tagged> {
    return await this.#guardWrite(id, async () => await this.#appends.delta(id, messageId, delta, preconditions, reach))
  }

  async listByUser (userId: string, options: ListOptions, reach = EVERYWHERE): Promise<ConversationPage> {
    return await this.#guard(async (deadline) => {
      await this.#appends.settled(userId)
      await this.#cap?.trim(userId)
      // Read before the page: a follower from it may see a change the page shows already, never miss one.
      const position = canFollowUser(reach, userId) ? await this.#feeds.position(userId) : NO_USER_FEED
      return { ...await this.#lists.list(userId, options, reach, deadline), position }
    })
  }

  async deleteByUser (userId: string, reach = EVERYWHERE): Promise<number> {
    return await this.#guard(async () => {
      await this.#appends.settled(userId)
      return await this.#lists.deleteAll(userId, reach)
    })
  }

  async snapshot (id: string, throughMessageId?: string, reach = EVERYWHERE): Promise<ConversationSnapshot | undefined> {
    const snapshot = await this.#guard(async () => await this.#snapshots.snapshot(id, throughMessageId, reach))
    if (snapshot !== undefined) this.#appends.knowOwner(id, snapshot.conversation.userId)
    return snapshot
  }

  async restore (id: string, record: RestoreRecord, mode: RestoreMode, reach = EVERYWHERE): Promise<RestoreResult> {
    return await this.#guardWrite(id, async () => await this.#writes.restore(id, record, mode, reach))
  }

  async listMessages (id: string, query: MessageQuery, reach = EVERYWHERE): Promise<MessagePage & { position: string }> {
    return await this.#guard(async () => await this.#messages.list(id, query, reach))
  }

  async getMessage (id: string, messageId: string, reach = EVERYWHERE): Promise<{ message: Message, position: string }> {
    return await this.#guard(async () => await this.#messages.get(id, messageId, reach))
  }

  async patchMessage (
    id: string, messageId: string, patch: PatchMessageBody, preconditions: Preconditions, reach = EVERYWHERE
  ): Promise<{ message: Message } & Tagged> {
    return await this.#guardWrite(id, async (deadline) => await this.#messages.patch(id, messageId, patch, preconditions, reach, deadline))
  }

  async deleteMessage (id: string, messageId: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<Tagged> {
    return await this.#guardWrite(id, async () => await this.#messages.delete(id, messageId, ifMatchArg(preconditions), reach))
  }

  async rewindMessages (id: string, afterMessageId: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<RewindResult & Tagged> {
    return await this.#guardWrite(id, async () => await this.#messages.rewind(id, afterMessageId, ifMatchArg(preconditions), reach))
  }

  async getWorkflowState (id: string, reach = EVERYWHERE): Promise<TaggedWorkflowState> {
    return await this.#guard(async () => await this.#workflowStates.get(id, reach))
  }

  async putWorkflowState (
    id: string, state: WorkflowStateBody, preconditions: Preconditions, reach = EVERYWHERE
  ): Promise<{ state: TaggedWorkflowState, created: boolean }> {
    const conditions = { ifMatch: ifMatchArg(preconditions), ifNoneMatch: preconditions.ifNoneMatch === true }
    return await this.#guard(async () => await this.#workflowStates.put(id, state, conditions, reach))
  }

  async deleteWorkflowState (id: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<{ position: string }> {
    return await this.#guard(async () => await this.#workflowStates.delete(id, ifMatchArg(preconditions), reach))
  }

  async follow (id: string, after: string | undefined, reach: Reach, listener: (event: FeedEvent | null) => void): Promise<Following> {
    const view = await this.get(id, 'none', reach)
    if (view === undefined) throw new ConversationNotFoundError(id)
    return await this.#feeds.followConversation(view, after, listener, () => { listener(null) })
  }

  async followUser (userId: string, after: string | undefined, listener: (event: FeedEvent | null) => void): Promise<Following> {
    return await this.#feeds.followUser(userId, after, listener, () => { listener(null) })
  }

  async ping (): Promise<StoreHealth> {
    return await this.#guard(async () => await pingRedis(this.#client))
  }

  stats (): StoreStats {
    return { connection: this.#client.status, viewCacheBytes: this.#views.cacheBytes, messageCacheBytes: this.#validated.bytes }
  }

  async close (): Promise<void> {
    // The client belongs to the redis plugin, which quits it; the subscribers are the feeds'.
    this.#sweeper.stop()
    await this.#feeds.close()
  }

  #corruptUnless<T> (id: string, parse: () => T): T {
    try {
      return parse()
    } catch (error) {
      if (!(error instanceof InvalidRecordError)) throw error
      this.#onCorruptRecord(id, error.message)
      throw new CorruptRecordError(id)
    }
  }

  /** The keys a conversation script takes, in the order the scripts expect. */
  #keys (id: string): string[] {
    return conversationKeyList(conversationKeys(this.#prefix, id))
  }

  async #script (name: ScriptName, keys: string[], ...args: Array<string | number>): Promise<ScriptReply> {
    return await runScript(this.#client, name, keys, ...args)
  }

  /** A write to one conversation: guarded, and whatever this process cached of it is dropped. */
  async #guardWrite<T> (id: string, operation: (deadline: Deadline) => Promise<T>): Promise<T> {
    try {
      return await this.#guard(operation)
    } finally {
      this.#views.forget(id)
    }
  }

  /** Bounds the whole operation in time and turns Redis failures into 503s. */
  async #guard<T> (operation: (deadline: Deadline) => Promise<T>): Promise<T> {
    return await guardRedisCall(this.#client, this.#timeoutMs, operation)
  }
}
