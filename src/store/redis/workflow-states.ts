import type { Cluster, Redis } from 'ioredis'
import { ConversationNotFoundError, PreconditionFailedError, WorkflowStateNotFoundError } from '../../errors.js'
import type { WorkflowStateBody } from '../../schemas.js'
import { newIncarnation, tagOf } from '../conversation-rules.js'
import { positionOf } from '../events.js'
import { absent, reachArgs, runScript, type ScriptName, type ScriptReply } from './commands.js'
import { conversationKeys } from './keys.js'
import { parseWorkflowState } from './records.js'
import type { Reach, TaggedWorkflowState } from '../types.js'

export interface RedisWorkflowStatesOptions {
  client: Redis | Cluster
  keyPrefix: string
  ttlMs: number
  clock: () => number
  /** Validates a stored record: a bad one is reported and becomes CORRUPT_RECORD. */
  corruptUnless: <T>(id: string, parse: () => T) => T
}

/**
 * The workflow state of Redis conversations: one script each, on the conversation's slot,
 * that sees the conversation's document (it must exist, and be within the caller's reach)
 * and writes only the state.
 */
export class RedisWorkflowStates {
  readonly #options: RedisWorkflowStatesOptions

  constructor (options: RedisWorkflowStatesOptions) {
    this.#options = options
  }

  async get (id: string, reach: Reach): Promise<TaggedWorkflowState> {
    const reply = await this.#run('csReadWorkflowState', id, ...reachArgs(reach))
    const [, body, version, updatedAt, expiresAt, incarnation, conversationIncarnation, lastEvent] =
      reply as [string, string, string, string, string, string, string, number]
    return this.#stateOf(id, body, Number(version), Number(updatedAt), Number(expiresAt), incarnation, [conversationIncarnation, lastEvent])
  }

  /** `ifMatch` as the scripts take it (see ifMatchArg in store.ts). */
  async put (id: string, state: WorkflowStateBody, { ifMatch, ifNoneMatch }: { ifMatch: string, ifNoneMatch: boolean }, reach: Reach): Promise<{ state: TaggedWorkflowState, created: boolean }> {
    const body = JSON.stringify(state)
    const reply = await this.#run('csWriteWorkflowState', id, this.#options.clock(), this.#options.ttlMs, ifMatch,
      ifNoneMatch ? '1' : '', body, newIncarnation(), ...reachArgs(reach))
    const [, version, updatedAt, expiresAt, created, incarnation, conversationIncarnation, lastEvent] =
      reply as [string, number, number, number, number, string, string, number]
    return { state: this.#stateOf(id, body, version, updatedAt, expiresAt, incarnation, [conversationIncarnation, lastEvent]), created: created === 1 }
  }

  async delete (id: string, ifMatchArg: string, reach: Reach): Promise<{ position: string }> {
    const [, incarnation, lastEvent] = await this.#run('csDeleteWorkflowState', id, ifMatchArg, ...reachArgs(reach)) as [string, string, number]
    return { position: positionOf(incarnation, lastEvent) }
  }

  /** Runs a workflow-state script (it takes the document and state keys) and throws for what it refused. */
  async #run (name: ScriptName, id: string, ...args: Array<string | number>): Promise<ScriptReply> {
    const keys = conversationKeys(this.#options.keyPrefix, id)
    const reply = await runScript(this.#options.client, name, [keys.doc, keys.workflow], ...args)
    if (absent(reply)) throw new ConversationNotFoundError(id)
    if (reply[0] === 'WORKFLOW_NOT_FOUND') throw new WorkflowStateNotFoundError(id)
    if (reply[0] === 'PRECONDITION') throw new PreconditionFailedError()
    return reply
  }

  /** The state, tagged with its own incarnation, and with where its conversation's event feed stands. */
  #stateOf (
    id: string, body: string, version: number, updatedAt: number, expiresAt: number, incarnation: string, [conversationIncarnation, lastEvent]: [string, number]
  ): TaggedWorkflowState {
    const state = this.#options.corruptUnless(id, () => parseWorkflowState(id, body, version, updatedAt, expiresAt))
    return { ...state, etag: tagOf(incarnation, version), position: positionOf(conversationIncarnation, lastEvent) }
  }
}
