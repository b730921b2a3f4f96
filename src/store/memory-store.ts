import { LRUCache } from 'lru-cache'
import { ConversationExistsError, ConversationNotFoundError, ConversationTooLargeError, WorkflowStateNotFoundError } from '../errors.js'
import type {
  AppendResult, Conversation, ConversationFields, Message, MessageInput, PatchConversationBody, WorkflowState, WorkflowStateBody
} from '../schemas.js'
import {
  assertMessageLimit, buildConversation, buildWorkflowState, checkPreconditions, expiryOf, newIncarnation,
  newMessages, patchConversation, tagOf, toSummary, writeTime, type StoreLimits
} from './conversation-rules.js'
import { firstAfter, MemoryUserIndex, type IndexKey } from './memory-user-index.js'
import type {
  ConversationPage, ConversationStore, ListOptions, Preconditions, PutResult, StoreHealth, StoreStats, Tagged,
  TaggedConversation, TaggedWorkflowState
} from './types.js'

export interface MemoryStoreOptions {
  maxConversations: number
  /** Bound on the stored size of all conversations (their JSON, in characters); none when unset. */
  maxBytes?: number
  limits: StoreLimits
  /** Milliseconds since the epoch; injectable so tests can move time. */
  clock?: () => number
}

interface StoredState { state: WorkflowState, incarnation: string, bytes: number }

interface Entry {
  conversation: Conversation
  /** Made at create; tags name it, so tags of a deleted conversation never match again. */
  incarnation: string
  messageIds: Set<string>
  /** Stored sizes, kept as messages are added so that an append stays O(1) in length. */
  bodyBytes: number
  messageBytes: number
  workflowState?: StoredState
}

const sizeOf = (entry: Entry): number => entry.bodyBytes + entry.messageBytes + (entry.workflowState?.bytes ?? 0)

/**
 * The embedded backend: an LRU of conversations bounded in count and in bytes, plus, per
 * user, the conversation ids in list order. JavaScript runs each method to completion
 * without interleaving, so every operation is atomic.
 */
export class MemoryConversationStore implements ConversationStore {
  readonly backend = 'memory'
  readonly #entries: LRUCache<string, Entry>
  readonly #index = new MemoryUserIndex()
  readonly #limits: StoreLimits
  readonly #maxBytes: number
  readonly #clock: () => number
  #evictions = 0

  constructor (options: MemoryStoreOptions) {
    this.#limits = options.limits
    this.#clock = options.clock ?? Date.now
    this.#maxBytes = options.maxBytes ?? Infinity
    this.#entries = new LRUCache<string, Entry>({
      max: options.maxConversations,
      ...(options.maxBytes === undefined ? {} : { maxSize: options.maxBytes, sizeCalculation: sizeOf }),
      // Keeps the user lists free of conversations that left the cache for any reason.
      dispose: (entry, _id, reason) => {
        if (reason === 'set') return
        if (reason === 'evict') this.#evictions++
        this.#index.remove(entry.conversation.userId, indexKeyOf(entry.conversation))
      }
    })
  }

  stats (): StoreStats {
    const stats: StoreStats = { conversations: this.#entries.size, evictions: this.#evictions }
    if (this.#maxBytes !== Infinity) stats.bytes = this.#entries.calculatedSize
    return stats
  }

  async create (id: string, fields: ConversationFields): Promise<TaggedConversation> {
    if (this.#live(id) !== undefined) throw new ConversationExistsError(id)
    const conversation = buildConversation(id, fields, this.#clock(), this.#limits)
    return tagged(this.#store(conversation))
  }

  async get (id: string): Promise<TaggedConversation | undefined> {
    const entry = this.#live(id)
    return entry === undefined ? undefined : tagged(entry)
  }

  async put (id: string, fields: ConversationFields, preconditions: Preconditions): Promise<PutResult> {
    const previous = this.#live(id)
    checkPreconditions(previous === undefined ? undefined : tagOfEntry(previous), preconditions)
    const writeMs = writeTime(this.#clock(), previous?.conversation.updatedAt)
    const conversation = buildConversation(id, fields, writeMs, this.#limits, previous?.conversation)
    return { conversation: tagged(this.#store(conversation, previous)), created: previous === undefined }
  }

  async patch (id: string, patch: PatchConversationBody, preconditions: Preconditions): Promise<TaggedConversation> {
    const entry = this.#existing(id, preconditions)
    const writeMs = writeTime(this.#clock(), entry.conversation.updatedAt)
    return tagged(this.#store(patchConversation(entry.conversation, patch, writeMs, this.#limits), entry))
  }

  async delete (id: string, preconditions: Preconditions): Promise<void> {
    this.#existing(id, preconditions)
    this.#entries.delete(id)
  }

  async appendMessages (id: string, inputs: MessageInput[], preconditions: Preconditions): Promise<AppendResult & Tagged> {
    const entry = this.#existing(id, preconditions)
    const writeMs = writeTime(this.#clock(), entry.conversation.updatedAt)
    const { added, skipped } = newMessages(entry.messageIds, inputs, new Date(writeMs).toISOString())
    const current = entry.conversation
    if (added.length === 0) {
      return { appended: 0, skipped, version: current.version, messageCount: current.messages.length, etag: tagOfEntry(entry) }
    }
    assertMessageLimit(current.messages.length + added.length, this.#limits)
    const addedBytes = messageBytes(added)
    this.#assertFits(sizeOf(entry) + addedBytes)
    // Appending in place keeps the cost independent of the conversation's length.
    current.messages.push(...added)
    for (const message of added) entry.messageIds.add(message.id)
    entry.messageBytes += addedBytes
    const updated = this.#store({
      ...current,
      updatedAt: new Date(writeMs).toISOString(),
      expiresAt: expiryOf(writeMs, this.#limits),
      version: current.version + 1
    }, entry)
    const { version, messages } = updated.conversation
    return { appended: added.length, skipped, version, messageCount: messages.length, etag: tagOfEntry(updated) }
  }

  async listByUser (userId: string, options: ListOptions): Promise<ConversationPage> {
    const index = this.#index.keys(userId)
    const start = options.cursor === undefined ? 0 : firstAfter(index, options.cursor)
    const found: Conversation[] = []
    const expired: string[] = []
    const now = this.#clock()
    // One item past the page tells whether a next page exists.
    for (let i = start; i < index.length && found.length <= options.limit; i++) {
      const { id } = index[i] as IndexKey
      const conversation = (this.#entries.peek(id) as Entry).conversation
      if (Date.parse(conversation.expiresAt) <= now) expired.push(id)
      else if (options.tenantId === undefined || conversation.tenantId === options.tenantId) found.push(conversation)
    }
    // Deleting unindexes (see dispose), so it waits until the walk is over.
    for (const id of expired) this.#entries.delete(id)
    const page = found.slice(0, options.limit)
    const last = page.at(-1)
    return {
      items: page.map((conversation) => options.view === 'summary' ? toSummary(conversation) : copy(conversation)),
      nextCursor: found.length > options.limit && last !== undefined ? indexKeyOf(last) : null
    }
  }

  async deleteByUser (userId: string): Promise<number> {
    let deleted = 0
    for (const key of [...this.#index.keys(userId)]) {
      if (this.#live(key.id, { touch: false }) !== undefined) {
        this.#entries.delete(key.id)
        deleted++
      }
    }
    this.#index.removeUser(userId)
    return deleted
  }

  async getWorkflowState (id: string): Promise<TaggedWorkflowState> {
    return taggedState(this.#workflowState(id, this.#existing(id, {})))
  }

  async putWorkflowState (
    id: string, body: WorkflowStateBody, preconditions: Preconditions
  ): Promise<{ state: TaggedWorkflowState, created: boolean }> {
    const entry = this.#existing(id, {})
    const previous = this.#liveWorkflowState(entry)
    checkPreconditions(previous === undefined ? undefined : tagOf(previous.incarnation, previous.state.version), preconditions)
    const writeMs = writeTime(this.#clock(), previous?.state.updatedAt)
    const state = buildWorkflowState(id, body, writeMs, this.#limits, previous?.state)
    const stored: StoredState = { state, incarnation: previous?.incarnation ?? newIncarnation(), bytes: JSON.stringify(state).length }
    this.#assertFits(sizeOf(entry) - (entry.workflowState?.bytes ?? 0) + stored.bytes)
    // A new entry object, so that the cache recounts its size.
    this.#entries.set(id, { ...entry, workflowState: stored })
    return { state: taggedState(stored), created: previous === undefined }
  }

  async deleteWorkflowState (id: string, preconditions: Preconditions): Promise<void> {
    const entry = this.#existing(id, {})
    const current = this.#workflowState(id, entry)
    checkPreconditions(tagOf(current.incarnation, current.state.version), preconditions)
    const { workflowState: _deleted, ...rest } = entry
    this.#entries.set(id, rest)
  }

  async ping (): Promise<StoreHealth> {
    return { latencyMs: 0, conversations: this.#entries.size }
  }

  async close (): Promise<void> {
    this.#entries.clear()
    this.#index.clear()
  }

  /** The entry while it has not expired; an expired one is removed on sight. */
  #live (id: string, { touch } = { touch: true }): Entry | undefined {
    const entry = touch ? this.#entries.get(id) : this.#entries.peek(id)
    if (entry === undefined) return undefined
    if (Date.parse(entry.conversation.expiresAt) > this.#clock()) return entry
    this.#entries.delete(id)
    return undefined
  }

  #existing (id: string, preconditions: Preconditions): Entry {
    const entry = this.#live(id)
    if (entry === undefined) throw new ConversationNotFoundError(id)
    checkPreconditions(tagOfEntry(entry), preconditions)
    return entry
  }

  #liveWorkflowState (entry: Entry): StoredState | undefined {
    const stored = entry.workflowState
    return stored !== undefined && Date.parse(stored.state.expiresAt) > this.#clock() ? stored : undefined
  }

  #workflowState (id: string, entry: Entry): StoredState {
    const stored = this.#liveWorkflowState(entry)
    if (stored === undefined) throw new WorkflowStateNotFoundError(id)
    return stored
  }

  /** A conversation that would not fit in the whole cache is refused before anything changes. */
  #assertFits (bytes: number): void {
    if (bytes > this.#maxBytes) throw new ConversationTooLargeError(this.#maxBytes)
  }

  /**
   * Saves a conversation write. The write refreshes the TTL of everything the
   * conversation owns; a new conversation starts without workflow state.
   */
  #store (conversation: Conversation, previous?: Entry): Entry {
    const sameMessages = previous?.conversation.messages === conversation.messages
    const { messages: _messages, ...body } = conversation
    const entry: Entry = {
      conversation,
      incarnation: previous?.incarnation ?? newIncarnation(),
      messageIds: sameMessages ? previous.messageIds : new Set(conversation.messages.map((message) => message.id)),
      bodyBytes: JSON.stringify(body).length,
      messageBytes: sameMessages ? previous.messageBytes : messageBytes(conversation.messages)
    }
    const stored = previous === undefined ? undefined : this.#liveWorkflowState(previous)
    if (stored !== undefined) entry.workflowState = { ...stored, state: { ...stored.state, expiresAt: conversation.expiresAt } }
    this.#assertFits(sizeOf(entry))
    if (previous !== undefined) this.#index.remove(previous.conversation.userId, indexKeyOf(previous.conversation))
    this.#entries.set(conversation.id, entry)
    this.#index.add(conversation.userId, indexKeyOf(conversation))
    return entry
  }
}

function messageBytes (messages: Message[]): number {
  let bytes = 0
  for (const message of messages) bytes += JSON.stringify(message).length + 1
  return bytes
}

function tagOfEntry (entry: Entry): string {
  return tagOf(entry.incarnation, entry.conversation.version)
}

function copy (conversation: Conversation): Conversation {
  return { ...conversation, messages: conversation.messages.slice() }
}

function tagged (entry: Entry): TaggedConversation {
  return { ...copy(entry.conversation), etag: tagOfEntry(entry) }
}

function taggedState ({ state, incarnation }: StoredState): TaggedWorkflowState {
  return { ...state, etag: tagOf(incarnation, state.version) }
}

function indexKeyOf (conversation: Conversation): IndexKey {
  return { updatedAt: Date.parse(conversation.updatedAt), id: conversation.id }
}
