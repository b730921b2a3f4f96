import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One export as the collector received it. */
export interface OtlpExport {
  path: string
  contentType: string
  body: Buffer
}

export interface OtlpReceiver {
  /** The base URL for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string
  readonly exports: OtlpExport[]
  close: () => Promise<void>
}

/** A small OTLP/HTTP collector on a local port: it keeps every export and answers 200. */
export async function startOtlpReceiver (): Promise<OtlpReceiver> {
  const exports: OtlpExport[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const contentType = request.headers['content-type'] ?? ''
      exports.push({ path: request.url ?? '', contentType, body: Buffer.concat(chunks) })
      // An empty ExportTraceServiceResponse, in the format of the request.
      response.writeHead(200, { 'content-type': contentType.includes('json') ? 'application/json' : 'application/x-protobuf' })
      response.end(contentType.includes('json') ? '{}' : '')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  }
}
