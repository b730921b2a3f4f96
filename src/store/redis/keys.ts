// The one place that knows the Redis key layout.
//
//   <prefix>conv:{<id>}              hash: body (JSON), userId, createdAt, updatedAt, expiresAt, version,
//                                    count (messages now), seq (the last message position), inc (incarnation),
//                                    ttl (its own TTL in ms, when it has one)
//   <prefix>conv:{<id>}:order        sorted set: message id scored by its position (append order)
//   <prefix>conv:{<id>}:bodies       hash: message id → message JSON
//   <prefix>conv:{<id>}:tokens       hash: message id → its token count
//   <prefix>conv:{<id>}:message-ids  set: every message id ever used (deleted ones stay used)
//   <prefix>conv:{<id>}:workflow     hash: body (JSON), version, updatedAt, expiresAt, inc
//   <prefix>conv:{<id>}:messages     list of message JSON: the layout of the release before,
//                                    read while present and migrated by the next message write
//                                    and per in_progress message s:, e:, n:, a:<messageId> (lib/conversation.lua)
//   <prefix>user:{<userId>}:index    sorted set: conversation id scored by updatedAt
//   <prefix>user:{<userId>}:feed     hash: inc (the user's feed's epoch), ev (its events so far), d:<id> (recent
//                                    deletions); its log is the stream <feed>:events:<inc>, its channel <feed>:live,
//                                    and <feed>:graves dates the deletions (lua/lib/user-feed.lua)
//   <prefix>streams                  sorted set: '<id> <messageId>' of the streams to time out, scored by
//                                    when each may be idle (idle-streams.ts)
//
// The braces are Redis Cluster hash tags: all keys of one conversation share a slot, so a
// script can change them atomically. Ids and user ids cannot contain braces (see schemas).

export interface ConversationKeys {
  doc: string
  order: string
  bodies: string
  tokens: string
  messageIds: string
  workflow: string
  legacyMessages: string
}

export function conversationKeys (prefix: string, id: string): ConversationKeys {
  const doc = `${prefix}conv:{${id}}`
  return {
    doc,
    order: `${doc}:order`,
    bodies: `${doc}:bodies`,
    tokens: `${doc}:tokens`,
    messageIds: `${doc}:message-ids`,
    workflow: `${doc}:workflow`,
    legacyMessages: `${doc}:messages`
  }
}

/** The seven keys a conversation script takes, in the order the scripts name them. */
export function conversationKeyList (keys: ConversationKeys): string[] {
  return [keys.doc, keys.order, keys.bodies, keys.tokens, keys.messageIds, keys.workflow, keys.legacyMessages]
}

export function userIndexKey (prefix: string, userId: string): string {
  return `${prefix}user:{${userId}}:index`
}

export function userFeedKey (prefix: string, userId: string): string {
  return `${prefix}user:{${userId}}:feed`
}

export function idleStreamsKey (prefix: string): string {
  return `${prefix}streams`
}
