import type { LightMyRequestResponse } from 'fastify'
import { Cl100KBase } from 'gpt-tokenizer/encodingParams/cl100k_base'
import { O200KBase } from 'gpt-tokenizer/encodingParams/o200k_base'
import t, { type Test } from 'tap'
import { TOKEN_ENCODINGS, type TokenEncoding } from '../../src/tokens.js'
import type { Backend } from './backends.js'

// Content is data: text that spells a tokenizer's special tokens (`<|endoftext|>`,
// `<|im_start|>`…) is written, read back byte for byte and counted as ordinary text by every
// route that writes messages, run once per backend from the shared API suite.

type Json = Record<string, any>

/** The special-token strings of an encoding, as the tokenizer itself defines them. */
export function specialTokens (encoding: TokenEncoding): string[] {
  const params = encoding === 'o200k_base' ? O200KBase([]) : Cl100KBase([])
  return [...params.specialTokensEncoder.keys()]
}

/** Counts as the contract says: the encoding's tokens of the text, no special token allowed. */
async function ordinaryCounter (encoding: TokenEncoding): Promise<(text: string) => number> {
  const { encode } = encoding === 'o200k_base'
    ? await import('gpt-tokenizer/encoding/o200k_base')
    : await import('gpt-tokenizer/encoding/cl100k_base')
  return (text) => encode(text, { disallowedSpecial: new Set() }).length
}

let sequence = 0
const url = (id: string, rest = ''): string => `/v1/conversations/${id}${rest}`

async function expectStatus (t: Test, response: Promise<LightMyRequestResponse>, statusCode: number, what: string): Promise<Json> {
  const answer = await response
  t.equal(answer.statusCode, statusCode, `${what}: ${answer.statusCode === statusCode ? statusCode : answer.body}`)
  return answer.json()
}

/** The messages a test writes for one string: in text, in a card, and in metadata. */
function messagesQuoting (text: string, first: number): Json[] {
  return [
    { id: `m${first}`, role: 'user', text },
    { id: `m${first + 1}`, role: 'assistant', kind: 'adaptiveCard', cardJson: { type: 'TextBlock', text }, metadata: { quoted: text } }
  ]
}

export function contentSuite (backend: Backend): void {
  for (const encoding of TOKEN_ENCODINGS) {
    t.test(`[${backend.name}] every special token of ${encoding} is content: written by every route, read back byte for byte, counted as text`, async (t) => {
      const app = await backend.build(t, { TOKEN_ENCODING: encoding })
      const count = await ordinaryCounter(encoding)
      const tokenOf = (message: Json): number => (message.text === undefined ? 0 : count(message.text)) +
        (message.cardJson === undefined ? 0 : count(JSON.stringify(message.cardJson)))
      const specials = specialTokens(encoding)
      t.ok(specials.length >= 8, `${encoding} defines ${specials.length} special tokens`)
      const strings = specials.flatMap((special) => [special, `A prompt quotes ${special} and goes on`, `${special}${special} ${special}\n`])

      // Reads the conversation and its context window, and checks both against what was written.
      const readsBack = async (id: string, written: Json[], what: string): Promise<void> => {
        const conversation = await expectStatus(t, app.inject({ method: 'GET', url: url(id) }), 200, `${what}: GET`)
        t.same(conversation.messages.map(({ id, text, cardJson, metadata }: Json) => ({ id, text, cardJson, metadata })),
          written.map(({ id, text, cardJson, metadata }) => ({ id, text, cardJson, metadata })), `${what}: read back byte for byte`)
        const window = await expectStatus(t, app.inject({ method: 'GET', url: url(id, '/messages?order=desc&maxTokens=10000000') }), 200, `${what}: window`)
        t.same(window.items.map((message: Json) => message.tokens), written.map(tokenOf).reverse(), `${what}: counted as ordinary text`)
      }

      for (const text of strings) {
        const id = `special-${process.pid}-${++sequence}`
        const what = JSON.stringify(text)
        const created = messagesQuoting(text, 1)
        await expectStatus(t, app.inject({ method: 'POST', url: '/v1/conversations', payload: { id, userId: 'u1', title: text, metadata: { prompt: text }, messages: created } }), 201, `${what}: create`)
        const appended = messagesQuoting(text, 3)
        await expectStatus(t, app.inject({ method: 'POST', url: url(id, '/messages'), payload: { messages: appended } }), 201, `${what}: append`)
        const edit = { text: `${text} (edited)`, cardJson: { type: 'TextBlock', text: `edited ${text}` } }
        await expectStatus(t, app.inject({ method: 'PATCH', url: url(id, '/messages/m3'), payload: edit }), 200, `${what}: edit`)
        await readsBack(id, [...created, { ...appended[0], ...edit }, appended[1] as Json], `${what} after create, append and edit`)

        const replaced = messagesQuoting(`${text} replaced`, 10)
        const put = await expectStatus(t, app.inject({ method: 'PUT', url: url(id), payload: { userId: 'u1', title: text, messages: replaced } }), 200, `${what}: replace`)
        t.equal(put.title, text)
        await readsBack(id, replaced, `${what} after replace`)
      }
    })
  }
}
