/** Choosing nodes for new replicas: distinct, live, with room, weighted by free space. */

/** A node that may receive chunks. */
export interface Candidate {
  id: string;
  freeBytes: number;
}

/**
 * Picks `count` distinct candidates, each draw weighted by free space, so fuller nodes
 * fill more slowly. Returns fewer when there are fewer candidates.
 */
export function pickWeighted(candidates: Candidate[], count: number, random: () => number = Math.random): Candidate[] {
  const pool = [...candidates];
  const chosen: Candidate[] = [];
  while (chosen.length < count && pool.length > 0) {
    // A node reporting no space figure still gets a small weight rather than none.
    const weights = pool.map((c) => Math.max(c.freeBytes, 1));
    const total = weights.reduce((a, b) => a + b, 0);
    let point = random() * total;
    let index = 0;
    while (index < pool.length - 1 && point >= weights[index]!) {
      point -= weights[index]!;
      index++;
    }
    chosen.push(pool.splice(index, 1)[0]!);
  }
  return chosen;
}
