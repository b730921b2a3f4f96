import t from 'tap'
import { loadConfig } from '../src/config.js'
import { loadTokenCounter } from '../src/tokens.js'

t.test('a message counts the tokens of its text and of its card JSON, in the configured encoding', async (t) => {
  const o200k = await loadTokenCounter('o200k_base')
  const cl100k = await loadTokenCounter('cl100k_base')
  t.equal(o200k({}), 0, 'nothing to count')
  t.equal(cl100k({ text: 'hello world' }), 2)
  const card = { type: 'AdaptiveCard', body: [{ type: 'TextBlock', text: 'Pick one' }] }
  t.equal(o200k({ text: 'hello world', cardJson: card }), o200k({ text: 'hello world' }) + o200k({ text: JSON.stringify(card) }))
  t.not(o200k({ text: 'Ünïcödé and 漢字 tokenise differently' }), cl100k({ text: 'Ünïcödé and 漢字 tokenise differently' }), 'the encodings differ')
})

t.test('TOKEN_ENCODING defaults to o200k_base and accepts only the known encodings', async (t) => {
  t.equal(loadConfig({}).tokenEncoding, 'o200k_base')
  t.equal(loadConfig({ TOKEN_ENCODING: 'cl100k_base' }).tokenEncoding, 'cl100k_base')
  t.throws(() => loadConfig({ TOKEN_ENCODING: 'gpt2' }), /TOKEN_ENCODING/)
})

t.test('a long run without whitespace is counted in 64-character pieces, so that counting stays linear', async (t) => {
  const countTokens = await loadTokenCounter('o200k_base')
  const piece = 'abcdefgh'.repeat(8)
  t.equal(countTokens({ text: piece.repeat(1000) }), 1000 * countTokens({ text: piece }), 'a 64,000-character run is 1,000 pieces')
  t.equal(countTokens({ text: `before ${piece.repeat(2)}x after` }),
    countTokens({ text: 'before ' }) + 2 * countTokens({ text: piece }) + countTokens({ text: 'x' }) + countTokens({ text: ' after' }))
  t.equal(countTokens({ text: 'ordinary words are counted exactly' }), 5)
})
