import type { LRUCache } from 'lru-cache'
import type { ConversationView } from '../../schemas.js'
import { canReach, type ConversationBody, type StoreLimits } from '../conversation-rules.js'
import type { ConversationPage, ListOptions, Reach } from '../types.js'
import { indexKeyOf, summaryOf, type Entry } from './entries.js'
import { firstAfter, type IndexKey, type MemoryUserIndex } from './user-index.js'

export interface MemoryUserListsOptions {
  entries: LRUCache<string, Entry>
  index: MemoryUserIndex
  limits: StoreLimits
  clock: () => number
  /** A conversation's full view, as the store's reads answer it (serialised once per version). */
  fullView: (entry: Entry) => ConversationView
}

/**
 * A user's conversations in the memory backend, through the user index: a page of the list,
 * delete-all, and the per-user cap. Deleting an entry unindexes it (the cache's dispose), so
 * each walk decides first and deletes after.
 */
export class MemoryUserLists {
  readonly #options: MemoryUserListsOptions

  constructor (options: MemoryUserListsOptions) {
    this.#options = options
  }

  list (userId: string, options: ListOptions, reach: Reach): Omit<ConversationPage, 'position'> {
    const { entries, index, clock, fullView } = this.#options
    const keys = index.keys(userId)
    const wanted = (body: ConversationBody): boolean =>
      (options.tenantId === undefined || body.tenantId === options.tenantId) && canReach(reach, body)
    const start = options.cursor === undefined ? 0 : firstAfter(keys, options.cursor)
    const found: Entry[] = []
    const expired: string[] = []
    const now = clock()
    // One item past the page tells whether a next page exists.
    for (let i = start; i < keys.length && found.length <= options.limit; i++) {
      const { id } = keys[i] as IndexKey
      const entry = entries.peek(id) as Entry
      if (this.#expired(entry, now)) expired.push(id)
      else if (wanted(entry.body)) found.push(entry)
    }
    for (const id of expired) entries.delete(id)
    const page = found.slice(0, options.limit)
    const last = page.at(-1)
    return {
      items: page.map((entry) => options.view === 'summary' ? summaryOf(entry) : fullView(entry)),
      nextCursor: found.length > options.limit && last !== undefined ? indexKeyOf(last.body) : null
    }
  }

  /** Deletes the user's live conversations within reach (expired ones go too, uncounted). */
  deleteAll (userId: string, reach: Reach): number {
    const { entries, index, clock } = this.#options
    const now = clock()
    let deleted = 0
    for (const { id } of [...index.keys(userId)]) {
      const entry = entries.peek(id) as Entry
      if (this.#expired(entry, now)) {
        entries.delete(id)
      } else if (canReach(reach, entry.body)) {
        entries.delete(id)
        deleted++
      }
    }
    return deleted
  }

  /**
   * Past the per-user cap, deletes the user's least recently updated conversations; the
   * store calls it in the same synchronous step as a create. Expired ones go too, and do
   * not count.
   */
  trim (userId: string): void {
    const { entries, index, limits, clock } = this.#options
    const cap = limits.maxConversationsPerUser
    const keys = index.keys(userId)
    if (cap === undefined || keys.length <= cap) return
    const now = clock()
    const expired: string[] = []
    const live: string[] = []
    for (const { id } of keys) (this.#expired(entries.peek(id) as Entry, now) ? expired : live).push(id)
    for (const id of [...expired, ...live.slice(cap)]) entries.delete(id)
  }

  #expired (entry: Entry, now: number): boolean {
    return Date.parse(entry.body.expiresAt) <= now
  }
}
