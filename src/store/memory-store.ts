import { LRUCache } from 'lru-cache'
import { ConversationExistsError, ConversationNotFoundError, WorkflowStateNotFoundError } from '../errors.js'
import type {
  AppendResult, Conversation, ConversationFields, MessageInput, PatchConversationBody, WorkflowState, WorkflowStateBody
} from '../schemas.js'
import {
  assertMessageLimit, buildConversation, buildWorkflowState, checkPreconditions, compareListOrder,
  expiryOf, newMessages, patchConversation, toSummary, writeTime, type StoreLimits
} from './conversation-rules.js'
import type { ConversationPage, ConversationStore, ListOptions, Preconditions, PutResult, StoreHealth, StoreStats } from './types.js'

export interface MemoryStoreOptions {
  maxConversations: number
  limits: StoreLimits
  /** Milliseconds since the epoch; injectable so tests can move time. */
  clock?: () => number
}

interface IndexKey { updatedAt: number, id: string }

interface Entry {
  conversation: Conversation
  messageIds: Set<string>
  workflowState?: WorkflowState
}

/**
 * The embedded backend: a bounded LRU of conversations plus, per user, an array of
 * conversation ids kept in list order. JavaScript runs each method to completion
 * without interleaving, so every operation is atomic.
 */
export class MemoryConversationStore implements ConversationStore {
  readonly backend = 'memory'
  readonly #entries: LRUCache<string, Entry>
  readonly #byUser = new Map<string, IndexKey[]>()
  readonly #limits: StoreLimits
  readonly #clock: () => number
  #evictions = 0

  constructor (options: MemoryStoreOptions) {
    this.#limits = options.limits
    this.#clock = options.clock ?? Date.now
    this.#entries = new LRUCache<string, Entry>({
      max: options.maxConversations,
      // Keeps the user lists free of conversations that left the cache for any reason.
      dispose: (entry, _id, reason) => {
        if (reason === 'set') return
        if (reason === 'evict') this.#evictions++
        this.#unindex(entry.conversation)
      }
    })
  }

  stats (): StoreStats {
    return { conversations: this.#entries.size, evictions: this.#evictions }
  }

  async create (id: string, fields: ConversationFields): Promise<Conversation> {
    if (this.#live(id) !== undefined) throw new ConversationExistsError(id)
    const conversation = buildConversation(id, fields, this.#clock(), this.#limits)
    this.#store(conversation)
    return copy(conversation)
  }

  async get (id: string): Promise<Conversation | undefined> {
    const entry = this.#live(id)
    return entry === undefined ? undefined : copy(entry.conversation)
  }

  async put (id: string, fields: ConversationFields, preconditions: Preconditions): Promise<PutResult> {
    const previous = this.#live(id)
    checkPreconditions(previous?.conversation.version, preconditions)
    const writeMs = writeTime(this.#clock(), previous?.conversation.updatedAt)
    const conversation = buildConversation(id, fields, writeMs, this.#limits, previous?.conversation)
    this.#store(conversation, previous)
    return { conversation: copy(conversation), created: previous === undefined }
  }

  async patch (id: string, patch: PatchConversationBody, preconditions: Preconditions): Promise<Conversation> {
    const entry = this.#existing(id, preconditions)
    const writeMs = writeTime(this.#clock(), entry.conversation.updatedAt)
    const conversation = patchConversation(entry.conversation, patch, writeMs, this.#limits)
    this.#store(conversation, entry)
    return copy(conversation)
  }

  async delete (id: string, preconditions: Preconditions): Promise<void> {
    this.#existing(id, preconditions)
    this.#entries.delete(id)
  }

  async appendMessages (id: string, inputs: MessageInput[], preconditions: Preconditions): Promise<AppendResult> {
    const entry = this.#existing(id, preconditions)
    const writeMs = writeTime(this.#clock(), entry.conversation.updatedAt)
    const { added, skipped } = newMessages(entry.messageIds, inputs, new Date(writeMs).toISOString())
    const current = entry.conversation
    if (added.length === 0) {
      return { appended: 0, skipped, version: current.version, messageCount: current.messages.length }
    }
    assertMessageLimit(current.messages.length + added.length, this.#limits)
    // Appending in place keeps the cost independent of the conversation's length.
    current.messages.push(...added)
    for (const message of added) entry.messageIds.add(message.id)
    const updated = {
      ...current,
      updatedAt: new Date(writeMs).toISOString(),
      expiresAt: expiryOf(writeMs, this.#limits),
      version: current.version + 1
    }
    this.#store(updated, entry)
    return { appended: added.length, skipped, version: updated.version, messageCount: updated.messages.length }
  }

  async listByUser (userId: string, options: ListOptions): Promise<ConversationPage> {
    const index = this.#byUser.get(userId) ?? []
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
    const index = [...this.#byUser.get(userId) ?? []]
    let deleted = 0
    for (const key of index) {
      if (this.#live(key.id, { touch: false }) !== undefined) {
        this.#entries.delete(key.id)
        deleted++
      }
    }
    this.#byUser.delete(userId)
    return deleted
  }

  async getWorkflowState (id: string): Promise<WorkflowState> {
    return { ...this.#workflowState(id, this.#existing(id, {})) }
  }

  async putWorkflowState (
    id: string, body: WorkflowStateBody, preconditions: Preconditions
  ): Promise<{ state: WorkflowState, created: boolean }> {
    const entry = this.#existing(id, {})
    const previous = this.#liveWorkflowState(entry)
    checkPreconditions(previous?.version, preconditions)
    const writeMs = writeTime(this.#clock(), previous?.updatedAt)
    entry.workflowState = buildWorkflowState(id, body, writeMs, this.#limits, previous)
    return { state: { ...entry.workflowState }, created: previous === undefined }
  }

  async deleteWorkflowState (id: string, preconditions: Preconditions): Promise<void> {
    const entry = this.#existing(id, {})
    checkPreconditions(this.#workflowState(id, entry).version, preconditions)
    delete entry.workflowState
  }

  async ping (): Promise<StoreHealth> {
    return { latencyMs: 0, conversations: this.#entries.size }
  }

  async close (): Promise<void> {
    this.#entries.clear()
    this.#byUser.clear()
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
    checkPreconditions(entry.conversation.version, preconditions)
    return entry
  }

  #liveWorkflowState (entry: Entry): WorkflowState | undefined {
    const state = entry.workflowState
    return state !== undefined && Date.parse(state.expiresAt) > this.#clock() ? state : undefined
  }

  #workflowState (id: string, entry: Entry): WorkflowState {
    const state = this.#liveWorkflowState(entry)
    if (state === undefined) throw new WorkflowStateNotFoundError(id)
    return state
  }

  /**
   * Saves a conversation write. The write refreshes the TTL of everything the
   * conversation owns; a new conversation starts without workflow state.
   */
  #store (conversation: Conversation, previous?: Entry): void {
    const entry: Entry = {
      conversation,
      messageIds: previous?.conversation.messages === conversation.messages
        ? previous.messageIds
        : new Set(conversation.messages.map((message) => message.id))
    }
    const workflowState = previous === undefined ? undefined : this.#liveWorkflowState(previous)
    if (workflowState !== undefined) entry.workflowState = { ...workflowState, expiresAt: conversation.expiresAt }
    if (previous !== undefined) this.#unindex(previous.conversation)
    this.#entries.set(conversation.id, entry)
    this.#index(conversation)
  }

  #index (conversation: Conversation): void {
    let index = this.#byUser.get(conversation.userId)
    if (index === undefined) {
      index = []
      this.#byUser.set(conversation.userId, index)
    }
    const key = indexKeyOf(conversation)
    index.splice(firstAfter(index, key), 0, key)
  }

  #unindex (conversation: Conversation): void {
    const index = this.#byUser.get(conversation.userId)
    if (index === undefined) return
    removeKey(index, indexKeyOf(conversation))
    if (index.length === 0) this.#byUser.delete(conversation.userId)
  }
}

function copy (conversation: Conversation): Conversation {
  return { ...conversation, messages: conversation.messages.slice() }
}

function indexKeyOf (conversation: Conversation): IndexKey {
  return { updatedAt: Date.parse(conversation.updatedAt), id: conversation.id }
}

/** Position of the first key that sorts after `key` (binary search). */
function firstAfter (index: IndexKey[], key: IndexKey): number {
  let low = 0
  let high = index.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (compareListOrder(index[middle] as IndexKey, key) <= 0) low = middle + 1
    else high = middle
  }
  return low
}

function removeKey (index: IndexKey[], key: IndexKey): void {
  const position = firstAfter(index, key) - 1
  const found = index[position]
  if (found !== undefined && compareListOrder(found, key) === 0) index.splice(position, 1)
}
