import { MessageWithTokensSchema, type AppendResult, type MessagePageBody } from '../schemas.js'
import { compileSerializer, VIEW_JSON } from '../serialization.js'

// Pages, windows and appends that answer a window send each message's JSON as the store
// read it, when it has it (a Redis store keeps the validated bytes of what it reads:
// src/store/redis/validated-messages.ts); the rest of the body is the schema's fields,
// written here in the schema's order.

type Item = MessagePageBody['items'][number] & { [VIEW_JSON]?: string }

const serializeItem = compileSerializer(MessageWithTokensSchema)

function itemsJson (items: Item[]): string {
  let json = '['
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Item
    json += (i === 0 ? '' : ',') + (item[VIEW_JSON] ?? serializeItem(item))
  }
  return `${json}]`
}

/** A page of messages, with its JSON. */
export function pageBody<T extends MessagePageBody> (page: T): T & { [VIEW_JSON]: string } {
  const totalTokens = page.totalTokens === undefined ? '' : `,"totalTokens":${page.totalTokens}`
  const json = `{"items":${itemsJson(page.items)},"nextCursor":${JSON.stringify(page.nextCursor)},"messageCount":${page.messageCount}${totalTokens}}`
  return { ...page, [VIEW_JSON]: json }
}

/** An append's result, with its JSON when it answers a window. */
export function appendBody<T extends AppendResult> (result: T): T & { [VIEW_JSON]?: string } {
  const { window } = result
  if (window === undefined) return result
  const windowJson = `{"items":${itemsJson(window.items)},"totalTokens":${window.totalTokens},"messageCount":${window.messageCount}}`
  const json = `{"appended":${result.appended},"skipped":${result.skipped},"version":${result.version},"messageCount":${result.messageCount},"window":${windowJson}}`
  return { ...result, [VIEW_JSON]: json }
}
