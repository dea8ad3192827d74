/** SD-Concat-All: every raw decoder layer at the clean call, resized and concatenated. */
import { tapCount } from '../../model/unet/config.ts';
import { CHUNKED_DIM } from '../match.ts';
import { CLEAN, CLEAN_CALL, cleanStep } from './features.ts';
import { defineMethod } from './method.ts';

export const sdConcatAll = defineMethod({
  key: 'sd-concat-all',
  byDefault: true,
  uses: [CLEAN],
  describe: (_o, sd) => {
    const L = tapCount(sd.unet.config);
    return {
      layers: L,
      timesteps: 1,
      definition: `all ${L} raw decoder layers, each resized to the output resolution and concatenated, at ${CLEAN_CALL}; above ${CHUNKED_DIM} channels the cosine similarity is accumulated over channel chunks`,
    };
  },
  descriptors: async (f) => (await cleanStep(f)).map((s) => s.concat(f.run.R)),
});
