import { setTimeout as sleep } from 'node:timers/promises'
import { createParser } from 'eventsource-parser'

// The soak's live part: producers stream messages (append in_progress, numbered deltas,
// finish) while followers read each conversation's event feed, resuming from their last id
// whenever a stream ends or fails, through every Redis fault. At the end each follower must
// hold every acknowledged event of its conversation exactly once, in order. One more
// follower reads the user's feed the same way; it is reported, not judged: its events are
// written by the step after each write (docs/live.md), which a fault can cut off.

const DELTAS_PER_MESSAGE = 20

/** The number at the end of a position (`<incarnation>-<n>`). */
const seqOf = (id) => Number(id.slice(id.lastIndexOf('-') + 1))

export class SoakFeeds {
  #url
  #headers
  #signal
  #conversations = []
  #followers = []
  #userId = `soak-feeds-${Date.now().toString(36)}`
  #userFollower
  counts = { acknowledged: 0, delivered: 0, reconnects: 0, writeRetries: 0 }

  constructor ({ url, apiKey, signal }) {
    this.#url = url
    this.#headers = { authorization: `Bearer ${apiKey}` }
    this.#signal = signal
  }

  /** Creates the conversations and opens their followers; answers once every follower has its head. */
  async start ({ conversations, followersEach }) {
    const listed = await this.#request('GET', `/v1/users/${this.#userId}/conversations?limit=1`)
    // Counted apart: the judged counts are those of the conversations' followers.
    this.#userFollower = this.#follow(`/v1/users/${this.#userId}/events`, listed.headers.get('last-event-id'), { delivered: 0, reconnects: 0 })
    for (let i = 0; i < conversations; i++) {
      const id = `soak-feed-${Date.now().toString(36)}-${i}`
      const created = await this.#request('POST', '/v1/conversations', { id, userId: this.#userId })
      const conversation = { id, start: created.headers.get('last-event-id'), acknowledged: [] }
      this.#conversations.push(conversation)
      for (let f = 0; f < followersEach; f++) this.#followers.push(Object.assign(this.#follow(`/v1/conversations/${id}/events`, conversation.start), { conversation }))
    }
    await Promise.all([...this.#followers, this.#userFollower].map((follower) => follower.opened))
  }

  /** Streams messages into every conversation until `endAt`. */
  async produce ({ endAt, deltaEveryMs }) {
    await Promise.all(this.#conversations.map(async (conversation) => {
      for (let n = 0; Date.now() < endAt && !this.#signal.aborted; n++) await this.#message(conversation, `s${n}`, endAt, deltaEveryMs)
    }))
  }

  /** Waits (at most `ms`) for the followers to catch up, stops them, and counts losses, duplicates and disorder. */
  async finish (ms) {
    const expected = new Map(this.#conversations.map((c) => [c.id, c.acknowledged]))
    const caughtUp = () => this.#followers.every((f) => expected.get(f.conversation.id).every((id) => f.seen.has(id)))
    for (let waited = 0; !caughtUp() && waited < ms; waited += 100) await sleep(100)
    for (const follower of [...this.#followers, this.#userFollower]) follower.stop()
    let lost = 0; let duplicated = 0; let outOfOrder = 0
    for (const follower of this.#followers) {
      lost += expected.get(follower.conversation.id).filter((id) => !follower.seen.has(id)).length
      duplicated += follower.duplicated
      outOfOrder += follower.outOfOrder
    }
    return { followers: this.#followers.length, ...this.counts, lost, duplicated, outOfOrder, userFeed: await this.#userFeedReport() }
  }

  /** The user's feed: its events, and for how many conversations the last event names the version a read answers now. */
  async #userFeedReport () {
    const { seen, duplicated, outOfOrder, versions } = this.#userFollower
    let current = 0
    for (const { id } of this.#conversations) {
      const read = await this.#request('GET', `/v1/conversations/${id}?view=summary`).catch(() => undefined)
      if (read?.status === 200 && (await read.json()).version === versions.get(id)) current++
    }
    return { events: seen.size, duplicated, outOfOrder, current, conversations: this.#conversations.length }
  }

  /** One streamed message: started, DELTAS_PER_MESSAGE deltas, finished; each write retried as a client would. */
  async #message (conversation, messageId, endAt, deltaEveryMs) {
    const path = `/v1/conversations/${conversation.id}/messages`
    await this.#write(conversation, 'POST', path, { messages: [{ id: messageId, role: 'assistant', status: 'in_progress' }] })
    for (let seq = 1; seq <= DELTAS_PER_MESSAGE && Date.now() < endAt; seq++) {
      await this.#write(conversation, 'POST', `${path}/${messageId}/deltas`, { seq, text: ` ${seq}` })
      await sleep(deltaEveryMs)
    }
    await this.#write(conversation, 'PATCH', `${path}/${messageId}`, { status: 'completed' }, [409])
  }

  /** A write, retried through 503s and dropped connections until it is answered; its event id is acknowledged. */
  async #write (conversation, method, path, body, alsoFine = []) {
    for (let attempt = 0; !this.#signal.aborted; attempt++) {
      if (attempt > 0) { this.counts.writeRetries++; await sleep(Math.min(1000, 50 * 2 ** attempt)) }
      const response = await this.#request(method, path, body).catch(() => undefined)
      if (response === undefined || response.status === 503) continue
      // A retried finish that had landed answers 409: the message is no longer in progress.
      if (alsoFine.includes(response.status)) return
      if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
      // A retried append of duplicates or a repeated delta answers the event it had written, or an earlier one.
      const id = response.headers.get('last-event-id')
      const known = conversation.acknowledged
      if (known.length === 0 || seqOf(id) > seqOf(known.at(-1))) known.push(id)
      this.counts.acknowledged = this.#conversations.reduce((sum, c) => sum + c.acknowledged.length, 0)
      return
    }
  }

  async #request (method, path, body) {
    const response = await fetch(`${this.#url}${path}`, {
      method, headers: { ...this.#headers, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000)
    })
    await response.clone().arrayBuffer()
    return response
  }

  /** A follower of the feed at `path` that resumes from its last id whenever its stream ends or fails; it adds to `counts`. */
  #follow (path, start, counts = this.counts) {
    const follower = { seen: new Set(), last: start, duplicated: 0, outOfOrder: 0, versions: new Map(), abort: new AbortController() }
    let opened
    follower.opened = new Promise((resolve) => { opened = resolve })
    follower.stop = () => follower.abort.abort()
    const onEvent = (event) => {
      if (follower.seen.has(event.id)) follower.duplicated++
      else if (seqOf(event.id) !== seqOf(follower.last) + 1) follower.outOfOrder++
      follower.seen.add(event.id)
      follower.last = event.id
      const { conversationId, version } = JSON.parse(event.data)
      follower.versions.set(conversationId, version)
      counts.delivered++
    }
    follower.done = (async () => {
      for (let attempt = 0; !follower.abort.signal.aborted && !this.#signal.aborted; attempt++) {
        if (attempt > 0) { counts.reconnects++; await sleep(200) }
        try {
          const response = await fetch(`${this.#url}${path}`, {
            headers: { ...this.#headers, accept: 'text/event-stream', 'last-event-id': follower.last }, signal: follower.abort.signal
          })
          if (response.status !== 200) { await response.arrayBuffer(); continue }
          opened()
          const parser = createParser({ onEvent })
          const decoder = new TextDecoder()
          for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }))
        } catch {}
      }
      opened()
    })()
    return follower
  }
}
