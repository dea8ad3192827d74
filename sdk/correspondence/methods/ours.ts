/** Ours: the aggregation network over every layer x save timestep of the inversion. */
import { ConfigError } from '../../core/errors.ts';
import { extrasOf } from '../../aggregation/config.ts';
import { tapCount } from '../../model/unet/config.ts';
import { multiInversion, MULTI } from './features.ts';
import { defineMethod } from './method.ts';
import { networkRequirement } from './network.ts';

export const ours = defineMethod({
  key: 'ours',
  byDefault: true,
  uses: [MULTI],
  requires: (o) => (o.network ? undefined : networkRequirement(o)),
  check: (o) => {
    const extras = o.network ? extrasOf(o.network.config) : [];
    if (extras.length)
      throw new ConfigError(
        `ours: this network also mixes ${extras.map((e) => e.name).join(', ')}; evaluate it as ours+dinov2 (--dinov2-aggregator, --dinov2)`,
      );
  },
  describe: (o, sd) => {
    const L = tapCount(sd.unet.config);
    return {
      layers: L,
      timesteps: o.network?.config.saveTimesteps.length ?? 0,
      definition: `the aggregation network over all ${L} layers x save timesteps [${o.network?.config.saveTimesteps.join(', ')}] of the inversion`,
    };
  },
  descriptors: async (f) =>
    Promise.all((await multiInversion(f)).map((s) => f.run.o.network!.aggregate([s], f.run.R))),
});
