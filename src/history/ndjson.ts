import { StringDecoder } from 'node:string_decoder'
import { ImportTooLargeError } from '../errors.js'

/**
 * The lines of a newline-delimited body as it arrives, without holding more than one line:
 * a body past `maxBytes` fails with 413 at that point (what came before has been yielded).
 */
export async function * ndjsonLines (body: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8')
  let bytes = 0
  let partial = ''
  for await (const chunk of body) {
    bytes += chunk.length
    if (bytes > maxBytes) throw new ImportTooLargeError(maxBytes)
    const text = decoder.write(chunk)
    const end = text.lastIndexOf('\n')
    if (end === -1) {
      partial += text
      continue
    }
    const lines = (partial + text.slice(0, end)).split('\n')
    partial = text.slice(end + 1)
    yield * lines
  }
  partial += decoder.end()
  if (partial !== '') yield partial
}
