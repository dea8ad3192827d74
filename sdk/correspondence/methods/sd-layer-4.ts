/** SD-Layer-4: one raw decoder layer at the clean call. */
import { ConfigError } from '../../core/errors.ts';
import { tapCount } from '../../model/unet/config.ts';
import { CLEAN, CLEAN_CALL, cleanStep } from './features.ts';
import { defineMethod } from './method.ts';

export const sdLayer4 = defineMethod({
  key: 'sd-layer-4',
  byDefault: true,
  uses: [CLEAN],
  check: (_o, sd) => {
    if (tapCount(sd.unet.config) < 4)
      throw new ConfigError(
        `sd-layer-4 needs decoder layer 4; this UNet has ${tapCount(sd.unet.config)} layers`,
      );
  },
  describe: () => ({
    layers: 1,
    timesteps: 1,
    definition: `raw decoder layer 4 (up_blocks.1.resnets.0) at ${CLEAN_CALL}`,
  }),
  descriptors: async (f) => (await cleanStep(f)).map((s) => s.select([0], [4]).concat(f.run.R)),
});
