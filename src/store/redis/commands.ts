import type { Cluster, Redis } from 'ioredis'
import { loadScript } from './scripts.js'
import type { Preconditions, Reach } from '../types.js'

// The Lua scripts of lua/ as ioredis commands (EVALSHA, loaded on first use), by name.

export type ScriptReply = [string, ...unknown[]]
type Script = (...args: Array<string | number>) => Promise<ScriptReply>

const CONVERSATION_KEYS = 7

const SCRIPTS = {
  csWriteConversation: { keys: CONVERSATION_KEYS, lua: loadScript('write-conversation') },
  // With the owner's index as an eighth key, for the per-user cap: on a single Redis only.
  csWriteConversationCapped: { keys: CONVERSATION_KEYS + 1, lua: loadScript('write-conversation') },
  csReplaceBody: { keys: CONVERSATION_KEYS, lua: loadScript('replace-body') },
  csAppendMessages: { keys: CONVERSATION_KEYS, lua: loadScript('append-messages') },
  // The same script with the owner's index as an eighth key: on a single Redis only.
  csAppendMessagesIndexed: { keys: CONVERSATION_KEYS + 1, lua: loadScript('append-messages') },
  csAppendDelta: { keys: CONVERSATION_KEYS, lua: loadScript('append-delta') },
  csAppendDeltaIndexed: { keys: CONVERSATION_KEYS + 1, lua: loadScript('append-delta') },
  csDeleteConversation: { keys: CONVERSATION_KEYS, lua: loadScript('delete-conversation') },
  csReadConversation: { keys: CONVERSATION_KEYS, lua: loadScript('read-conversation') },
  csReadMessages: { keys: CONVERSATION_KEYS, lua: loadScript('read-messages') },
  csReadMessage: { keys: CONVERSATION_KEYS, lua: loadScript('read-message') },
  csReplaceMessage: { keys: CONVERSATION_KEYS, lua: loadScript('replace-message') },
  csDeleteMessage: { keys: CONVERSATION_KEYS, lua: loadScript('delete-message') },
  csRewindMessages: { keys: CONVERSATION_KEYS, lua: loadScript('rewind-messages') },
  csMigrateMessages: { keys: CONVERSATION_KEYS, lua: loadScript('migrate-messages') },
  csReadSnapshot: { keys: CONVERSATION_KEYS, lua: loadScript('read-snapshot') },
  csRestoreConversation: { keys: CONVERSATION_KEYS, lua: loadScript('restore-conversation') },
  csRestoreConversationCapped: { keys: CONVERSATION_KEYS + 1, lua: loadScript('restore-conversation') },
  csEvictConversation: { keys: CONVERSATION_KEYS, lua: loadScript('evict-conversation') },
  csReadWorkflowState: { keys: 2, lua: loadScript('read-workflow-state') },
  csWriteWorkflowState: { keys: 2, lua: loadScript('write-workflow-state') },
  csDeleteWorkflowState: { keys: 2, lua: loadScript('delete-workflow-state') },
  csTouchIndex: { keys: 1, lua: loadScript('touch-index') },
  csStartUserFeed: { keys: 1, lua: loadScript('start-user-feed') },
  csIndexEntriesAfter: { keys: 1, lua: loadScript('index-entries-after') },
  csRemoveIndexEntries: { keys: 1, lua: loadScript('remove-index-entries') },
  // Any number of keys, counted in the call: on a Redis that is not a cluster only.
  csReadSummaries: { keys: undefined, lua: loadScript('read-summaries') }
} as const

export type ScriptName = keyof typeof SCRIPTS

/** Defines the scripts on a client, with how many events each conversation keeps (lua/lib/events.lua). */
export function defineScripts (client: Redis | Cluster, eventsRetained: number): void {
  for (const [name, { keys, lua: source }] of Object.entries(SCRIPTS)) {
    const lua = source.replaceAll('{{EVENTS_RETAINED}}', String(eventsRetained))
    if (!(name in client)) client.defineCommand(name, keys === undefined ? { lua } : { numberOfKeys: keys, lua })
  }
}

export async function runScript (client: Redis | Cluster, name: ScriptName, keys: string[], ...args: Array<string | number>): Promise<ScriptReply> {
  const command = (client as unknown as Record<ScriptName, Script>)[name]
  if (SCRIPTS[name].keys === undefined) return await command.call(client, keys.length, ...keys, ...args)
  return await command.call(client, ...keys, ...args)
}

/**
 * The caller's reach as the last two arguments of a script that checks it (`reachable` in
 * lib/reach.lua): tenants separated by spaces, which tenant ids never hold ('' for all; a
 * lone space, which names none, for an empty set), and the user ('' for any).
 */
export function reachArgs (reach: Reach): [string, string] {
  const tenants = reach.tenants === '*' ? '' : [...reach.tenants].join(' ') || ' '
  return [tenants, reach.userId ?? '']
}

/** A reply about a conversation that is not there, or that the caller may not see. */
export function absent (reply: ScriptReply): boolean {
  return reply[0] === 'NOT_FOUND' || reply[0] === 'OUT_OF_REACH'
}

/** `If-Match` as the scripts take it: '' (none), '*', or tags separated by commas. */
export function ifMatchArg ({ ifMatch }: Preconditions): string {
  if (ifMatch === undefined) return ''
  // Only weak tags were sent: none can match, and a lone comma names no tag.
  return ifMatch === '*' ? '*' : ifMatch.join(',') || ','
}

/** A conversation's own TTL as the scripts keep it: in ms, or '' for the service's. */
export function ownTtlArg ({ ttlSeconds }: { ttlSeconds?: number | undefined }): string | number {
  return ttlSeconds === undefined ? '' : ttlSeconds * 1000
}
