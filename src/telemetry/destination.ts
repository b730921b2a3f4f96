/** Where traces go, from the standard variables: OTLP, Azure Monitor, both, or neither. */
export interface TraceDestinations {
  otlp: boolean
  /** APPLICATIONINSIGHTS_CONNECTION_STRING: a credential of sorts, never logged. */
  azureMonitor?: string
}

/** Undefined when tracing is off. */
export function traceDestinations (env: NodeJS.ProcessEnv): TraceDestinations | undefined {
  if (env.OTEL_SDK_DISABLED === 'true') return undefined
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT
  const otlp = endpoint !== undefined && endpoint !== ''
  const azureMonitor = env.APPLICATIONINSIGHTS_CONNECTION_STRING
  if (azureMonitor !== undefined && azureMonitor !== '') return { otlp, azureMonitor }
  return otlp ? { otlp } : undefined
}
