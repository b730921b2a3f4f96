import { InvalidRequestError } from '../errors.js'
import type { ListCursor } from '../store/types.js'

// Cursors are opaque to clients: base64url JSON of the last item's list position.

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
