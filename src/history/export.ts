import { ExportEndSchema, ExportLineSchema } from '../history-schemas.js'
import { compileSerializer } from '../serialization.js'
import type { ConversationPage, ConversationStore, ListCursor, Reach } from '../store/types.js'

// Serialised by their schemas, as responses are: the same fields in the same order from
// either backend, and nothing a schema does not name.
const serializeLine = compileSerializer(ExportLineSchema)
const serializeEnd = compileSerializer(ExportEndSchema)

/** Conversations listed per step of an export. */
const PAGE = 100
/** Conversations read at once: what an export holds in memory, besides one page of ids. */
const AHEAD = 8

/**
 * A user's export, line by line, each line one version of one conversation (a snapshot)
 * and the last `{ "type": "end" }` with their number. The first page is read before the
 * answer starts, so that a store that does not answer gets a 503 rather than a cut export.
 * It walks the user's list: a conversation written while it runs moves to the list's head,
 * and is in the export only if it was reached before.
 */
export async function exportLines (store: ConversationStore, userId: string, reach: Reach): Promise<AsyncGenerator<string>> {
  const first = await page(store, userId, reach)
  return batched(lines(store, userId, reach, first))
}

/** Bytes (roughly: characters) a chunk of the answer gathers before it is written. */
const CHUNK = 64 * 1024

/** Lines gathered into chunks of about CHUNK: one socket write each, rather than one per line. */
async function * batched (source: AsyncGenerator<string>): AsyncGenerator<string> {
  let chunk = ''
  for await (const line of source) {
    chunk += line
    if (chunk.length >= CHUNK) {
      yield chunk
      chunk = ''
    }
  }
  yield chunk
}

async function page (store: ConversationStore, userId: string, reach: Reach, cursor?: ListCursor): Promise<ConversationPage> {
  return await store.listByUser(userId, { limit: PAGE, view: 'summary', ...(cursor === undefined ? {} : { cursor }) }, reach)
}

async function * lines (store: ConversationStore, userId: string, reach: Reach, first: ConversationPage): AsyncGenerator<string> {
  let conversations = 0
  for (let current: ConversationPage | undefined = first; current !== undefined;) {
    for (let next = 0; next < current.items.length; next += AHEAD) {
      // Read together, written in list order; none is read until the reader took the last ones.
      const snapshots = await Promise.all(current.items.slice(next, next + AHEAD).map(async ({ id }) => await store.snapshot(id, undefined, reach)))
      for (const snapshot of snapshots) {
        // Deleted since it was listed, or given to another user.
        if (snapshot === undefined || snapshot.conversation.userId !== userId) continue
        conversations++
        yield serializeLine({ type: 'conversation', conversation: snapshot.conversation, workflowState: snapshot.workflowState ?? null }) + '\n'
      }
    }
    current = current.nextCursor === null ? undefined : await page(store, userId, reach, current.nextCursor)
  }
  yield serializeEnd({ type: 'end', conversations }) + '\n'
}
