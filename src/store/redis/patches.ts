import type { Cluster, Redis } from 'ioredis'
import { ConversationNotFoundError } from '../../errors.js'
import type { Conversation, PatchConversationBody } from '../../schemas.js'
import { canReach, checkPreconditions, mergePatch, tagOf, toSummary, ttlSecondsOf, type StoreLimits } from '../conversation-rules.js'
import { eventFields, positionOf } from '../events.js'
import type { UserFeedEvent } from './feeds.js'
import { ownTtlArg, runScript } from './commands.js'
import type { Deadline } from './errors.js'
import { conversationKeyList, conversationKeys } from './keys.js'
import type { RedisViews } from './views.js'
import type { Preconditions, Reach, TaggedConversation } from '../types.js'

export interface RedisPatchesOptions {
  client: Redis | Cluster
  keyPrefix: string
  limits: StoreLimits
  clock: () => number
  views: RedisViews
  /** Moves the owner's index entry to a new updatedAt (ZADD GT), with the write's event on the owner's feed. */
  touchIndex: (userId: string, id: string, updatedAt: number, expiresAt: number, event: UserFeedEvent) => Promise<void>
  /** Tells the appends who owns a conversation (one round trip per append, see appends.ts). */
  knowOwner: (id: string, userId: string) => void
}

/**
 * PATCH of a conversation with optimistic concurrency: merged in Node, then a
 * compare-and-set on the tag inside Redis (replace-body.lua), because merging in Lua would
 * re-encode user JSON with cjson, which is lossy. Other writes can only delay it; the
 * operation's deadline bounds the retries.
 */
export async function patchConversation (
  options: RedisPatchesOptions, id: string, patch: PatchConversationBody, preconditions: Preconditions, reach: Reach, deadline: Deadline
): Promise<TaggedConversation> {
  const { client, keyPrefix, limits, clock, views, touchIndex, knowOwner } = options
  const keys = conversationKeyList(conversationKeys(keyPrefix, id))
  for (;;) {
    deadline.throwIfAborted()
    const raw = await views.read(id, 'none')
    if (raw === undefined) throw new ConversationNotFoundError(id)
    const current = views.parse(id, raw, 'none')
    // The compare-and-set below fails if the owner or tenant changed since this read.
    if (!canReach(reach, current)) throw new ConversationNotFoundError(id)
    const currentTag = tagOf(raw[8], current.version)
    checkPreconditions(currentTag, preconditions)
    const { id: _id, userId, createdAt, updatedAt: _u, expiresAt: _e, version: _v, messages: _m, messageCount: _c, ...body } =
      mergePatch(current, patch) as Conversation
    const reply = await runScript(client, 'csReplaceBody', keys, currentTag, clock(), ttlSecondsOf(body, limits) * 1000, JSON.stringify(body), ownTtlArg(body))
    if (reply[0] === 'CONFLICT') continue
    if (reply[0] === 'NOT_FOUND') throw new ConversationNotFoundError(id)
    const [, version, updatedAt, expiresAt, count, messages, lastEvent] = reply as [string, number, number, number, string, string, number]
    knowOwner(id, userId)
    const written = views.parse(id, [
      JSON.stringify(body), userId, String(Date.parse(createdAt)), String(updatedAt), String(expiresAt), String(version), count, messages, raw[8], ''
    ], 'all')
    await touchIndex(userId, id, updatedAt, expiresAt, { type: 'conversation.updated', version, data: eventFields.conversation(toSummary(written)) })
    return { ...written, etag: tagOf(raw[8], version), position: positionOf(raw[8], lastEvent) }
  }
}
