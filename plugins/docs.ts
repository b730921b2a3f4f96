import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { jsonSchemaTransform, jsonSchemaTransformObject } from '@fastify/type-provider-zod'
import fp from 'fastify-plugin'
import { name, version } from '../src/package-info.js'

/** The OpenAPI document, generated from the route schemas, at /openapi.json and /docs. */
export default fp(async (fastify) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: name, version, description: 'Stores chat conversations for internal services.' },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: one of API_KEYS, or one whose SHA-256 the callers file holds' },
          entraId: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A Microsoft Entra ID access token for AUTH_JWT_AUDIENCE' }
        }
      }
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}, { name: 'docs' })
