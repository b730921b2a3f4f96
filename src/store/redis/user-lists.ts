import type { Cluster, Redis } from 'ioredis'
import type { ConversationSummary, ConversationView } from '../../schemas.js'
import { canReach } from '../conversation-rules.js'
import { reachArgs, runScript } from './commands.js'
import type { Deadline } from './errors.js'
import { conversationKeyList, conversationKeys, userIndexKey } from './keys.js'
import { quietly, type RedisViews } from './views.js'
import type { ConversationPage, ListCursor, ListOptions, Reach } from '../types.js'
import { touchIndex } from './feeds.js'

export interface RedisUserListsOptions {
  client: Redis | Cluster
  keyPrefix: string
  /** Index entries this much older than their conversation's absence are pruned. */
  staleAfterMs: number
  clock: () => number
  views: RedisViews
}

/** A listed conversation: where it is in the list, its view, and the fingerprint it was read with. */
interface Found { position: ListCursor, item: ConversationSummary | ConversationView, fingerprint: string }

/**
 * A user's conversations through the per-user index, which lives in another hash slot than
 * the conversations and is kept in step without a cross-slot transaction (see the README):
 * lists walk it from a position and skip what it points at wrongly; delete-all walks it to
 * the end.
 */
export class RedisUserLists {
  readonly #options: RedisUserListsOptions

  constructor (options: RedisUserListsOptions) {
    this.#options = options
  }

  async list (userId: string, options: ListOptions, reach: Reach, deadline: Deadline): Promise<Omit<ConversationPage, 'position'>> {
    if (reach.userId !== undefined && reach.userId !== userId) return { items: [], nextCursor: null }
    const index = userIndexKey(this.#options.keyPrefix, userId)
    const wanted = options.limit + 1 // one more tells whether a next page exists
    const found: Found[] = []
    const stale: Array<string | number> = []
    let after = options.cursor
    // The first read asks for exactly what a page needs; when entries are skipped
    // (another tenant, stale, corrupt) each further read asks for twice as many.
    let batch = wanted
    while (found.length < wanted) {
      deadline.throwIfAborted()
      const positions = await this.#positionsAfter(index, after, batch)
      const kept = await this.#summaries(userId, positions, (item) =>
        (options.tenantId === undefined || item.tenantId === options.tenantId) && canReach(reach, item), stale)
      if (options.view === 'summary') found.push(...kept.slice(0, wanted - found.length))
      else found.push(...await this.#withMessages(kept, wanted - found.length))
      after = positions.at(-1)
      if (positions.length < batch) break
      batch = Math.min(batch * 2, 1000)
    }
    // Pruning is best effort: it only removes entries that did not move since we saw them.
    if (stale.length > 0) await runScript(this.#options.client, 'csRemoveIndexEntries', [index], ...stale)
    const page = found.slice(0, options.limit)
    const last = page.at(-1)
    return {
      items: page.map(({ item }) => item),
      nextCursor: found.length > options.limit && last !== undefined ? last.position : null
    }
  }

  /** Deletes the user's conversations within reach; the index keeps the entries of the others. */
  async deleteAll (userId: string, reach: Reach): Promise<number> {
    if (reach.userId !== undefined && reach.userId !== userId) return 0
    const { client, keyPrefix } = this.#options
    const index = userIndexKey(keyPrefix, userId)
    const seen = new Set<string>()
    let deleted = 0
    let kept = 0
    for (;;) {
      const entries = await client.zrange(index, String(kept), String(kept + 499), 'WITHSCORES')
      const fresh: Array<[string, string]> = []
      for (let i = 0; i < entries.length; i += 2) {
        const id = entries[i] as string
        if (!seen.has(id)) fresh.push([id, entries[i + 1] as string])
        seen.add(id)
      }
      if (fresh.length === 0) return deleted
      const replies = await Promise.all(fresh.map(async ([id]) =>
        await runScript(client, 'csDeleteConversation', conversationKeyList(conversationKeys(keyPrefix, id)), '', userId, ...reachArgs(reach))))
      for (const [id] of fresh) this.#options.views.forget(id)
      deleted += replies.filter((reply) => reply[0] === 'OK').length
      kept += replies.filter((reply) => reply[0] === 'OUT_OF_REACH').length
      // Each deleted conversation's entry goes with its event on the user's feed; an entry that pointed at nothing goes silently.
      await Promise.all(fresh.map(async ([id, score], i) => {
        const [status, , , version, data] = replies[i] as [string, string, number, number, string]
        if (status === 'OK') await touchIndex(client, keyPrefix, 'REM', userId, id, score, '', { type: 'conversation.deleted', version, data })
      }))
      const gone = fresh.filter((_, i) => replies[i]?.[0] === 'NOT_FOUND')
      if (gone.length > 0) await runScript(client, 'csRemoveIndexEntries', [index], ...gone.flat())
    }
  }

  async #positionsAfter (index: string, after: ListCursor | undefined, count: number): Promise<ListCursor[]> {
    const entries = await runScript(this.#options.client, 'csIndexEntriesAfter', [index],
      after === undefined ? '+inf' : after.updatedAt, after === undefined ? '' : after.id, count) as unknown as string[]
    const positions: ListCursor[] = []
    for (let i = 0; i < entries.length; i += 2) positions.push({ id: entries[i] as string, updatedAt: Number(entries[i + 1]) })
    return positions
  }

  /**
   * Summaries first (one HMGET each): they decide what to keep without loading messages.
   * Entries whose conversation is gone (or another user's) are stale; old ones go to `stale`.
   * Of the others, those `wanted` are kept (the tenant asked for, within the caller's reach).
   */
  async #summaries (
    userId: string, positions: ListCursor[], wanted: (item: ConversationSummary) => boolean, stale: Array<string | number>
  ): Promise<Found[]> {
    const { views, clock, staleAfterMs } = this.#options
    const now = clock()
    const reads = await views.summaries(positions.map((position) => position.id))
    const kept: Found[] = []
    positions.forEach((position, i) => {
      const read = reads[i]
      if (read === undefined || read.userId !== userId) {
        // A stale entry: its conversation expired, was deleted, or is being created.
        if (now - position.updatedAt > staleAfterMs) stale.push(position.id, position.updatedAt)
        return
      }
      const item = read.view
      if (item !== undefined && wanted(item)) kept.push({ position, item, fingerprint: read.fingerprint })
    })
    return kept
  }

  /**
   * The full view: a conversation whose summary still has the fingerprint of a full view
   * this process validated is answered from it; the others are read again, atomically with
   * their messages, and one gone or corrupt by then makes room for the next.
   */
  async #withMessages (kept: Found[], wanted: number): Promise<Found[]> {
    const { views } = this.#options
    const found: Found[] = []
    for (let next = 0; next < kept.length && found.length < wanted;) {
      const chunk = kept.slice(next, next + wanted - found.length)
      next += chunk.length
      const records = await Promise.all(chunk.map(async ({ position, fingerprint }) =>
        views.cachedFull(position.id, fingerprint)?.view ?? await views.read(position.id, 'all')))
      chunk.forEach((listed, i) => {
        const record = records[i]
        if (record === undefined) return
        const item = Array.isArray(record) ? quietly(() => views.fullOf(listed.position.id, record)) : record
        if (item !== undefined) found.push({ ...listed, item })
      })
    }
    return found
  }
}
