/** SD-Layer-Pruned: the raw map the network weights highest. */
import { MULTI, multiInversion } from './features.ts';
import { defineMethod } from './method.ts';
import { networkRequirement } from './network.ts';

export const sdLayerPruned = defineMethod({
  key: 'sd-layer-pruned',
  byDefault: true,
  uses: [MULTI],
  requires: (o) => (o.network ? undefined : networkRequirement(o)),
  describe: (o) => {
    const top = o.network?.topMixingWeights(1)[0];
    return {
      layers: 1,
      timesteps: 1,
      definition: top
        ? `raw layer ${top.layer} at save timestep ${top.saveTimestep}: the network's highest mixing weight (${top.weight.toFixed(4)})`
        : 'raw map with the highest mixing weight',
    };
  },
  descriptors: async (f) => {
    const top = f.run.o.network!.topMixingWeights(1)[0];
    return (await multiInversion(f)).map((s) => s.select([top.saveTimestep], [top.layer]).concat(f.run.R));
  },
});
