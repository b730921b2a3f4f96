import { readFileSync } from 'node:fs'
import { SCHEMA_STAMP } from './records.js'

// The Lua scripts that make each conversation write atomic inside Redis, one `.lua` file
// each in lua/, read once when this module loads. Every script touches only the keys of one
// conversation (one hash slot, see keys.ts), so they run unchanged on Redis Cluster.
// Timestamps are milliseconds since the epoch. Conversation scripts take the conversation's
// seven keys (conversationKeyList) and name them through lua/lib/conversation.lua.
//
// Scripts answer { status, ... }: 'OK' or one of 'EXISTS', 'NOT_FOUND', 'WORKFLOW_NOT_FOUND',
// 'MESSAGE_NOT_FOUND', 'PRECONDITION', 'USER_MISMATCH', 'TOO_MANY', 'CONFLICT', 'BAD_CURSOR',
// 'OUT_OF_REACH' (the caller may not see the conversation: answered as NOT_FOUND) and
// 'LEGACY' (the messages are still in the list of the release before: migrate first).
// Scripts that check reach take the caller's reach as their last two ARGV (lib/reach.lua).
//
// A file's first line may say `-- uses: a, b`: the libraries of lua/lib/ it needs, which
// are put before it (each once, with the libraries they use first).

const LUA = new URL('./lua/', import.meta.url)
const USES = /^-- uses: (.+)\n/

function read (path: string): { uses: string[], body: string } {
  const text = readFileSync(new URL(path, LUA), 'utf8')
  const header = USES.exec(text)
  return { uses: header === null ? [] : (header[1] as string).split(',').map((name) => name.trim()), body: text }
}

function withLibraries (path: string, included: Set<string>): string {
  const { uses, body } = read(path)
  const libraries = uses.filter((name) => !included.has(name)).map((name) => {
    included.add(name)
    return withLibraries(`lib/${name}.lua`, included)
  })
  return [...libraries, body].join('\n')
}

/** The whole source of one script of lua/, with its libraries, as Redis runs it. */
export function loadScript (name: string): string {
  return withLibraries(`${name}.lua`, new Set()).replaceAll('{{SCHEMA_STAMP}}', SCHEMA_STAMP)
}
