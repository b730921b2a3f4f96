import { sweepIntervalMs, type StreamLimits } from './stream-rules.js'

/**
 * Runs a backend's sweep of idle streams on a timer: an in_progress message without a delta
 * for the idle timeout becomes incomplete (`timeout`) with no request from anyone. One sweep
 * runs at a time; the timer does not keep the process alive, and stop() ends it (onClose).
 */
export class IdleStreamSweeper {
  readonly #timer: NodeJS.Timeout
  #running = false

  constructor (limits: StreamLimits, sweep: () => Promise<void>, onError: (error: unknown) => void) {
    this.#timer = setInterval(() => {
      if (this.#running) return
      this.#running = true
      sweep().catch(onError).finally(() => { this.#running = false })
    }, sweepIntervalMs(limits))
    this.#timer.unref()
  }

  stop (): void { clearInterval(this.#timer) }
}
