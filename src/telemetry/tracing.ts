import { FastifyOtelInstrumentation } from '@fastify/otel'
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino'
import type { IncomingMessage } from 'node:http'
import type { TraceDestinations } from './destination.js'
import { tracingStarted } from './runtime.js'

// The OpenTelemetry SDK, started only when a trace destination is configured (preload.ts).
// Every instrumentation is a maintained one; what they record is narrowed here.

const UNTRACED = /^\/health(\/|$|\?)/

// Probes come every minute from every instance: tracing them would drown real requests.
const probe = (request: IncomingMessage): boolean => UNTRACED.test(request.url ?? '')

function instrumentations (): Instrumentation[] {
  return [
    new HttpInstrumentation({ ignoreIncomingRequestHook: probe }),
    new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: '/health*' }),
    // The command name only: the scripts' arguments are users' messages.
    new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
    // trace_id and span_id on every log line written inside a span; the logs stay on stdout.
    new PinoInstrumentation({ disableLogSending: true })
  ]
}

/** Starts tracing; the server flushes it on shutdown (runtime.ts). */
export async function startTracing (destinations: TraceDestinations): Promise<void> {
  const env = process.env
  if (env.OTEL_SERVICE_NAME === undefined && !/(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '')) {
    env.OTEL_SERVICE_NAME = 'conversation-store'
  }
  // Traces only, unless asked: metrics are on /metrics, and logs on stdout.
  env.OTEL_METRICS_EXPORTER ??= 'none'
  env.OTEL_LOGS_EXPORTER ??= 'none'
  if (destinations.azureMonitor !== undefined) {
    await startAzureMonitor(destinations.azureMonitor, destinations.otlp)
    return
  }
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  // The exporter, protocol, sampler and resource come from the standard OTEL_* variables.
  const sdk = new NodeSDK({ instrumentations: instrumentations() })
  sdk.start()
  tracingStarted(async () => { await sdk.shutdown() })
}

async function startAzureMonitor (connectionString: string, otlp: boolean): Promise<void> {
  const { useAzureMonitor, shutdownAzureMonitor } = await import('@azure/monitor-opentelemetry')
  const spanProcessors = otlp ? [await otlpProcessor()] : []
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString },
    spanProcessors,
    // Its own instrumentations, but HTTP, cover libraries this service does not use.
    instrumentationOptions: {
      http: { enabled: false },
      azureSdk: { enabled: false },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false }
    },
    enableLiveMetrics: false
  })
  registerInstrumentations({ instrumentations: instrumentations() })
  tracingStarted(async () => { await shutdownAzureMonitor() })
}

/** OTLP beside Azure Monitor, with the protocol OTEL_EXPORTER_OTLP_PROTOCOL names. */
async function otlpProcessor () {
  const { BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const protocol = process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL
  const { OTLPTraceExporter } = protocol === 'http/json'
    ? await import('@opentelemetry/exporter-trace-otlp-http')
    : await import('@opentelemetry/exporter-trace-otlp-proto')
  return new BatchSpanProcessor(new OTLPTraceExporter())
}
