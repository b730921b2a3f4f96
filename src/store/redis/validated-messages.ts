import { LRUCache } from 'lru-cache'
import { MessageSchema, type Message, type MessageWithTokens } from '../../schemas.js'
import { compileSerializer, flatCopy, VIEW_JSON } from '../../serialization.js'
import { withTokens } from '../conversation-rules.js'
import { InvalidRecordError, parseMessage } from './records.js'

// A page or a context window answers stored messages that the last read of the same
// conversation mostly answered too: a chat's window moves by a message or two a turn. A
// process keeps each stored body it has validated, keyed by its exact bytes, with the
// message and the JSON to answer for it; a body read again skips JSON.parse, zod and the
// serialiser. The key is the whole body, so an edited or corrupted message is a miss and is
// validated again: the cache can never answer bytes that did not pass the schema.

/** A message as a page answers it, with the JSON to send for it as it is. */
export type AnsweredMessage = MessageWithTokens & { [VIEW_JSON]: string }

/** A validated stored message and its JSON; shared by every read that finds it, so never changed. */
export interface ValidatedMessage { readonly message: Message, readonly json: string }
type Entry = ValidatedMessage

const serializeMessage = compileSerializer(MessageSchema)

// The key and the JSON are usually one string; the parsed message about twice its size.
const sizeOf = (entry: Entry, key: string): number => (key === entry.json ? 3 : 4) * entry.json.length + 256

/** A bounded cache of validated stored messages; 0 bytes turns it off. */
export class ValidatedMessages {
  readonly #entries: LRUCache<string, Entry> | undefined

  constructor (maxBytes: number) {
    if (maxBytes > 0) this.#entries = new LRUCache<string, Entry>({ maxSize: maxBytes, sizeCalculation: sizeOf })
  }

  /**
   * The messages of a script's reply, one stored body per line (lua/lib/conversation.lua,
   * messageLines). A body that fails validation is reported and left out.
   */
  read (lines: string, onInvalid: (reason: string) => void): ValidatedMessage[] {
    if (lines === '') return []
    const read: ValidatedMessage[] = []
    for (const line of lines.split('\n')) {
      const entry = this.#entries?.get(line) ?? this.#validate(line, onInvalid)
      if (entry !== undefined) read.push(entry)
    }
    return read
  }

  /** What the cache holds, in the bytes its bound counts. */
  get bytes (): number {
    return this.#entries?.calculatedSize ?? 0
  }

  #validate (line: string, onInvalid: (reason: string) => void): Entry | undefined {
    let message: Message
    try {
      message = parseMessage(line)
    } catch (error) {
      if (!(error instanceof InvalidRecordError)) throw error
      onInvalid(error.message)
      return undefined
    }
    if (this.#entries === undefined) return { message, json: serializeMessage(message) }
    const json = flatCopy(serializeMessage(message))
    const entry = { message, json }
    this.#entries.set(json === line ? json : flatCopy(line), entry)
    return entry
  }
}

/** A page's item: a copy of the message, with its JSON (copied as withTokens copies, for speed). */
export function pageItem ({ message, json }: ValidatedMessage): AnsweredMessage {
  const item = Object.assign({}, message) as AnsweredMessage
  item[VIEW_JSON] = json
  return item
}

/** A window's item: a copy of the message with its token count, in its JSON too. */
export function windowItem ({ message, json }: ValidatedMessage, tokens: number): AnsweredMessage {
  const item = withTokens(message, tokens) as AnsweredMessage
  item[VIEW_JSON] = `${json.slice(0, -1)},"tokens":${tokens}}`
  return item
}
