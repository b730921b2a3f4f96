import { Cluster, type Redis } from 'ioredis'
import type { Conversation, ConversationSummary, ConversationView } from '../../schemas.js'
import { tagOf, toSummary } from '../conversation-rules.js'
import { positionOf } from '../events.js'
import { runScript } from './commands.js'
import { conversationKeyList, conversationKeys } from './keys.js'
import { fingerprintOf, fingerprintOfLength, InvalidRecordError, parseConversation, SUMMARY_FIELDS, type RawConversation } from './records.js'
import type { ValidatedMessages } from './validated-messages.js'
import type { MessageSelection, TaggedView } from '../types.js'
import type { ViewCache } from '../view-cache.js'

/** A listed conversation's summary read: its owner, fingerprint, and view (none when corrupt). */
export interface SummaryRead { userId: string, fingerprint: string, view: ConversationSummary | undefined }

export interface RedisViewsOptions {
  client: Redis | Cluster
  keyPrefix: string
  cache: ViewCache
  /** Stored messages this process has validated, by their bytes. */
  validated: ValidatedMessages
  /** Validates a stored record: a bad one is reported and becomes CORRUPT_RECORD. */
  corruptUnless: <T>(id: string, parse: () => T) => T
}

/**
 * What reads answer: a conversation's full view, its newest messages or its summary, each
 * validated against the schema once per fingerprint in this process (view-cache.ts), and
 * validated on every read when the record lacks the current stamp.
 */
export class RedisViews {
  readonly #options: RedisViewsOptions

  constructor (options: RedisViewsOptions) {
    this.#options = options
  }

  async get (id: string, selection: MessageSelection): Promise<TaggedView | undefined> {
    if (selection === 'all') return await this.#full(id)
    const raw = await this.read(id, selection, 'events')
    if (raw === undefined) return undefined
    const view = selection === 'none' ? this.summaryOf(id, raw) : this.parse(id, raw, selection)
    return { ...view, etag: tagOf(raw[8], view.version), position: positionOf(raw[8], Number(raw[10])) }
  }

  /**
   * One consistent snapshot of the record with the messages asked for. Given the known
   * fingerprint of a full read, only where the event feed stands when the record still has it.
   */
  async read (id: string, selection: MessageSelection, events?: 'events'): Promise<RawConversation | undefined>
  async read (id: string, selection: 'all', events: 'events', known: string): Promise<RawConversation | { same: string } | undefined>
  async read (id: string, selection: MessageSelection, events?: 'events', known = ''): Promise<RawConversation | { same: string } | undefined> {
    const keys = conversationKeys(this.#options.keyPrefix, id)
    // A summary that need not say where the event feed stands (a list item) is one HMGET.
    if (selection === 'none' && events === undefined) {
      // One hash holds everything but the messages, so a plain HMGET is a consistent
      // snapshot, and far cheaper for Redis than a script (lists read 51 of these).
      const [body, userId, createdAt, updatedAt, expiresAt, version, count, incarnation, stamp] =
        await this.#options.client.hmget(keys.doc, ...SUMMARY_FIELDS)
      if (version === null || version === undefined) return undefined
      const inc = incarnation ?? '0'
      return [body, userId, createdAt, updatedAt, expiresAt, version, count, '', inc, fingerprintOf(inc, version, stamp ?? null, body ?? '')] as RawConversation
    }
    if (known !== '') {
      const same = await this.#unchanged(keys.doc, known)
      if (same !== undefined) return same
    }
    const reply = await runScript(this.#options.client, 'csReadConversation', conversationKeyList(keys),
      selection === 'all' ? '' : selection === 'none' ? 0 : selection.last)
    return reply[0] === 'OK' ? reply.slice(1).map(String) as RawConversation : undefined
  }

  /**
   * Where the event feed stands, when the record still has the fingerprint known. Most reads
   * find the version read last time, and two plain commands sent together cost Redis far
   * less than a script. They are not one snapshot, but the HMGET runs first: a match means
   * the version known was current when it ran, so answering it is answering that moment.
   */
  async #unchanged (doc: string, known: string): Promise<{ same: string } | undefined> {
    const { client } = this.#options
    const [[version, incarnation, stamp, lastEvent], bodyBytes] = await Promise.all([client.hmget(doc, 'version', 'inc', 'sv', 'ev'), client.hstrlen(doc, 'body')])
    if (version === null || version === undefined) return undefined
    return fingerprintOfLength(incarnation ?? '0', version, stamp ?? null, bodyBytes) === known ? { same: lastEvent ?? '0' } : undefined
  }

  /**
   * The summaries of some conversations (undefined for one that is gone), for a list. Off a
   * cluster one script reads them all, and answers only 'SAME' for those this process has
   * validated in their current version; on a cluster each is its own read.
   */
  async summaries (ids: string[]): Promise<Array<SummaryRead | undefined>> {
    const { client, keyPrefix } = this.#options
    if (client instanceof Cluster || ids.length === 0) return await Promise.all(ids.map(async (id) => await this.#summaryRead(id)))
    const known = ids.map((id) => this.#cache.fingerprintOf('summary', id) ?? '')
    const replies = await runScript(client, 'csReadSummaries', ids.map((id) => conversationKeys(keyPrefix, id).doc), ...known) as unknown as
      Array<'SAME' | Array<string | null>>
    return await Promise.all(replies.map(async (reply, i) => {
      const id = ids[i] as string
      if (reply !== 'SAME') return reply[5] === null ? undefined : this.#summaryReadOf(id, summaryRaw(reply))
      const cached = this.#cache.get<ConversationSummary>('summary', id, known[i] as string)
      // Evicted while Redis answered: read it on its own.
      return cached === undefined ? await this.#summaryRead(id) : { userId: cached.view.userId, fingerprint: known[i] as string, view: cached.view }
    }))
  }

  /** The validated record; throws CORRUPT_RECORD. */
  parse (id: string, raw: RawConversation, selection: MessageSelection): Conversation {
    return this.#options.corruptUnless(id, () => {
      // One message that fails validation makes the whole conversation corrupt, as before.
      const messages = this.#options.validated.read(raw[7], (reason) => { throw new InvalidRecordError(reason) })
      return parseConversation(id, raw, selection, messages.map(({ message }) => message)).conversation
    })
  }

  /** The summary of a record read without messages; throws CORRUPT_RECORD. */
  summaryOf (id: string, raw: RawConversation): ConversationSummary {
    return this.#cache.get<ConversationSummary>('summary', id, raw[9])?.view ??
      this.#remember('summary', id, raw, toSummary(this.parse(id, raw, 'none')))
  }

  /** The full view of a record read with all its messages; throws CORRUPT_RECORD. */
  fullOf (id: string, raw: RawConversation): ConversationView {
    return this.#remember('full', id, raw, this.parse(id, raw, 'all'))
  }

  /** The full view validated for this fingerprint, when this process still has it. */
  cachedFull (id: string, fingerprint: string): { view: ConversationView, etag: string } | undefined {
    return fingerprint === '' ? undefined : this.#cache.get<ConversationView>('full', id, fingerprint)
  }

  async #full (id: string): Promise<TaggedView | undefined> {
    const known = this.#cache.fingerprintOf('full', id)
    const raw = known === undefined ? await this.read(id, 'all', 'events') : await this.read(id, 'all', 'events', known)
    if (raw === undefined) return undefined
    if (!('same' in raw)) {
      const view = this.fullOf(id, raw)
      return { ...view, etag: tagOf(raw[8], view.version), position: positionOf(raw[8], Number(raw[10])) }
    }
    const cached = this.cachedFull(id, known as string)
    // Evicted while Redis answered: read it whole.
    return cached === undefined ? await this.#full(id) : { ...cached.view, etag: cached.etag, position: positionOf(cached.etag.slice(0, cached.etag.lastIndexOf('.')), Number(raw.same)) }
  }

  async #summaryRead (id: string): Promise<SummaryRead | undefined> {
    const raw = await this.read(id, 'none')
    return raw === undefined ? undefined : this.#summaryReadOf(id, raw)
  }

  #summaryReadOf (id: string, raw: RawConversation): SummaryRead {
    return { userId: raw[1], fingerprint: raw[9], view: quietly(() => this.summaryOf(id, raw)) }
  }

  #remember<T extends ConversationView | ConversationSummary> (kind: 'full' | 'summary', id: string, raw: RawConversation, view: T): T {
    const fingerprint = raw[9]
    return fingerprint === '' ? view : this.#cache.remember(kind, id, fingerprint, tagOf(raw[8], view.version), view)
  }

  /** After a write by this process (see ViewCache.forget). */
  forget (id: string): void {
    this.#cache.forget(id)
  }

  get cacheBytes (): number {
    return this.#cache.bytes
  }

  get #cache (): ViewCache {
    return this.#options.cache
  }
}

/** The summary fields csReadSummaries answers, as a RawConversation without messages. */
function summaryRaw (fields: Array<string | null>): RawConversation {
  const [body, userId, createdAt, updatedAt, expiresAt, version, count, incarnation, , fingerprint] = fields
  return [body, userId, createdAt, updatedAt, expiresAt, version, count, '', incarnation ?? '0', fingerprint ?? ''] as RawConversation
}

/** A validated view, or undefined for a corrupt record (reported by the parse, then skipped by lists). */
export function quietly<T> (view: () => T): T | undefined {
  try {
    return view()
  } catch {
    return undefined
  }
}
