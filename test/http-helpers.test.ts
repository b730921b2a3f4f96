import t from 'tap'
import { decodeCursor, encodeCursor } from '../src/http/cursor.js'
import { etagHeader, noneMatchHits, preconditionsFrom } from '../src/http/preconditions.js'
import { checkPreconditions, mergePatch, newIncarnation, tagOf, writeTime } from '../src/store/conversation-rules.js'

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
  t.same(preconditionsFrom({ 'if-match': '"a.3", W/"a.4" ,"x", "b.5"' }), { ifMatch: ['a.3', 'x', 'b.5'] })
  t.same(preconditionsFrom({ 'if-match': '"a,b", "c.1"' }), { ifMatch: ['c.1'] }, 'a comma inside a tag does not split it')
  t.same(preconditionsFrom({ 'if-none-match': '*' }), { ifNoneMatch: true })
  t.equal(etagHeader('a.7'), '"a.7"')
})

t.test('If-None-Match uses weak comparison', async (t) => {
  t.equal(noneMatchHits(undefined, 'a.1'), false)
  t.equal(noneMatchHits('W/"a.1"', 'a.1'), true)
  t.equal(noneMatchHits('"a.2", "a.3"', 'a.1'), false)
  t.equal(noneMatchHits('"1"', 'a.1'), false, 'a bare version is not a tag')
})

t.test('tags name the incarnation as well as the version', async (t) => {
  const first = newIncarnation()
  const second = newIncarnation()
  t.not(first, second)
  t.match(first, /^[A-Za-z0-9_-]{11}$/, 'no comma, quote or dot: safe inside a tag list')
  t.not(tagOf(first, 1), tagOf(second, 1))
  t.equal(tagOf(first, 7), `${first}.7`)
})

t.test('preconditions', async (t) => {
  t.doesNotThrow(() => checkPreconditions(undefined, {}))
  t.doesNotThrow(() => checkPreconditions(undefined, { ifNoneMatch: true }))
  t.throws(() => checkPreconditions('a.1', { ifNoneMatch: true }), { code: 'PRECONDITION_FAILED' })
  t.throws(() => checkPreconditions(undefined, { ifMatch: '*' }), { code: 'PRECONDITION_FAILED' })
  t.throws(() => checkPreconditions('a.2', { ifMatch: ['a.1'] }), { code: 'PRECONDITION_FAILED' })
  t.throws(() => checkPreconditions('b.2', { ifMatch: ['a.2'] }), { code: 'PRECONDITION_FAILED' }, 'another incarnation')
  t.doesNotThrow(() => checkPreconditions('a.2', { ifMatch: ['a.1', 'a.2'] }))
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
