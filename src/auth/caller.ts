import { createHash, timingSafeEqual } from 'node:crypto'
import { ForbiddenError } from '../errors.js'
import { canReach } from '../store/conversation-rules.js'
import { EVERYWHERE, type Reach } from '../store/types.js'
import { ROLES, type CallerEntry, type Role } from './callers.js'

/** Who sent a request, what it may do, and which conversations it may reach. */
export interface Caller {
  /** From the callers file; for logs and audit lines (never a token or key). */
  name: string
  /** With the roles each implies: admin ⊃ write ⊃ read. */
  roles: ReadonlySet<Role>
  reach: Reach
  /** Requests per minute; unset: no limit. */
  ratePerMinute?: number
}

/** Anyone, when authentication is off (a development setup). */
export const ANYONE: Caller = Object.freeze({ name: 'anonymous', roles: new Set(ROLES), reach: EVERYWHERE })

/** A caller of the file, acting on its own behalf, or for one signed-in user (delegated). */
export function callerOf (entry: CallerEntry, defaultRate: number | undefined, userId?: string): Caller {
  const granted = Math.max(...entry.roles.map((role) => ROLES.indexOf(role)))
  const tenants = entry.tenants.includes('*') ? '*' : new Set(entry.tenants)
  const rate = entry.ratePerMinute ?? defaultRate
  return {
    name: entry.name,
    roles: new Set(ROLES.slice(0, granted + 1)),
    reach: userId === undefined ? { tenants } : { tenants, userId },
    ...(rate === undefined ? {} : { ratePerMinute: rate })
  }
}

// Hashing first gives equal-length buffers, so the comparison time reveals nothing.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * Finds the caller of an API key among keys known by their SHA-256, comparing against
 * every one so that the time taken does not depend on which one matched.
 */
export class ApiKeys {
  readonly #keys: Array<{ hash: Buffer, caller: Caller }>

  constructor (keys: Array<{ sha256: string, caller: Caller }>) {
    this.#keys = keys.map(({ sha256, caller }) => ({ hash: Buffer.from(sha256, 'hex'), caller }))
  }

  static digestOf (key: string): string {
    return digest(key).toString('hex')
  }

  get size (): number {
    return this.#keys.length
  }

  callerOf (presented: string): Caller | undefined {
    const hash = digest(presented)
    let found: Caller | undefined
    for (const key of this.#keys) {
      if (timingSafeEqual(key.hash, hash)) found = key.caller
    }
    return found
  }
}

/** A caller may create a conversation, or move one, only into its own reach: 403 otherwise. */
export function assertMayPlace (caller: Caller, conversation: { userId: string, tenantId: string }): void {
  const { reach } = caller
  if (reach.userId !== undefined && reach.userId !== conversation.userId) {
    throw new ForbiddenError(`Caller '${caller.name}' acts for one user and may not write another user's conversations`)
  }
  if (!canReach(reach, conversation)) throw new ForbiddenError(`Caller '${caller.name}' may not write conversations of tenant '${conversation.tenantId}'`)
}
