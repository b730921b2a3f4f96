// What the tracing preload shares with the service: whether tracing runs, and what to
// flush when the server stops. The preload and the server load this one module instance
// (an ES module is loaded once per URL, preloaded or not), so nothing global is needed.

const flushes: Array<() => Promise<void>> = []
let active = false

/** Called by the preload once the SDK runs. */
export function tracingStarted (flush: () => Promise<void>): void {
  active = true
  flushes.push(flush)
}

export function tracingActive (): boolean {
  return active
}

/** Flushes spans not yet exported; without tracing there is nothing to do. */
export async function shutdownTelemetry (): Promise<void> {
  await Promise.all(flushes.map(async (flush) => { await flush() }))
}
