/** Ours-One-Step: a network trained on the clean call's layers alone. */
import { tapCount } from '../../model/unet/config.ts';
import { CLEAN, CLEAN_CALL, cleanStep } from './features.ts';
import { defineMethod } from './method.ts';
import { networkRequirement } from './network.ts';

export const oneStep = defineMethod({
  key: 'one-step',
  byDefault: true,
  uses: [CLEAN],
  requires: (o) => (o.oneStepNetwork ? undefined : networkRequirement(o)),
  describe: (_o, sd) => ({
    layers: tapCount(sd.unet.config),
    timesteps: 1,
    definition: `the one-step network over all ${tapCount(sd.unet.config)} layers of ${CLEAN_CALL}`,
  }),
  descriptors: async (f) =>
    Promise.all((await cleanStep(f)).map((s) => f.run.o.oneStepNetwork!.aggregate([s], f.run.R))),
});
