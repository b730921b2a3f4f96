import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { TenantIdSchema } from '../schemas.js'

// The callers file (AUTH_CALLERS_FILE): who may call the store, how, and what they may do.

export const ROLES = ['read', 'write', 'admin'] as const
export type Role = typeof ROLES[number]

const CallerSchema = z.strictObject({
  name: z.string().min(1).max(100).regex(/^[\w.:@-]+$/, 'letters, digits and . _ : @ - only'),
  /** The client id of an Entra ID app (a token's azp or appid claim). */
  appId: z.string().min(1).max(256).optional(),
  /** The SHA-256 of an API key, in hex: the key itself is never stored. */
  apiKeySha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits').transform((hex) => hex.toLowerCase()).optional(),
  roles: z.array(z.enum(ROLES)).min(1),
  tenants: z.array(z.union([z.literal('*'), TenantIdSchema])).min(1),
  /** Overrides RATE_LIMIT_PER_MINUTE for this caller. */
  ratePerMinute: z.number().int().min(1).optional()
}).refine((caller) => caller.appId !== undefined || caller.apiKeySha256 !== undefined, { message: 'needs an appId or an apiKeySha256' })

const CallersFileSchema = z.strictObject({ callers: z.array(CallerSchema).min(1) })
  .refine(({ callers }) => unique(callers.map((caller) => caller.name)), { message: 'caller names must be unique' })
  .refine(({ callers }) => unique(callers.flatMap((caller) => caller.appId ?? [])), { message: 'an appId may name one caller only' })
  .refine(({ callers }) => unique(callers.flatMap((caller) => caller.apiKeySha256 ?? [])), { message: 'an apiKeySha256 may name one caller only' })

export type CallerEntry = z.output<typeof CallerSchema>

function unique (values: string[]): boolean {
  return new Set(values).size === values.length
}

/**
 * Reads and checks the callers file. The error names the file and the field at fault,
 * never the file's content.
 */
export function loadCallers (path: string): CallerEntry[] {
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new Error(`cannot read ${path} as JSON (${(error as NodeJS.ErrnoException).code ?? 'invalid JSON'})`)
  }
  const parsed = CallersFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    throw new Error(`${path}: ${issue.path.join('.') || 'callers'}: ${issue.message}`)
  }
  return parsed.data.callers
}
