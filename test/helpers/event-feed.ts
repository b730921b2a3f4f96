import { setTimeout as sleep } from 'node:timers/promises'
import { createParser, type EventSourceMessage } from 'eventsource-parser'

// A follower of an event feed over a real socket: fetch, and eventsource-parser for the
// stream. Events collect as they arrive; `until` waits for a number of them.

export interface Feed {
  status: number
  headers: Headers
  /** The JSON body of a refused request (4xx, 5xx). */
  body?: Record<string, any>
  events: EventSourceMessage[]
  /** Comment lines (heartbeats) seen so far. */
  comments: string[]
  /** Resolves once the server has ended the stream. */
  ended: Promise<void>
  /** Waits until `count` events have arrived (at most `timeoutMs`), and answers them all. */
  until: (count: number, timeoutMs?: number) => Promise<EventSourceMessage[]>
  close: () => void
}

export async function openFeed (url: string, headers: Record<string, string> = {}): Promise<Feed> {
  const abort = new AbortController()
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal })
  const events: EventSourceMessage[] = []
  const comments: string[] = []
  if (response.status !== 200) {
    const body = await response.json() as Record<string, any>
    return { status: response.status, headers: response.headers, body, events, comments, ended: Promise.resolve(), until: async () => events, close: () => {} }
  }
  const parser = createParser({ onEvent: (event) => { events.push(event) }, onComment: (comment) => { comments.push(comment) } })
  const ended = (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }))
    } catch {
      // Closed by the test.
    }
  })()
  return {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    ended,
    until: async (count, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      while (events.length < count && Date.now() < deadline) await sleep(10)
      return events
    },
    close: () => { abort.abort() }
  }
}

/** The parsed data of events. */
export const dataOf = (events: EventSourceMessage[]): Array<Record<string, any>> => events.map((event) => JSON.parse(event.data))
