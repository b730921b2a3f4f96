import { LRUCache } from 'lru-cache'
import {
  ConversationExistsError, ConversationNotFoundError, ConversationTooLargeError, InvalidRequestError, UserMismatchError
} from '../../errors.js'
import type {
  AppendResult, ConversationFields, ConversationView, Message, MessageInput, RewindResult, PatchConversationBody, PatchMessageBody, WorkflowStateBody
} from '../../schemas.js'
import type { TokenCounter } from '../../tokens.js'
import {
  buildConversation, canFollowUser, canReach, checkPreconditions, newIncarnation, patchConversation,
  writeStamp, writeTime, type ConversationBody, type StoreLimits
} from '../conversation-rules.js'
import { MessageLog } from './message-log.js'
import { MemoryEventLog } from './event-log.js'
import { DEFAULT_EVENTS_RETAINED, eventFields, NO_USER_FEED, type FeedEvent, type Following } from '../events.js'
import { existingState, liveState, nextState, withoutState } from './workflow-states.js'
import { restoredEntry } from './restored-entry.js'
import { emitOn, indexKeyOf, messageOf, sizeOf, snapshotOf, summaryOf, tagged, taggedState, tagOfEntry, tagsOf, viewOf, type Entry } from './entries.js'
import { ViewCache } from '../view-cache.js'
import { MemoryMessageWrites } from './message-writes.js'
import { DEFAULT_STREAM_LIMITS, type Delta, type DeltaResult } from '../stream-rules.js'
import { MemoryUserIndex } from './user-index.js'
import { MemoryUserLists } from './user-lists.js'
import { MemoryUserFeeds } from './user-feeds.js'
import {
  EVERYWHERE, type ConversationPage, type ConversationSnapshot, type ConversationStore, type ListOptions, type MessagePage,
  type MessageQuery, type MessageSelection, type Preconditions, type PutResult, type Reach, type RestoreMode, type RestoreRecord, type RestoreResult,
  type StoreHealth, type StoreStats, type Tagged, type TaggedConversation, type TaggedView, type TaggedWorkflowState, type WindowRequest
} from '../types.js'

export interface MemoryStoreOptions {
  maxConversations: number
  /** Bound on the stored size of all conversations (their JSON, in characters); none when unset. */
  maxBytes?: number
  limits: StoreLimits
  countTokens: TokenCounter
  /** Bound of the serialised full views kept for reads (view-cache.ts); 0 keeps none. */
  viewCacheBytes?: number
  /** Milliseconds since the epoch; injectable so tests can move time. */
  clock?: () => number
  /** How many events each conversation keeps for its followers (EVENTS_RETAINED). */
  eventsRetained?: number
  /** Told when a sweep of idle streams fails (it cannot, short of a bug). */
  onSweepError?: (error: unknown) => void
}

/**
 * The embedded backend: an LRU of conversations bounded in count and in bytes, plus, per
 * user, the conversation ids in list order. JavaScript runs each method to completion
 * without interleaving, so every operation is atomic.
 */
export class MemoryConversationStore implements ConversationStore {
  readonly backend = 'memory'
  readonly #entries: LRUCache<string, Entry>
  readonly #index = new MemoryUserIndex()
  readonly #lists: MemoryUserLists
  readonly #limits: StoreLimits
  readonly #maxBytes: number
  readonly #countTokens: TokenCounter
  readonly #clock: () => number
  // Keyed by tag, which every write changes: a stale view is never found.
  readonly #views: ViewCache
  #evictions = 0
  readonly #messages: MemoryMessageWrites
  readonly #eventsRetained: number
  readonly #userFeeds: MemoryUserFeeds

  constructor (options: MemoryStoreOptions) {
    this.#limits = options.limits
    this.#countTokens = options.countTokens
    this.#clock = options.clock ?? Date.now
    this.#maxBytes = options.maxBytes ?? Infinity
    this.#eventsRetained = options.eventsRetained ?? DEFAULT_EVENTS_RETAINED
    this.#views = new ViewCache(options.viewCacheBytes ?? 0)
    this.#userFeeds = new MemoryUserFeeds(this.#eventsRetained)
    this.#entries = new LRUCache<string, Entry>({
      max: options.maxConversations,
      ...(options.maxBytes === undefined ? {} : { maxSize: options.maxBytes, sizeCalculation: sizeOf }),
      // Keeps the user lists free of conversations that left the cache for any reason.
      dispose: (entry, _id, reason) => {
        if (reason === 'set') return
        if (reason === 'evict') this.#evictions++
        entry.events.emit('conversation.deleted', entry.body.version, eventFields.none())
        this.#views.forget(entry.body.id)
        this.#index.remove(entry.body.userId, indexKeyOf(entry.body))
        this.#userFeeds.deleted(entry.body, this.#index.keys(entry.body.userId).length === 0)
      }
    })
    this.#messages = new MemoryMessageWrites({
      limits: options.limits.streams ?? DEFAULT_STREAM_LIMITS,
      storeLimits: options.limits,
      clock: this.#clock,
      live: (id) => this.#live(id, { touch: false }),
      touch: (entry, writeMs, announce) => this.#touch(entry, writeMs, announce),
      assertFits: (bytes) => { this.#assertFits(bytes) },
      onSweepError: options.onSweepError ?? (() => {})
    })
    this.#lists = new MemoryUserLists({
      entries: this.#entries, index: this.#index, limits: this.#limits, clock: this.#clock, fullView: (entry) => this.#fullView(entry)
    })
  }

  stats (): StoreStats {
    const stats: StoreStats = { conversations: this.#entries.size, evictions: this.#evictions, viewCacheBytes: this.#views.bytes }
    if (this.#maxBytes !== Infinity) Object.assign(stats, { bytes: this.#entries.calculatedSize, maxBytes: this.#maxBytes })
    return stats
  }

  async create (id: string, fields: ConversationFields): Promise<TaggedConversation> {
    if (this.#live(id) !== undefined) throw new ConversationExistsError(id)
    const { messages, messageCount: _count, ...body } = buildConversation(id, fields, this.#clock(), this.#limits)
    return tagged(this.#store(body, new MessageLog(this.#countTokens, messages)))
  }

  async get (id: string, messages: MessageSelection = 'all', reach = EVERYWHERE): Promise<TaggedView | undefined> {
    const entry = this.#reachable(id, reach)
    if (entry === undefined) return undefined
    if (messages === 'all') return Object.assign(this.#fullView(entry), { ...tagsOf(entry) })
    // Only what is returned is copied: a tail read of a long conversation stays cheap.
    const view = { ...summaryOf(entry), ...tagsOf(entry) }
    return messages === 'none' ? view : { ...view, messages: entry.log.last(messages.last) }
  }

  async put (id: string, fields: ConversationFields, preconditions: Preconditions, reach = EVERYWHERE): Promise<PutResult> {
    const previous = this.#live(id)
    if (previous !== undefined && !canReach(reach, previous.body)) throw new ConversationNotFoundError(id)
    checkPreconditions(previous === undefined ? undefined : tagOfEntry(previous), preconditions)
    const writeMs = writeTime(this.#clock(), previous?.body.updatedAt)
    const { messages, messageCount: _count, ...body } = buildConversation(id, fields, writeMs, this.#limits, previous?.body)
    const entry = this.#store(body, new MessageLog(this.#countTokens, messages), previous)
    // A replacement is one conversation.updated event (its messages are read again); a create has none.
    return { conversation: tagged(previous === undefined ? entry : this.#updated(entry)), created: previous === undefined }
  }

  async patch (id: string, patch: PatchConversationBody, preconditions: Preconditions, reach = EVERYWHERE): Promise<TaggedConversation> {
    const entry = this.#existing(id, preconditions, reach)
    const writeMs = writeTime(this.#clock(), entry.body.updatedAt)
    return tagged(this.#updated(this.#store(patchConversation(entry.body, patch, writeMs, this.#limits), entry.log, entry)))
  }

  async delete (id: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<void> {
    this.#existing(id, preconditions, reach)
    this.#entries.delete(id)
  }

  async appendMessages (
    id: string, inputs: MessageInput[], preconditions: Preconditions, reach = EVERYWHERE, window?: WindowRequest
  ): Promise<AppendResult & Tagged> {
    return this.#messages.append(this.#existing(id, preconditions, reach), inputs, window)
  }

  async listByUser (userId: string, options: ListOptions, reach = EVERYWHERE): Promise<ConversationPage> {
    // The same synchronous step: the position is that of the newest change the page reflects.
    // A caller that may not follow this user's feed learns nothing of it.
    const position = canFollowUser(reach, userId) ? this.#userFeeds.position(userId) : NO_USER_FEED
    return { ...this.#lists.list(userId, options, reach), position }
  }

  async deleteByUser (userId: string, reach = EVERYWHERE): Promise<number> {
    return this.#lists.deleteAll(userId, reach)
  }

  async snapshot (id: string, throughMessageId?: string, reach = EVERYWHERE): Promise<ConversationSnapshot | undefined> {
    const entry = this.#reachable(id, reach)
    return entry === undefined ? undefined : snapshotOf(entry, throughMessageId, this.#clock())
  }

  async restore (id: string, record: RestoreRecord, mode: RestoreMode, reach = EVERYWHERE): Promise<RestoreResult> {
    const previous = this.#live(id)
    if (previous !== undefined) {
      if (mode === 'create') throw new ConversationExistsError(id)
      if (mode === 'skip') return { outcome: 'skipped' }
      if (!canReach(reach, previous.body)) throw new ConversationNotFoundError(id)
      if (previous.body.userId !== record.fields.userId) throw new UserMismatchError()
    }
    const entry = restoredEntry(id, record, {
      now: this.#clock(), limits: this.#limits, countTokens: this.#countTokens, previous, eventsRetained: this.#eventsRetained
    })
    this.#save(entry, previous)
    return { outcome: previous === undefined ? 'created' : 'replaced', conversation: tagged(entry) }
  }

  async listMessages (id: string, query: MessageQuery, reach = EVERYWHERE): Promise<MessagePage & { position: string }> {
    const entry = this.#existing(id, {}, reach)
    if (query.after !== undefined && query.after.incarnation !== entry.incarnation) throw badCursor()
    const { items, nextSeq, totalTokens } = entry.log.page(query)
    return {
      items,
      next: nextSeq === null ? null : { incarnation: entry.incarnation, seq: nextSeq },
      messageCount: entry.log.count,
      ...(totalTokens === undefined ? {} : { totalTokens }),
      position: entry.events.position
    }
  }

  async getMessage (id: string, messageId: string, reach = EVERYWHERE): Promise<{ message: Message, position: string }> {
    const entry = this.#existing(id, {}, reach)
    return { message: messageOf(entry, messageId), position: entry.events.position }
  }

  async patchMessage (
    id: string, messageId: string, patch: PatchMessageBody, preconditions: Preconditions, reach = EVERYWHERE
  ): Promise<{ message: Message } & Tagged> {
    const entry = this.#existing(id, preconditions, reach)
    return this.#messages.edit(entry, messageOf(entry, messageId), patch)
  }

  async appendDelta (id: string, messageId: string, delta: Delta, preconditions: Preconditions, reach = EVERYWHERE): Promise<DeltaResult & Tagged> {
    const entry = this.#existing(id, preconditions, reach)
    return this.#messages.extend(entry, messageOf(entry, messageId), delta)
  }

  async rewindMessages (id: string, afterMessageId: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<RewindResult & Tagged> {
    const entry = this.#existing(id, preconditions, reach)
    messageOf(entry, afterMessageId)
    return this.#messages.rewind(entry, afterMessageId)
  }

  async deleteMessage (id: string, messageId: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<Tagged> {
    const entry = this.#existing(id, preconditions, reach)
    messageOf(entry, messageId)
    return this.#messages.remove(entry, messageId)
  }

  async getWorkflowState (id: string, reach = EVERYWHERE): Promise<TaggedWorkflowState> {
    const entry = this.#existing(id, {}, reach)
    return taggedState(existingState(id, entry, this.#clock()), entry.events.position)
  }

  async putWorkflowState (
    id: string, body: WorkflowStateBody, preconditions: Preconditions, reach = EVERYWHERE
  ): Promise<{ state: TaggedWorkflowState, created: boolean }> {
    const entry = this.#existing(id, {}, reach)
    const { stored, created } = nextState(id, entry, body, preconditions, this.#clock(), this.#limits)
    this.#assertFits(sizeOf(entry) - (entry.workflowState?.bytes ?? 0) + stored.bytes)
    // A new entry object, so that the cache recounts its size.
    this.#entries.set(id, { ...entry, workflowState: stored })
    emitOn(entry, 'workflow_state.updated', eventFields.workflowState(stored.state))
    return { state: taggedState(stored, entry.events.position), created }
  }

  async deleteWorkflowState (id: string, preconditions: Preconditions, reach = EVERYWHERE): Promise<{ position: string }> {
    const entry = this.#existing(id, {}, reach)
    this.#entries.set(id, withoutState(id, entry, preconditions, this.#clock()))
    emitOn(entry, 'workflow_state.deleted', eventFields.none())
    return { position: entry.events.position }
  }

  async follow (id: string, after: string | undefined, reach: Reach, listener: (event: FeedEvent | null) => void): Promise<Following> {
    const entry = this.#reachable(id, reach)
    if (entry === undefined) throw new ConversationNotFoundError(id)
    return { close: entry.events.follow(after, entry.body.version, listener) }
  }

  async followUser (userId: string, after: string | undefined, listener: (event: FeedEvent | null) => void): Promise<Following> {
    return { close: this.#userFeeds.follow(userId, after, listener, () => this.#index.keys(userId).length === 0) }
  }

  async ping (): Promise<StoreHealth> {
    return { latencyMs: 0, conversations: this.#entries.size }
  }

  async close (): Promise<void> {
    this.#messages.close()
    this.#entries.clear()
    this.#index.clear()
    this.#userFeeds.clear()
  }

  /** A write to the conversation itself: its followers get the conversation without its messages. */
  #updated (entry: Entry): Entry {
    emitOn(entry, 'conversation.updated', eventFields.conversation(summaryOf(entry)))
    return entry
  }

  /** The full view, serialised once per version. */
  #fullView (entry: Entry): ConversationView {
    const tag = tagOfEntry(entry)
    return this.#views.get<ConversationView>('full', entry.body.id, tag)?.view ??
      this.#views.remember('full', entry.body.id, tag, tag, viewOf(entry))
  }

  /** The entry while it has not expired; an expired one is removed on sight. */
  #live (id: string, { touch } = { touch: true }): Entry | undefined {
    const entry = touch ? this.#entries.get(id) : this.#entries.peek(id)
    if (entry === undefined) return undefined
    if (Date.parse(entry.body.expiresAt) > this.#clock()) return entry
    this.#entries.delete(id)
    return undefined
  }

  /** The live entry when the caller may reach it; one out of reach is as absent as a missing one. */
  #reachable (id: string, reach: Reach): Entry | undefined {
    const entry = this.#live(id)
    return entry !== undefined && canReach(reach, entry.body) ? entry : undefined
  }

  #existing (id: string, preconditions: Preconditions, reach: Reach): Entry {
    const entry = this.#reachable(id, reach)
    if (entry === undefined) throw new ConversationNotFoundError(id)
    checkPreconditions(tagOfEntry(entry), preconditions)
    return entry
  }

  /** A conversation that would not fit in the whole cache is refused before anything changes. */
  #assertFits (bytes: number): void {
    if (bytes > this.#maxBytes) throw new ConversationTooLargeError(this.#maxBytes)
  }

  /** A write to the messages in place: the conversation's version, times and TTLs move. */
  #touch (entry: Entry, writeMs: number, announce = true): Entry {
    return this.#store({ ...entry.body, ...writeStamp(entry.body, writeMs, this.#limits) }, entry.log, entry, announce)
  }

  /**
   * Saves a conversation write. The write refreshes the TTL of everything the
   * conversation owns; a new conversation starts without workflow state.
   */
  #store (body: ConversationBody, log: MessageLog, previous?: Entry, announce = true): Entry {
    const incarnation = previous?.incarnation ?? newIncarnation()
    const events = previous?.events ?? new MemoryEventLog(body.id, incarnation, this.#eventsRetained)
    const entry: Entry = { body, incarnation, log, bodyBytes: JSON.stringify(body).length, events }
    const stored = previous === undefined ? undefined : liveState(previous, this.#clock())
    if (stored !== undefined) entry.workflowState = { ...stored, state: { ...stored.state, expiresAt: body.expiresAt } }
    this.#save(entry, previous, announce)
    return entry
  }

  /**
   * Puts an entry in place of `previous`, and tells its user's feed (unless the write is a
   * delta); a new conversation then brings its user back to the cap.
   */
  #save (entry: Entry, previous?: Entry, announce = true): void {
    const { body } = entry
    this.#assertFits(sizeOf(entry))
    if (previous !== undefined) this.#index.remove(previous.body.userId, indexKeyOf(previous.body))
    // A restore is a new incarnation: the followers of the one it replaces see it deleted.
    if (previous !== undefined && previous.events !== entry.events) previous.events.emit('conversation.deleted', previous.body.version, eventFields.none())
    this.#views.forget(body.id)
    this.#entries.set(body.id, entry)
    this.#index.add(body.userId, indexKeyOf(body))
    if (announce) this.#userFeeds.written(previous === undefined ? 'conversation.created' : 'conversation.updated', summaryOf(entry))
    if (previous === undefined) this.#lists.trim(body.userId)
  }
}

function badCursor (): Error {
  return new InvalidRequestError('querystring/cursor belongs to another conversation, or to one since deleted')
}
