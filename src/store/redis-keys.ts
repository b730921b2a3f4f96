// The one place that knows the Redis key layout.
//
//   <prefix>conv:{<id>}              hash: body (JSON), userId, createdAt, updatedAt, expiresAt, version, count
//   <prefix>conv:{<id>}:messages     list of message JSON, in order
//   <prefix>conv:{<id>}:message-ids  set of message ids, for idempotent appends
//   <prefix>conv:{<id>}:workflow     hash: body (JSON), version, updatedAt, expiresAt
//   <prefix>user:{<userId>}:index    sorted set: conversation id scored by updatedAt
//
// The braces are Redis Cluster hash tags: all keys of one conversation share a slot, so a
// script can change them atomically. Ids and user ids cannot contain braces (see schemas).

export interface ConversationKeys {
  doc: string
  messages: string
  messageIds: string
  workflow: string
}

export function conversationKeys (prefix: string, id: string): ConversationKeys {
  const doc = `${prefix}conv:{${id}}`
  return { doc, messages: `${doc}:messages`, messageIds: `${doc}:message-ids`, workflow: `${doc}:workflow` }
}

export function userIndexKey (prefix: string, userId: string): string {
  return `${prefix}user:{${userId}}:index`
}
