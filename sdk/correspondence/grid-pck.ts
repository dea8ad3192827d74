/** PCK of an aggregation network on pairs whose ground truth is given on the descriptor grid. */
import type { AggregationNetwork } from '../aggregation/network.ts';
import type { TrainingPair } from '../aggregation/train/loop.ts';
import { matchPoints } from './match.ts';

/**
 * PCK@alpha of a network on pairs with grid-coordinate ground truth (e.g. held-out mirrored
 * pairs): nearest neighbour of each source cell, correct within alpha x R cells.
 */
export async function gridPck(
  network: AggregationNetwork,
  pairs: readonly TrainingPair[],
  alpha = 0.1,
): Promise<number> {
  let ok = 0;
  let n = 0;
  for (const p of pairs) {
    const d = await network.forward(typeof p.features === 'function' ? await p.features() : p.features);
    const R = d.shape[2];
    for (const [k, m] of matchPoints(d.sliceFirst(0), d.sliceFirst(1), p.source).entries()) {
      n++;
      if (Math.hypot(m.target[0] - p.target[k][0], m.target[1] - p.target[k][1]) <= alpha * R) ok++;
    }
  }
  return n ? ok / n : 0;
}
