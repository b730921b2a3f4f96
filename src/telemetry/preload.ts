import { traceDestinations } from './destination.js'

// Loaded first, with `node --import ./dist/src/telemetry/preload.js dist/src/server.js`
// (npm start and the Dockerfile's CMD), so that the instrumentations are in place before
// fastify, ioredis and pino load. Without a trace destination it loads nothing else: no
// SDK, no hooks, nothing on the hot path.

const destinations = traceDestinations(process.env)
if (destinations !== undefined) {
  const { startTracing } = await import('./tracing.js')
  await startTracing(destinations)
}
