import type { Preconditions } from '../store/types.js'

/** A strong entity tag for a version, as sent in `ETag`: `"7"`. */
export function etagOf (version: number): string {
  return `"${version}"`
}

/**
 * Reads `If-Match` (and `If-None-Match: *`) into store preconditions. The header syntax
 * is validated by the route schema; weak tags never match, as strong comparison requires.
 */
export function preconditionsFrom (headers: { 'if-match'?: string, 'if-none-match'?: string }): Preconditions {
  const preconditions: Preconditions = {}
  const ifMatch = headers['if-match']
  if (ifMatch !== undefined) preconditions.ifMatch = ifMatch.trim() === '*' ? '*' : strongVersions(ifMatch)
  if (headers['if-none-match'] === '*') preconditions.ifNoneMatch = true
  return preconditions
}

/** True when `If-None-Match` names the current version, so a GET may answer 304. */
export function noneMatchHits (header: string | undefined, version: number): boolean {
  if (header === undefined) return false
  if (header.trim() === '*') return true
  // GET uses weak comparison (RFC 9110 13.1.2), so W/"7" also matches "7".
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etagOf(version))
}

function strongVersions (header: string): number[] {
  return header.split(',')
    .map((tag) => tag.trim())
    .filter((tag) => /^"\d+"$/.test(tag))
    .map((tag) => Number(tag.slice(1, -1)))
}
