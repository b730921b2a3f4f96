import t from 'tap'
import { decodeCursor, encodeCursor } from '../src/http/cursor.js'
import { etagOf, noneMatchHits, preconditionsFrom } from '../src/http/preconditions.js'
import { checkPreconditions, mergePatch, writeTime } from '../src/store/conversation-rules.js'

t.test('cursors round-trip and reject anything else', async (t) => {
  const cursor = { updatedAt: 1795665737714, id: 'conv:1' }
  t.same(decodeCursor(encodeCursor(cursor)), cursor)
  for (const bad of ['', '!!!', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1.5,"x"]').toString('base64url'), Buffer.from('[1,""]').toString('base64url')]) {
    t.throws(() => decodeCursor(bad), { statusCode: 400, code: 'FST_ERR_VALIDATION' }, bad)
  }
})

t.test('If-Match parsing keeps strong tags only', async (t) => {
  t.same(preconditionsFrom({}), {})
  t.same(preconditionsFrom({ 'if-match': ' * ' }), { ifMatch: '*' })
  t.same(preconditionsFrom({ 'if-match': '"3", W/"4" ,"x", "5"' }), { ifMatch: [3, 5] })
  t.same(preconditionsFrom({ 'if-none-match': '*' }), { ifNoneMatch: true })
  t.equal(etagOf(7), '"7"')
})

t.test('If-None-Match uses weak comparison', async (t) => {
  t.equal(noneMatchHits(undefined, 1), false)
  t.equal(noneMatchHits('W/"1"', 1), true)
  t.equal(noneMatchHits('"2", "3"', 1), false)
})

t.test('preconditions', async (t) => {
  t.doesNotThrow(() => checkPreconditions(undefined, {}))
  t.doesNotThrow(() => checkPreconditions(undefined, { ifNoneMatch: true }))
  t.throws(() => checkPreconditions(1, { ifNoneMatch: true }), { code: 'PRECONDITION_FAILED' })
  t.throws(() => checkPreconditions(undefined, { ifMatch: '*' }), { code: 'PRECONDITION_FAILED' })
  t.throws(() => checkPreconditions(2, { ifMatch: [1] }), { code: 'PRECONDITION_FAILED' })
  t.doesNotThrow(() => checkPreconditions(2, { ifMatch: [1, 2] }))
})

t.test('merge patch follows RFC 7396', async (t) => {
  // Examples from RFC 7396, appendix A.
  t.same(mergePatch({ a: 'b' }, { a: 'c' }), { a: 'c' })
  t.same(mergePatch({ a: 'b' }, { b: 'c' }), { a: 'b', b: 'c' })
  t.same(mergePatch({ a: 'b' }, { a: null }), {})
  t.same(mergePatch({ a: [{ b: 'c' }] }, { a: [1] }), { a: [1] })
  t.same(mergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } }), { a: { b: 'd' } })
  t.same(mergePatch(['a'], { a: 'b' }), { a: 'b' })
  t.same(mergePatch({}, { a: { bb: { ccc: null } } }), { a: { bb: {} } })
  t.same(mergePatch({ a: 'foo' }, 'bar'), 'bar')
})

t.test('the write time never goes backwards', async (t) => {
  t.equal(writeTime(1000), 1000)
  t.equal(writeTime(1000, new Date(5000).toISOString()), 5000)
  t.equal(writeTime(9000, new Date(5000).toISOString()), 9000)
})
