/**
 * Index moves still in flight, per user. On a Redis Cluster the user's index lives in
 * another slot than the conversation, so an append answers once its own script has
 * committed and moves the index entry after it, without the caller waiting. A list or a
 * delete-all of that user in this process first waits for those moves, so a caller reads
 * its own appends in list order; another process may, for a moment, still see the
 * conversation at its previous position, which is where a crash between the two steps
 * would leave it too.
 */
export class PendingIndexMoves {
  readonly #pending = new Map<string, Set<Promise<void>>>()

  /** Keeps `move` until it settles; it must not reject. */
  track (userId: string, move: Promise<void>): void {
    let moves = this.#pending.get(userId)
    if (moves === undefined) this.#pending.set(userId, moves = new Set())
    moves.add(move)
    move.finally(() => {
      moves.delete(move)
      if (moves.size === 0 && this.#pending.get(userId) === moves) this.#pending.delete(userId)
    }).catch(() => {})
  }

  /** Resolves once every move of `userId` begun before this call has settled. */
  async settled (userId: string): Promise<void> {
    const moves = this.#pending.get(userId)
    if (moves !== undefined) await Promise.all([...moves])
  }
}
