import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

/**
 * The commands clients send to the Redis at `url` while `action` runs, as MONITOR sees
 * them, lower case; those a script calls are left out.
 */
export async function commandsSentDuring (url: string, action: () => Promise<unknown>): Promise<string[]> {
  // monitor() opens a connection of its own beside the client's.
  const client = new Redis(url)
  const monitor = await client.monitor()
  const commands: string[] = []
  let recording = false
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (recording && source !== 'lua') commands.push((args[0] ?? '').toLowerCase())
  })
  // MONITOR starts with the next command; one harmless command makes sure it has.
  const probe = new Redis(url)
  await probe.ping()
  await sleep(50)
  recording = true
  try {
    await action()
    await sleep(100)
  } finally {
    monitor.disconnect()
    client.disconnect()
    probe.disconnect()
  }
  return commands
}
