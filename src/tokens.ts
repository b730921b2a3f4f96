import type { Message } from './schemas.js'

// Token counts let a store select a context window without tokenising at read time: each
// message is counted once, when it is written, and the count is stored beside it.

export const TOKEN_ENCODINGS = ['o200k_base', 'cl100k_base'] as const
export type TokenEncoding = typeof TOKEN_ENCODINGS[number]

/** The tokens of a message: those of its text plus those of its card's JSON. */
export type TokenCounter = (message: Pick<Message, 'text' | 'cardJson'>) => number

// Byte-pair encoding is quadratic in the length of one pre-token, and a run of characters
// without whitespace (base64, a long token of junk) is one pre-token: 60,000 of them took
// 3 s to count, blocking the event loop. Such runs are counted in pieces of this length,
// which over-counts them by well under 1 %; ordinary text is counted exactly.
const LONGEST_RUN = 64
const LONG_RUN = new RegExp(`\\S{${LONGEST_RUN + 1},}`, 'g')

// Content is data: a message that quotes `<|endoftext|>` or `<|im_start|>` is counted as the
// ordinary text it is. gpt-tokenizer refuses special-token strings by default (it throws),
// which turned such a write into a 500.
const AS_ORDINARY_TEXT = { disallowedSpecial: new Set<string>() }

/**
 * Loads one encoding of gpt-tokenizer. Only the configured one is loaded (o200k_base takes
 * about 35 MB of heap and 0.3 s), once, at start-up.
 */
export async function loadTokenCounter (encoding: TokenEncoding): Promise<TokenCounter> {
  const { countTokens } = encoding === 'o200k_base'
    ? await import('gpt-tokenizer/encoding/o200k_base')
    : await import('gpt-tokenizer/encoding/cl100k_base')
  const count = (text: string): number => {
    let total = 0
    let done = 0
    for (const run of text.matchAll(LONG_RUN)) {
      total += countTokens(text.slice(done, run.index), AS_ORDINARY_TEXT)
      for (let start = 0; start < run[0].length; start += LONGEST_RUN) total += countTokens(run[0].slice(start, start + LONGEST_RUN), AS_ORDINARY_TEXT)
      done = run.index + run[0].length
    }
    return total + countTokens(text.slice(done), AS_ORDINARY_TEXT)
  }
  return (message) => (message.text === undefined ? 0 : count(message.text)) +
    (message.cardJson === undefined ? 0 : count(JSON.stringify(message.cardJson)))
}
