import { loadTokenCounter } from '../../src/tokens.js'

/** The default encoding's real counter, for tests that build stores themselves. */
export const countTokens = await loadTokenCounter('o200k_base')
