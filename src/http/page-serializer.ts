import { ConversationListItemSchema } from '../schemas.js'
import { compileSerializer, VIEW_JSON } from '../serialization.js'

const serializeItem = compileSerializer(ConversationListItemSchema)

/**
 * A page of conversations as JSON, item by item: an item that cannot be serialised is
 * skipped and reported, as a corrupt record is, so that one bad record never makes a
 * whole list fail.
 */
export function serializePage (
  items: Array<{ id: string, [VIEW_JSON]?: string }>, nextCursor: string | null, onSkipped: (id: string, error: unknown) => void
): string {
  const parts: string[] = []
  for (const item of items) {
    try {
      parts.push(item[VIEW_JSON] ?? serializeItem(item))
    } catch (error) {
      onSkipped(item.id, error)
    }
  }
  return `{"items":[${parts.join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`
}
