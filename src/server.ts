import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { shutdownTelemetry } from './telemetry/runtime.js'

// The process entry point: read the config, build the app, listen, and close cleanly on
// SIGTERM/SIGINT within the platform's stop grace.

async function main (): Promise<void> {
  const config = loadConfig()
  const app = await buildApp(config)

  closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
    // Within the same grace: spans of the last requests go out before the process ends.
    await shutdownTelemetry()
  })

  await app.listen({ host: config.host, port: config.port })
}

main().catch((error: unknown) => {
  // One clear line, without a stack: it may name paths or settings that do not belong in logs.
  process.stderr.write(error instanceof ConfigError ? `${error.message}\n` : `Start-up failed: ${String(error)}\n`)
  process.exit(1)
})
