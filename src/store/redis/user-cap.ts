import { Cluster, type Redis } from 'ioredis'
import { runScript, type ScriptName } from './commands.js'
import { conversationKeyList, conversationKeys, userIndexKey } from './keys.js'
import type { RedisViews } from './views.js'
import { touchIndex } from './feeds.js'

export interface RedisUserCapOptions {
  client: Redis | Cluster
  keyPrefix: string
  /** MAX_CONVERSATIONS_PER_USER. */
  cap: number
  /** Index entries this much older than their conversation's absence are pruned. */
  staleAfterMs: number
  clock: () => number
  views: RedisViews
}

/** The script that creates a conversation, with its keys and its cap argument (lib/user-cap.lua). */
export interface CreateScript { name: ScriptName, keys: string[], cap: string }

/**
 * The per-user cap on Redis. On a single Redis it is part of the create's own script,
 * which then also takes the owner's index (lib/user-cap.lua). On a cluster the index lives
 * in the user's slot and each conversation in its own, so it is a step after the create's
 * script, in the same request. Either way it is taken again before every list of the user,
 * so that a crash between a create and its step delays the deletion but cannot skip it.
 */
export class RedisUserCap {
  readonly #options: RedisUserCapOptions
  readonly #inScript: boolean

  constructor (options: RedisUserCapOptions) {
    this.#options = options
    this.#inScript = !(options.client instanceof Cluster)
  }

  /** The create script `name` (or its capped form, on a single Redis) for a conversation of `userId`. */
  createScript (name: 'csWriteConversation' | 'csRestoreConversation', keys: string[], userId: string): CreateScript {
    if (!this.#inScript) return { name, keys, cap: '' }
    const { keyPrefix, cap, staleAfterMs } = this.#options
    return { name: `${name}Capped`, keys: [...keys, userIndexKey(keyPrefix, userId)], cap: `${cap} ${staleAfterMs}` }
  }

  /** After a create: the step that the create's script did not take itself. */
  async afterCreate (userId: string): Promise<void> {
    if (!this.#inScript) await this.trim(userId)
  }

  /**
   * Deletes the user's least recently updated conversations until at most the cap are left.
   * Entries whose conversation is gone do not count, and old ones are pruned; one a write
   * moved since it was read is left, as it is no longer the oldest.
   */
  async trim (userId: string): Promise<void> {
    const { client, keyPrefix, cap, views, clock, staleAfterMs } = this.#options
    const index = userIndexKey(keyPrefix, userId)
    if (await client.zcard(index) <= cap) return
    const entries = await client.zrange(index, '0', '-1', 'WITHSCORES')
    const oldestFirst: Array<[string, number]> = []
    for (let i = 0; i < entries.length; i += 2) oldestFirst.push([entries[i] as string, Number(entries[i + 1])])
    const reads = await views.summaries(oldestFirst.map(([id]) => id))
    const live = oldestFirst.filter((_, i) => reads[i]?.userId === userId)
    const now = clock()
    const stale = oldestFirst.filter(([, score], i) => reads[i]?.userId !== userId && now - score > staleAfterMs)
    const victims = live.slice(0, Math.max(0, live.length - cap))
    const replies = await Promise.all(victims.map(async ([id, score]) =>
      await runScript(client, 'csEvictConversation', conversationKeyList(conversationKeys(keyPrefix, id)), userId, score)))
    for (const [id] of victims) views.forget(id)
    // An evicted conversation's entry goes with its event on the user's feed; a gone one's goes silently.
    await Promise.all(victims.map(async ([id, score], i) => {
      const [status, version, data] = replies[i] as [string, string, string]
      if (status === 'OK') await touchIndex(client, keyPrefix, 'REM', userId, id, score, '', { type: 'conversation.deleted', version, data })
    }))
    const removable = [...stale, ...victims.filter((_, i) => replies[i]?.[0] === 'GONE')]
    if (removable.length > 0) await runScript(client, 'csRemoveIndexEntries', [index], ...removable.flat())
  }
}
