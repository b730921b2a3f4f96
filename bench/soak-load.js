import { setTimeout as sleep } from 'node:timers/promises'

// The soak's load generator and its model of acknowledged state.
//
// Operations on one user (and so on each of its conversations) are serialised: a worker
// claims a user for one step. The model is therefore exact, except after a write whose
// outcome is unknown (503, network error, timeout). Such a write is retried with the same
// body (message ids make appends idempotent; a create's 409, a delete's 404 and a PATCH's
// 412 on a retry say the first try landed) until it is answered; one still unanswered
// when a step's retry time runs out stays `pending` and is resumed, before anything else,
// by the next step on that user, and at the end by `settle`. Every PATCH carries the ETag
// last received for its conversation, echoed as received, so a late copy of an old write
// cannot land over a newer acknowledged one.

const WEIGHTS = [['read', 330], ['append', 270], ['list', 120], ['patch', 100], ['create', 80], ['delete', 60], ['deleteAll', 5]]
const TOTAL_WEIGHT = WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0)
const MAX_MESSAGES = 150 // a conversation this long is deleted rather than appended to
const TEXT = 'soak message: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.'

const unknown = (response) => typeof response.status !== 'number' || response.status === 503
const pick = (items) => items[Math.floor(Math.random() * items.length)]
const LIMITED = 20 // details kept per kind of problem

function percentile (sorted, p) {
  return sorted.length === 0 ? 0 : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))])
}

export class Stats {
  constructor (boundMs, runStart) {
    Object.assign(this, { boundMs, runStart, requests: 0, byPhase: {}, statuses: {}, byOp: {}, durations: [], maxMs: 0, maxRequest: undefined })
    this.phase = 'load'
    this.unavailableAtMs = [] // when each 503 (or unanswered request) ended, since the start of the run
    this.slow = { count: 0, details: [] }
    this.serverErrors = { count: 0, details: [] } // 5xx other than 503, 500 included
    this.unexpected = { count: 0, details: [] } // no answer, unparseable answer, 400, 401, 413, 415
  }

  record (op, method, path, status, ms, json) {
    const key = String(status)
    this.requests++
    this.byPhase[this.phase] = (this.byPhase[this.phase] ?? 0) + 1
    this.statuses[key] = (this.statuses[key] ?? 0) + 1
    const byOp = this.byOp[op] ??= {}
    byOp[key] = (byOp[key] ?? 0) + 1
    this.durations.push(ms)
    const detail = { op, method, path, status, ms: Math.round(ms), atS: Math.round((Date.now() - this.runStart) / 100) / 10, phase: this.phase }
    if (ms > this.maxMs) { this.maxMs = ms; this.maxRequest = detail }
    if (json?.code !== undefined) detail.code = json.code
    const note = (bucket) => { bucket.count++; if (bucket.details.length < LIMITED) bucket.details.push(detail) }
    if (ms > this.boundMs) note(this.slow)
    if (status === 503 || status === 'network' || status === 'timeout') this.unavailableAtMs.push(Date.now() - this.runStart)
    if (typeof status === 'number' && status >= 500 && status !== 503) {
      detail.message = json?.message
      note(this.serverErrors)
    } else if (typeof status !== 'number' ? status !== 'aborted' : [400, 401, 413, 415].includes(status)) {
      detail.message = json?.message
      note(this.unexpected)
    }
  }

  latency () {
    const sorted = Float64Array.from(this.durations).sort()
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), max: Math.round(this.maxMs) }
  }
}

export class SoakLoad {
  constructor ({ url, apiKey, stats, signal, users = 48, perUser = 6, abortMs, retryForMs = 15_000 }) {
    Object.assign(this, { url, stats, signal, perUser, abortMs, retryForMs })
    this.auth = { authorization: `Bearer ${apiKey}` }
    const tag = Date.now().toString(36)
    this.users = Array.from({ length: users }, (_, i) => ({ id: `soak-${tag}-u${i}`, seq: 0, busy: false, pending: null, active: [], all: [] }))
    this.conversations = [] // every conversation ever created, deleted ones included
    this.lost = new Map() // acknowledged writes not found, by a key that counts each once
    this.anomalies = { count: 0, details: [] } // other broken promises of the contract
    this.counts = { ackedMessages: 0, ackedPatches: 0, patch412: 0, resolvedUnknown: 0 }
    this.retryUntil = Infinity
    this.seq = 0
  }

  // ---- HTTP ---------------------------------------------------------------------------

  async request (op, method, path, body, headers = {}) {
    const started = performance.now()
    let status, json, etag
    try {
      const response = await fetch(this.url + path, {
        method,
        headers: { ...this.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any([this.signal, AbortSignal.timeout(this.abortMs)])
      })
      const text = await response.text()
      status = response.status
      etag = response.headers.get('etag') ?? undefined
      if (text !== '') {
        try { json = JSON.parse(text) } catch { status = `unparseable ${status}` }
      }
    } catch (error) {
      status = this.signal.aborted ? 'aborted' : error.name === 'TimeoutError' ? 'timeout' : 'network'
    }
    this.stats.record(op, method, path, status, performance.now() - started, json)
    return { status, json, etag }
  }

  /** Sends until answered (not 503, not a network error), within the retry time. Marks `pending.unknown` when a try had an unknown outcome. */
  async untilKnown (pending, send) {
    const deadline = Math.min(Date.now() + this.retryForMs, this.retryUntil)
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      const response = await send()
      if (!unknown(response)) return response
      pending.unknown = true
      if (Date.now() + delay >= deadline || this.signal.aborted) return response
      await sleep(delay, undefined, { signal: this.signal }).catch(() => {})
    }
  }

  // ---- the model ----------------------------------------------------------------------

  loss (kind, conversation, item, detail) {
    const key = `${kind}:${conversation.id}:${item}`
    if (!this.lost.has(key)) this.lost.set(key, { kind, id: conversation.id, item, detail, phase: this.stats.phase })
  }

  anomaly (what, detail) {
    this.anomalies.count++
    if (this.anomalies.details.length < LIMITED) this.anomalies.details.push({ what, ...detail, phase: this.stats.phase })
  }

  retire (conversation, state) {
    conversation.state = state
    conversation.pending = null
    const { active } = conversation.user
    const i = active.indexOf(conversation)
    if (i >= 0) active.splice(i, 1)
  }

  /** Compares a stored conversation with the model, and adopts writes of unknown outcome that it shows. */
  check (conversation, stored, where) {
    const ids = new Set()
    for (const message of stored.messages) {
      if (ids.has(message.id)) this.anomaly('duplicate message id', { id: conversation.id, message: message.id, where })
      ids.add(message.id)
    }
    for (const id of conversation.acked) {
      if (!ids.has(id)) this.loss('message', conversation, id, `acknowledged message missing (${where})`)
    }
    for (const id of conversation.maybe) {
      if (ids.has(id)) { conversation.maybe.delete(id); conversation.acked.add(id) }
    }
    if (stored.title !== conversation.title && !conversation.maybeTitles.has(stored.title)) {
      this.loss('patch', conversation, conversation.title, `title is ${JSON.stringify(stored.title)}, acknowledged ${JSON.stringify(conversation.title)} (${where})`)
    }
    if (stored.userId !== conversation.user.id) this.anomaly('wrong userId', { id: conversation.id, userId: stored.userId, where })
    conversation.count = ids.size
  }

  message () {
    return { id: `m${this.seq++}`, role: this.seq % 2 === 0 ? 'user' : 'assistant', text: TEXT }
  }

  // ---- operations ---------------------------------------------------------------------

  async create (user) {
    const id = `${user.id}-c${user.seq++}`
    const first = this.message()
    const conversation = { id, user, state: 'creating', acked: new Set(), maybe: new Set([first.id]), title: 't0', maybeTitles: new Set(), etag: undefined, count: 1 }
    conversation.pending = { kind: 'create', body: { id, userId: user.id, title: 't0', messages: [first] } }
    this.conversations.push(conversation)
    user.all.push(conversation)
    user.active.push(conversation)
    await this.resumeCreate(conversation)
  }

  async resumeCreate (conversation) {
    const { pending } = conversation
    const response = await this.untilKnown(pending, () => this.request('create', 'POST', '/v1/conversations', pending.body))
    if (unknown(response)) return
    if (response.status === 201 || (response.status === 409 && pending.unknown === true)) {
      conversation.state = 'live'
      conversation.pending = null
      conversation.etag = response.status === 201 ? response.etag : undefined
      for (const { id } of pending.body.messages) { conversation.maybe.delete(id); conversation.acked.add(id); this.counts.ackedMessages++ }
      if (pending.unknown === true) this.counts.resolvedUnknown++
    } else {
      this.anomaly('create refused', { id: conversation.id, status: response.status, code: response.json?.code })
      this.retire(conversation, 'refused')
    }
  }

  async read (conversation, op = 'read') {
    const response = await this.request(op, 'GET', `/v1/conversations/${conversation.id}`)
    if (response.status === 200) {
      conversation.etag = response.etag
      this.check(conversation, response.json, op)
    } else if (response.status === 404) {
      this.loss('conversation', conversation, '', `acknowledged conversation answered 404 (${op})`)
      this.retire(conversation, 'lost')
    } else if (!unknown(response)) {
      this.anomaly('read', { id: conversation.id, status: response.status, code: response.json?.code })
    }
    return response
  }

  async append (conversation) {
    const messages = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () => this.message())
    for (const { id } of messages) conversation.maybe.add(id)
    conversation.pending = { kind: 'append', messages }
    await this.resumeAppend(conversation)
  }

  async resumeAppend (conversation) {
    const { pending } = conversation
    const response = await this.untilKnown(pending, () =>
      this.request('append', 'POST', `/v1/conversations/${conversation.id}/messages`, { messages: pending.messages }))
    if (unknown(response)) return
    conversation.pending = null
    if (response.status === 201 || response.status === 200) {
      for (const { id } of pending.messages) { conversation.maybe.delete(id); conversation.acked.add(id); this.counts.ackedMessages++ }
      conversation.etag = response.etag
      conversation.count = response.json.messageCount
      if (pending.unknown === true) this.counts.resolvedUnknown++
      if (response.status === 200 && pending.unknown !== true) this.anomaly('append of new ids answered 200', { id: conversation.id })
    } else if (response.status === 404) {
      for (const { id } of pending.messages) conversation.maybe.delete(id)
      this.loss('conversation', conversation, '', 'acknowledged conversation answered 404 (append)')
      this.retire(conversation, 'lost')
    } else {
      this.anomaly('append', { id: conversation.id, status: response.status, code: response.json?.code })
    }
  }

  async patch (conversation) {
    if (conversation.etag === undefined) {
      await this.read(conversation)
      if (conversation.etag === undefined || conversation.state !== 'live') return
    }
    const title = `p${this.seq++}`
    conversation.maybeTitles.add(title)
    conversation.pending = { kind: 'patch', title, ifMatch: conversation.etag }
    await this.resumePatch(conversation)
  }

  async resumePatch (conversation) {
    const { pending } = conversation
    let response = { status: 412 }
    if (!pending.conflict) {
      response = await this.untilKnown(pending, () => this.request('patch', 'PATCH', `/v1/conversations/${conversation.id}`,
        { title: pending.title }, { 'if-match': pending.ifMatch }))
    }
    if (unknown(response)) return
    if (response.status === 200) {
      conversation.pending = null
      conversation.title = pending.title
      conversation.maybeTitles.clear() // older unanswered PATCHes carried older ETags: they can no longer land
      conversation.etag = response.etag
      this.counts.ackedPatches++
      if (pending.unknown === true) this.counts.resolvedUnknown++
      if (response.json.title !== pending.title) this.loss('patch', conversation, pending.title, 'PATCH answer shows another title')
    } else if (response.status === 412) {
      // Either our earlier try landed, or a late write moved the version: read to know which.
      if (pending.unknown !== true) this.counts.patch412++
      pending.conflict = true
      conversation.etag = undefined
      const read = await this.read(conversation, 'patch-resync')
      if (read.status !== 200) return
      conversation.pending = null
      if (read.json.title === pending.title) {
        conversation.title = pending.title
        conversation.maybeTitles.clear()
        this.counts.resolvedUnknown++
      } else {
        conversation.maybeTitles.delete(pending.title) // its If-Match is stale now: it can never land
      }
    } else if (response.status === 404) {
      this.loss('conversation', conversation, '', 'acknowledged conversation answered 404 (patch)')
      this.retire(conversation, 'lost')
    } else {
      conversation.pending = null
      this.anomaly('patch', { id: conversation.id, status: response.status, code: response.json?.code })
    }
  }

  async delete (conversation) {
    conversation.pending = { kind: 'delete' }
    await this.resumeDelete(conversation)
  }

  async resumeDelete (conversation) {
    const { pending } = conversation
    const response = await this.untilKnown(pending, () => this.request('delete', 'DELETE', `/v1/conversations/${conversation.id}`))
    if (unknown(response)) return
    if (response.status === 204 || (response.status === 404 && pending.unknown === true)) {
      this.retire(conversation, 'deleted')
    } else if (response.status === 404) {
      this.loss('conversation', conversation, '', 'acknowledged conversation answered 404 (delete)')
      this.retire(conversation, 'lost')
    } else {
      conversation.pending = null
      this.anomaly('delete', { id: conversation.id, status: response.status, code: response.json?.code })
    }
  }

  async deleteAll (user) {
    user.pending = { kind: 'deleteAll', live: user.active.filter((c) => c.state === 'live').length }
    await this.resumeDeleteAll(user)
  }

  async resumeDeleteAll (user) {
    const { pending } = user
    const response = await this.untilKnown(pending, () => this.request('deleteAll', 'DELETE', `/v1/users/${user.id}/conversations`))
    if (unknown(response)) return
    user.pending = null
    if (response.status !== 200) return this.anomaly('delete-all', { user: user.id, status: response.status, code: response.json?.code })
    if (pending.unknown !== true && response.json.deleted < pending.live) {
      this.loss('conversation', { id: user.id }, `delete-all ${user.seq}`, `delete-all deleted ${response.json.deleted}, the model had ${pending.live}`)
    } else if (pending.unknown !== true && response.json.deleted > pending.live) {
      this.anomaly('delete-all deleted more than the model had', { user: user.id, deleted: response.json.deleted, live: pending.live })
    }
    for (const conversation of [...user.active]) this.retire(conversation, 'deleted')
  }

  async list (user, op = 'list') {
    const response = await this.request(op, 'GET', `/v1/users/${user.id}/conversations?limit=200&view=summary`)
    if (response.status !== 200) {
      if (!unknown(response)) this.anomaly('list', { user: user.id, status: response.status, code: response.json?.code })
      return
    }
    const listed = new Map(response.json.items.map((item) => [item.id, item]))
    const mine = new Map(user.all.map((c) => [c.id, c]))
    for (const [id, item] of listed) {
      const conversation = mine.get(id)
      if (conversation === undefined) this.anomaly('list shows an unknown conversation', { user: user.id, id })
      else if (conversation.state === 'deleted') this.loss('delete', conversation, '', `deleted conversation is listed (${op})`)
      else if (conversation.state === 'live' && conversation.pending === null && item.messageCount < conversation.acked.size) {
        this.loss('message', conversation, `count ${item.messageCount}`, `list counts ${item.messageCount} messages, ${conversation.acked.size} acknowledged (${op})`)
      }
    }
    for (const conversation of user.active) {
      if (conversation.state === 'live' && conversation.pending?.kind !== 'delete' && !listed.has(conversation.id)) {
        this.loss('conversation', conversation, '', `acknowledged conversation missing from its user's list (${op})`)
      }
    }
  }

  resume (conversation) {
    switch (conversation.pending.kind) {
      case 'create': return this.resumeCreate(conversation)
      case 'append': return this.resumeAppend(conversation)
      case 'patch': return this.resumePatch(conversation)
      case 'delete': return this.resumeDelete(conversation)
    }
  }

  /** One serialised step on a user: finish what is pending, or a random operation. */
  async step (user) {
    if (user.pending !== null) return this.resumeDeleteAll(user)
    const pending = user.active.find((c) => c.pending !== null)
    if (pending !== undefined) return this.resume(pending)
    const live = user.active.filter((c) => c.state === 'live')
    let roll = Math.random() * TOTAL_WEIGHT
    let [op] = WEIGHTS.find(([, weight]) => (roll -= weight) < 0) ?? WEIGHTS[0]
    if (live.length === 0) op = 'create'
    else if (op === 'create' && live.length >= this.perUser) op = 'delete'
    const target = pick(live)
    if (op === 'append' && target.count >= MAX_MESSAGES) op = 'delete'
    switch (op) {
      case 'create': return this.create(user)
      case 'read': return this.read(target)
      case 'append': return this.append(target)
      case 'list': return this.list(user)
      case 'patch': return this.patch(target)
      case 'delete': return this.delete(target)
      case 'deleteAll': return this.deleteAll(user)
    }
  }

  claim () {
    const start = Math.floor(Math.random() * this.users.length)
    for (let i = 0; i < this.users.length; i++) {
      const user = this.users[(start + i) % this.users.length]
      if (!user.busy) { user.busy = true; return user }
    }
  }

  /** `workers` concurrent loops, at most `rate` steps per second in all, until `endAt`. */
  async run ({ endAt, workers, rate }) {
    this.retryUntil = endAt
    const interval = workers * 1000 / rate
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      let next = Date.now() + w * interval / workers
      while (!this.signal.aborted && Date.now() < endAt) {
        const wait = next - Date.now()
        if (wait > 0) await sleep(wait, undefined, { signal: this.signal }).catch(() => {})
        next = Math.max(next + interval, Date.now() - interval)
        const user = this.claim()
        if (user === undefined) continue
        try {
          await this.step(user)
        } catch (error) {
          this.anomaly('soak step threw', { user: user.id, error: error.message })
        } finally {
          user.busy = false
        }
      }
    }))
  }

  pendingCount () {
    return this.users.filter((u) => u.pending !== null).length + this.conversations.filter((c) => c.pending !== null).length
  }

  /** Resolves every write of unknown outcome, Redis being healthy again (bounded rounds). */
  async settle (timeoutMs = 60_000) {
    this.stats.phase = 'settle'
    this.retryUntil = Date.now() + timeoutMs
    for (let round = 0; round < 5 && this.pendingCount() > 0 && Date.now() < this.retryUntil && !this.signal.aborted; round++) {
      await this.#eachUser(async (user) => {
        if (user.pending !== null) await this.resumeDeleteAll(user)
        for (const conversation of [...user.active]) if (conversation.pending !== null) await this.resume(conversation)
      })
    }
    return this.pendingCount()
  }

  /** Reads back every conversation of the model and every user's list. */
  async verify () {
    this.stats.phase = 'verify'
    this.retryUntil = Infinity
    const unverified = []
    const queue = this.conversations.filter((c) => c.state !== 'lost' && c.state !== 'refused')
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let conversation = queue.pop(); conversation !== undefined && !this.signal.aborted; conversation = queue.pop()) {
        const probe = {}
        const response = await this.untilKnown(probe, () => this.request('verify', 'GET', `/v1/conversations/${conversation.id}`))
        const maybeGone = conversation.state === 'creating' || conversation.pending?.kind === 'delete'
        if (unknown(response)) unverified.push(conversation.id)
        else if (response.status === 200 && conversation.state === 'deleted') this.loss('delete', conversation, '', 'deleted conversation is back (final read)')
        else if (response.status === 200 && conversation.state === 'live') this.check(conversation, response.json, 'final read')
        else if (response.status === 404 && conversation.state === 'live' && !maybeGone) {
          this.loss('conversation', conversation, '', 'acknowledged conversation missing (final read)')
        } else if (response.status !== 200 && response.status !== 404) {
          this.anomaly('final read', { id: conversation.id, status: response.status, code: response.json?.code })
        }
      }
    }))
    await this.#eachUser((user) => this.list(user, 'verify-list'))
    return unverified
  }

  async #eachUser (fn) {
    const queue = [...this.users]
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let user = queue.pop(); user !== undefined && !this.signal.aborted; user = queue.pop()) await fn(user)
    }))
  }
}
