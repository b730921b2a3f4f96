import { InvalidRequestError } from '../errors.js'
import type { ListCursor, MessageCursor } from '../store/types.js'

// Cursors are opaque to clients: base64url JSON of the last item's position.

export function encodeCursor (cursor: ListCursor): string {
  return Buffer.from(JSON.stringify([cursor.updatedAt, cursor.id])).toString('base64url')
}

export function decodeCursor (text: string): ListCursor {
  try {
    const [updatedAt, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[]
    if (Number.isSafeInteger(updatedAt) && typeof id === 'string' && id !== '') {
      return { updatedAt: updatedAt as number, id }
    }
  } catch {
    // Falls through to the 400 below.
  }
  throw new InvalidRequestError('querystring/cursor is not a cursor this service issued')
}

/** A message page's cursor names its conversation and order, so it cannot be used elsewhere. */
export function encodeMessageCursor (conversationId: string, order: 'asc' | 'desc', cursor: MessageCursor): string {
  return Buffer.from(JSON.stringify([conversationId, order, cursor.incarnation, cursor.seq])).toString('base64url')
}

export function decodeMessageCursor (text: string, conversationId: string, order: 'asc' | 'desc'): MessageCursor {
  try {
    const [id, cursorOrder, incarnation, seq] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[]
    if (id === conversationId && cursorOrder === order && typeof incarnation === 'string' && Number.isSafeInteger(seq)) {
      return { incarnation, seq: seq as number }
    }
  } catch {
    // Falls through to the 400 below.
  }
  throw new InvalidRequestError('querystring/cursor is not a cursor of this conversation and order')
}
