import { newIncarnation } from '../conversation-rules.js'
import { eventFields, NO_USER_FEED, type FeedEvent, type UserEventType } from '../events.js'
import type { ConversationSummary } from '../../schemas.js'
import { MemoryEventLog } from './event-log.js'

/**
 * The users' feeds of a memory store: per user, one event per write of one of their
 * conversations (deltas excepted), in the same synchronous step as the write. A feed is
 * dropped once its user has no conversation and no follower; the next one starts a new
 * epoch, and a position of the old one gets a reset.
 */
export class MemoryUserFeeds {
  readonly #feeds = new Map<string, MemoryEventLog>()
  readonly #retained: number

  constructor (retained: number) {
    this.#retained = retained
  }

  /** The position of the newest event of the user's feed: the Last-Event-ID of a list. */
  position (userId: string): string {
    return this.#feeds.get(userId)?.position ?? NO_USER_FEED
  }

  written (type: Exclude<UserEventType, 'conversation.deleted'>, summary: ConversationSummary): void {
    this.#feed(summary.userId).emit(type, summary.version, eventFields.conversation(summary), summary.id)
  }

  /** A conversation left the store; `emptied` says its user has no other. */
  deleted (conversation: { id: string, userId: string, tenantId: string, version: number }, emptied: boolean): void {
    const feed = this.#feed(conversation.userId)
    feed.emit('conversation.deleted', conversation.version, eventFields.deletedFor(conversation.tenantId), conversation.id)
    if (emptied && feed.unfollowed) this.#feeds.delete(conversation.userId)
  }

  /** Follows the user's feed (see MemoryEventLog.follow); closing the last follower of an empty user drops it. */
  follow (userId: string, after: string | undefined, listener: (event: FeedEvent) => void, isEmpty: () => boolean): () => void {
    const feed = this.#feed(userId)
    // A feed that only this follower would keep goes when it leaves, or when its position is refused.
    const leave = (): void => { if (feed.unfollowed && isEmpty() && this.#feeds.get(userId) === feed) this.#feeds.delete(userId) }
    try {
      const close = feed.follow(after, 0, listener)
      return () => {
        close()
        leave()
      }
    } catch (error) {
      leave()
      throw error
    }
  }

  clear (): void {
    this.#feeds.clear()
  }

  #feed (userId: string): MemoryEventLog {
    let feed = this.#feeds.get(userId)
    if (feed === undefined) this.#feeds.set(userId, feed = MemoryEventLog.forUser(userId, newIncarnation(), this.#retained))
    return feed
  }
}
