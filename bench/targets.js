// The targets a bench run is checked against, each a ratio of rows measured in that run.

export const ratio = (a, b) => (a === undefined || b === undefined || b === 0) ? undefined : Math.round((a / b) * 100) / 100

/** Messages read only what they return: a page from 10,000 costs at most 1.3× one from 20. */
function messageTargets (ceiling) {
  return [['Redis', ceiling.messagesRedis], ['memory', ceiling.messagesMemory]].flatMap(([backend, r]) => r === undefined
    ? []
    : [
        [`${backend}: page of 20 at 10,000 msgs ≤ 1.3× at 20 (throughput)`, ratio(r.page20.rps, r.page10k.rps), (x) => x <= 1.3],
        [`${backend}: page of 20 at 10,000 msgs ≤ 1.3× at 20 (p99)`, ratio(r.page10k.p99, r.page20.p99), (x) => x <= 1.3],
        [`${backend}: lastMessages=20 at 10,000 msgs ≤ 1.3× the page at 20 (throughput)`, ratio(r.page20.rps, r.tail10k.rps), (x) => x <= 1.3],
        [`${backend}: lastMessages=20 at 10,000 msgs ≤ 1.3× the page at 20 (p99)`, ratio(r.tail10k.p99, r.page20.p99), (x) => x <= 1.3],
        [`${backend}: append with a 2,000-token window at 10,000 msgs ≤ 1.3× at 20 (throughput)`, ratio(r.windowAppend20?.rps, r.windowAppend10k?.rps), (x) => x <= 1.3]
      ])
}

/** The read path against the plain design (Express + ioredis) and the ceilings. */
function readPathTargets (ceiling) {
  const { getRedis, getMemory, plainGet, framework, roundTrip, append10 } = ceiling
  const r = ceiling.readPath ?? {}
  return [
    ['GET on Redis ≥ 2.5× the plain design', ratio(getRedis?.rps, plainGet?.rps), (x) => x >= 2.5],
    ['GET on Redis ≥ 0.45× the framework ceiling', ratio(getRedis?.rps, framework?.rps), (x) => x >= 0.45],
    ['GET on Redis p99 ≤ 10 ms at the bench connections', getRedis?.p99, (x) => x <= 10],
    ['GET on Redis ≥ 0.8× the one-GET round-trip limit', ratio(getRedis?.rps, roundTrip?.rps), (x) => x >= 0.8],
    ['GET on Redis p99 ≤ 1.5× the framework ceiling\'s p99', ratio(getRedis?.p99, framework?.p99), (x) => x <= 1.5],
    ['GET on memory ≥ 0.8× the framework ceiling', ratio(getMemory?.rps, framework?.rps), (x) => x >= 0.8],
    ['append of one message ≥ 0.8× GET on Redis', ratio(append10?.rps, getRedis?.rps), (x) => x >= 0.8],
    ['list of 50 full ≥ 2× the plain design', ratio(r.listFull?.rps, r.plainListFull?.rps), (x) => x >= 2],
    ['list of 50 summaries ≥ 5× the plain design\'s full list', ratio(r.listSummaries?.rps, r.plainListFull?.rps), (x) => x >= 5],
    ['chat turn (append with window, append reply) ≥ 3× the plain design\'s turn', ratio(r.windowTurn?.turns, r.plainTurn?.turns), (x) => x >= 3],
    ['chat turn with the read as its own request ≥ 2× the plain design\'s turn', ratio(r.turn?.turns, r.plainTurn?.turns), (x) => x >= 2],
    ['chat turns lose no acknowledged message', r.windowTurn === undefined && r.turn === undefined ? undefined : (r.windowTurn?.lost ?? 0) + (r.turn?.lost ?? 0), (x) => x === 0]
  ]
}

export function targetsOf (ceiling, rows) {
  return [
    ...readPathTargets(ceiling),
    ['a delta costs no more than an append of one message: delta throughput ≥ 1.0× append', ratio(ceiling.delta?.rps, ceiling.append10?.rps), (r) => r >= 1.0],
    ['append at 1,000 msgs costs ≤ 1.3× append at 10 (throughput)', ratio(ceiling.append10?.rps, ceiling.append1k?.rps), (r) => r <= 1.3],
    ['append at 1,000 msgs costs ≤ 1.3× append at 10 (p99)', ratio(ceiling.append1k?.p99, ceiling.append10?.p99), (r) => r <= 1.3],
    ['list at 100,000 costs ≤ 1.3× list at 100 (throughput)', ratio(ceiling.list100?.rps, ceiling.list100k?.rps), (r) => r <= 1.3],
    ['list at 100,000 costs ≤ 1.3× list at 100 (p99)', ratio(ceiling.list100k?.p99, ceiling.list100?.p99), (r) => r <= 1.3],
    ...messageTargets(ceiling),
    ...fanoutTargets(ceiling.fanout),
    ['GET with the tracing preload and tracing off ≥ 0.97× without it', ratio(ceiling.tracing?.offRps, ceiling.tracing?.beforeRps), (r) => r >= 0.97],
    ['no errors in any row', rows.reduce((sum, row) => sum + row.errors, 0), (n) => n === 0]
  ].filter(([, value]) => value !== undefined).map(([target, value, met]) => ({ target, value, met: met(value) }))
}

/** Issue 20's fan-out targets: the service's row, and against resumable-stream's in the same run. */
function fanoutTargets (fanout) {
  if (fanout === undefined) return []
  const { service, resumable } = fanout
  return [
    [`fan-out: delivery p99 (delta acknowledged → at a follower), one delta every ${fanout.paceMs} ms, ≤ 50 ms`, service.paced.p99Ms, (x) => x <= 50],
    [`fan-out: no event lost, one delta every ${fanout.paceMs} ms`, service.paced.lost, (x) => x === 0],
    ['fan-out: ≥ 20,000 events delivered per second', service.eventsPerSecond, (x) => x >= 20_000],
    ['fan-out: ≤ 20 KiB of RSS per idle follower', service.rssPerFollowerKiB, (x) => x <= 20],
    ['fan-out: events per second ≥ 1.0× resumable-stream\'s (durable against not)', ratio(service.eventsPerSecond, resumable.eventsPerSecond), (x) => x >= 1],
    ['fan-out: no event lost', service.lost, (x) => x === 0]
  ]
}
