import type { Message } from './schemas.js'

// Token counts let a store select a context window without tokenising at read time: each
// message is counted once, when it is written, and the count is stored beside it.

export const TOKEN_ENCODINGS = ['o200k_base', 'cl100k_base'] as const
export type TokenEncoding = typeof TOKEN_ENCODINGS[number]

/** The tokens of a message: those of its text plus those of its card's JSON. */
export type TokenCounter = (message: Pick<Message, 'text' | 'cardJson'>) => number

/**
 * Loads one encoding of gpt-tokenizer. Only the configured one is loaded (o200k_base takes
 * about 35 MB of heap and 0.3 s), once, at start-up.
 */
export async function loadTokenCounter (encoding: TokenEncoding): Promise<TokenCounter> {
  const { countTokens } = encoding === 'o200k_base'
    ? await import('gpt-tokenizer/encoding/o200k_base')
    : await import('gpt-tokenizer/encoding/cl100k_base')
  return (message) => (message.text === undefined ? 0 : countTokens(message.text)) +
    (message.cardJson === undefined ? 0 : countTokens(JSON.stringify(message.cardJson)))
}
