import { validatorCompiler, type ZodTypeProvider } from '@fastify/type-provider-zod'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import auditPlugin from '../plugins/audit.js'
import authPlugin from '../plugins/auth.js'
import configPlugin from '../plugins/config.js'
import conversationStorePlugin from '../plugins/conversation-store.js'
import docsPlugin from '../plugins/docs.js'
import errorsPlugin from '../plugins/errors.js'
import eventFeedsPlugin from '../plugins/event-feeds.js'
import loadSheddingPlugin from '../plugins/load-shedding.js'
import metricsPlugin from '../plugins/metrics.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import redisPlugin from '../plugins/redis.js'
import requestIdPlugin from '../plugins/request-id.js'
import conversationRoutes from '../routes/conversations.js'
import forkRoutes from '../routes/fork.js'
import healthRoutes from '../routes/health.js'
import messageRoutes from '../routes/messages.js'
import userConversationRoutes from '../routes/user-conversations.js'
import userDataRoutes from '../routes/user-data.js'
import eventRoutes from '../routes/events.js'
import workflowStateRoutes from '../routes/workflow-state.js'
import type { Config } from './config.js'
import { documentedAccess } from './http/documented-access.js'
import { requestIdOf } from './http/request-id.js'
import { serializerCompiler } from './http/serializer.js'
import { loggerOptions } from './logging.js'
import type { TokenSource } from './store/redis/entra-token.js'
import type { ConversationStore } from './store/types.js'

export interface AppOptions {
  /** Overrides the logger settings derived from the config (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
  /** A store to use instead of the one the config selects. */
  store?: ConversationStore
  /** Where Redis Entra ID tokens come from; tests inject one. */
  redisTokenSource?: TokenSource
}

const MAX_PARAM_LENGTH = 256 * 12

/** Builds the service: plugins first, then the routes that use them. */
export async function buildApp (config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config.logLevel),
    bodyLimit: config.bodyLimit,
    // find-my-way's default (100) is below the contract's: user ids have 256 characters,
    // up to 12 each once percent-encoded.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Lets the orchestrator finish in-flight requests while new ones go elsewhere.
    return503OnClosing: true,
    // Every log line of a request carries its id: the caller's, or a new one.
    genReqId: requestIdOf,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error'
  }).withTypeProvider<ZodTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(requestIdPlugin)
  await app.register(loadSheddingPlugin)
  await app.register(metricsPlugin)
  await app.register(authPlugin)
  await app.register(docsPlugin)
  if (config.redis !== undefined && options.store === undefined) {
    await app.register(redisPlugin, { config: config.redis, ...(options.redisTokenSource === undefined ? {} : { tokenSource: options.redisTokenSource }) })
  }
  await app.register(conversationStorePlugin, options.store === undefined ? {} : { store: options.store })

  await app.register(eventFeedsPlugin)
  await app.register(healthRoutes)
  await app.register(async (v1) => {
    v1.addHook('onRoute', (route) => { v1.protect(route) })
    await v1.register(auditPlugin)
    const limited = config.rateLimitPerMinute !== undefined || config.callers.some((caller) => caller.ratePerMinute !== undefined)
    if (limited) await v1.register(rateLimitPlugin)
    // PATCH bodies (of conversations and of messages) may be labelled as what they are.
    v1.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, v1.getDefaultJsonParser('error', 'error'))
    // The OpenAPI document says which routes want a bearer token, and what else they may answer.
    v1.addHook('onRoute', (route) => { route.schema = documentedAccess(route.schema, v1.authSchemes, limited) })
    await v1.register(conversationRoutes)
    await v1.register(messageRoutes)
    await v1.register(workflowStateRoutes)
    await v1.register(userConversationRoutes)
    await v1.register(forkRoutes)
    await v1.register(userDataRoutes)
    await v1.register(eventRoutes)
  }, { prefix: '/v1' })

  return app
}
