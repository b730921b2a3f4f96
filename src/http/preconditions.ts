import type { Preconditions, Tagged } from '../store/types.js'

// Entity tags are opaque to clients. A store names each version of a record with a tag
// that includes the record's incarnation (see conversation-rules.ts), and these helpers
// only quote, unquote and compare those tags.

/** The `ETag` header for a store's tag: a strong entity tag, `"<tag>"`. */
export function etagHeader (tag: string): string {
  return `"${tag}"`
}

/**
 * Reads `If-Match` (and `If-None-Match: *`) into store preconditions. The header syntax
 * is validated by the route schema; weak tags never match, as strong comparison requires.
 */
export function preconditionsFrom (headers: { 'if-match'?: string, 'if-none-match'?: string }): Preconditions {
  const preconditions: Preconditions = {}
  const ifMatch = headers['if-match']
  if (ifMatch !== undefined) preconditions.ifMatch = ifMatch.trim() === '*' ? '*' : strongTags(ifMatch)
  if (headers['if-none-match'] === '*') preconditions.ifNoneMatch = true
  return preconditions
}

/** True when `If-None-Match` names the current tag, so a GET may answer 304. */
export function noneMatchHits (header: string | undefined, tag: string): boolean {
  if (header === undefined) return false
  if (header.trim() === '*') return true
  // GET uses weak comparison (RFC 9110 13.1.2), so W/"t" also matches "t".
  const current = etagHeader(tag)
  return entityTags(header).some((candidate) => candidate.replace(/^W\//, '') === current)
}

/** The tags of a list, split on the commas between tags rather than inside them. */
function entityTags (header: string): string[] {
  return header.match(/(W\/)?"[^"]*"/g) ?? []
}

/** The strong tags' contents; the stores' own tags never hold a comma, so those are dropped. */
function strongTags (header: string): string[] {
  return entityTags(header)
    .filter((tag) => tag.startsWith('"') && !tag.includes(','))
    .map((tag) => tag.slice(1, -1))
}

/**
 * The headers of an answer about one conversation: its `ETag`, and `Last-Event-ID`, the
 * position of the newest event the answer reflects, from which its event feed goes on.
 */
export function versionHeaders ({ etag, position }: Tagged): { etag: string, 'last-event-id': string } {
  return { etag: etagHeader(etag), 'last-event-id': position }
}
