/** Ours-Pruned: the network restricted to its k highest-weighted maps (the paper: k = 1). */
import type { AggregationNetwork } from '../../aggregation/network.ts';
import { MULTI, multiInversion } from './features.ts';
import { defineMethod } from './method.ts';
import { networkRequirement } from './network.ts';

export const oursPruned = defineMethod({
  key: 'ours-pruned',
  byDefault: true,
  uses: [MULTI],
  requires: (o) => (o.network ? undefined : networkRequirement(o)),
  describe: (o) => {
    const k = o.prunedK ?? 1;
    const top = o.network?.topMixingWeights(k) ?? [];
    return {
      layers: new Set(top.map((w) => w.layer)).size,
      timesteps: new Set(top.map((w) => w.saveTimestep)).size,
      definition:
        `the network restricted to its ${k === 1 ? 'single highest-weighted map' : `${k} highest-weighted maps`} (${top.map((w) => `layer ${w.layer} @ save timestep ${w.saveTimestep}`).join(', ')}) through its trained bottleneck` +
        (k === 1 ? '' : `; NOT the paper's row, which keeps 1`),
    };
  },
  prepare: async (run) => {
    const pruned = run.o.network!.pruned(run.o.prunedK ?? 1);
    run.prepared.set('ours-pruned', pruned);
    return pruned;
  },
  descriptors: async (f) => {
    const pruned = f.run.prepared.get('ours-pruned') as AggregationNetwork;
    return Promise.all((await multiInversion(f)).map((s) => pruned.aggregate([s], f.run.R)));
  },
});
