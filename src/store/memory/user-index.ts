import { compareListOrder } from '../conversation-rules.js'

/** A conversation's position in its user's list: (updatedAt desc, id desc). */
export interface IndexKey { updatedAt: number, id: string }

/** Per user, the ids of their conversations kept sorted in list order. */
export class MemoryUserIndex {
  readonly #byUser = new Map<string, IndexKey[]>()

  /** The user's keys in list order; the caller must not change the array. */
  keys (userId: string): readonly IndexKey[] {
    return this.#byUser.get(userId) ?? []
  }

  add (userId: string, key: IndexKey): void {
    let index = this.#byUser.get(userId)
    if (index === undefined) {
      index = []
      this.#byUser.set(userId, index)
    }
    index.splice(firstAfter(index, key), 0, key)
  }

  remove (userId: string, key: IndexKey): void {
    const index = this.#byUser.get(userId)
    if (index === undefined) return
    const position = firstAfter(index, key) - 1
    const found = index[position]
    if (found !== undefined && compareListOrder(found, key) === 0) index.splice(position, 1)
    if (index.length === 0) this.#byUser.delete(userId)
  }

  clear (): void {
    this.#byUser.clear()
  }
}

/** Position of the first key that sorts after `key` (binary search). */
export function firstAfter (index: readonly IndexKey[], key: IndexKey): number {
  let low = 0
  let high = index.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (compareListOrder(index[middle] as IndexKey, key) <= 0) low = middle + 1
    else high = middle
  }
  return low
}
