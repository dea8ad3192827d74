/** DIFT (Tang et al. 2023; not in the paper): noised features of one up-block, one step. */
import { diftFeatures } from './features.ts';
import { diftSettings } from './dift-settings.ts';
import { defineMethod } from './method.ts';

export const dift = defineMethod({
  key: 'dift',
  byDefault: false,
  row: { label: 'DIFT (not in the paper)', layers: '1', timesteps: '1' },
  uses: ['dift'],
  describe: (o) => {
    const d = diftSettings(o.dift);
    return {
      layers: 1,
      timesteps: 1,
      definition: `DIFT-style: the clean latent noised to t = ${d.timestep} (q(x_t | x0)), one UNet call, output of up-block ${d.upBlock}, averaged over ${d.ensemble} seeded noises (seed ${d.seed}); prompt "${d.prompt}"`,
    };
  },
  // matched at their own resolution, upsampled to the load size like every method
  descriptors: (f) => diftFeatures(f),
});
