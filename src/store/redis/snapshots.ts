import type { Cluster, Redis } from 'ioredis'
import { MessageNotFoundError } from '../../errors.js'
import { tagOf } from '../conversation-rules.js'
import { absent, reachArgs, runScript } from './commands.js'
import { conversationKeyList, conversationKeys } from './keys.js'
import { parseWorkflowState, type RawConversation } from './records.js'
import type { RedisViews } from './views.js'
import type { ConversationSnapshot, Reach } from '../types.js'

export interface RedisSnapshotsOptions {
  client: Redis | Cluster
  keyPrefix: string
  views: RedisViews
  migrate: (id: string) => Promise<void>
  corruptUnless: <T>(id: string, parse: () => T) => T
}

type SnapshotReply = [string, ...RawConversation, tokens: string, stateBody: string, stateVersion: string, stateUpdatedAt: string, stateExpiresAt: string]

/**
 * One version of a conversation with everything it owns, read in one script: what a fork
 * copies and an export writes. The read changes nothing, so a fork that fails after it
 * (before its write, in another slot, has committed) leaves nothing to see.
 */
export class RedisSnapshots {
  readonly #options: RedisSnapshotsOptions

  constructor (options: RedisSnapshotsOptions) {
    this.#options = options
  }

  async snapshot (id: string, throughMessageId: string | undefined, reach: Reach): Promise<ConversationSnapshot | undefined> {
    const { client, keyPrefix, views, corruptUnless } = this.#options
    for (;;) {
      const reply = await runScript(client, 'csReadSnapshot', conversationKeyList(conversationKeys(keyPrefix, id)),
        throughMessageId ?? '', ...reachArgs(reach))
      if (absent(reply)) return undefined
      if (reply[0] === 'MESSAGE_NOT_FOUND') throw new MessageNotFoundError(throughMessageId as string)
      // The layout of the release before: migrated once, then read again.
      if (reply[0] === 'LEGACY') { await this.#options.migrate(id); continue }
      const [, ...fields] = reply as SnapshotReply
      const raw = fields.slice(0, 10) as RawConversation
      const [tokens, stateBody, stateVersion, stateUpdatedAt, stateExpiresAt] = fields.slice(10) as string[]
      const conversation = { ...views.parse(id, raw, 'all'), etag: tagOf(raw[8], Number(raw[5])) }
      const snapshot: ConversationSnapshot = { conversation, tokens: tokens === '' ? [] : (tokens as string).split(',').map(Number) }
      if (stateVersion === '') return snapshot
      const state = corruptUnless(id, () =>
        parseWorkflowState(id, stateBody as string, Number(stateVersion), Number(stateUpdatedAt), Number(stateExpiresAt)))
      return { ...snapshot, workflowState: state }
    }
  }
}
