/**
 * Ours+DINOv2 (beyond the paper): the aggregation network over the inversion's layers x
 * timesteps AND DINOv2 descriptor maps, each DINOv2 map with its own bottleneck and mixing
 * weight (`train --features sd,dinov2`). The paper's protocol otherwise (load size, descriptors
 * at the output resolution, nearest neighbour per pixel); DINOv2 sees the same stretched square
 * image, at the size the network was trained with.
 */
import { ConfigError } from '../../core/errors.ts';
import { tapCount } from '../../model/unet/config.ts';
import { parseDinov2MapName } from '../../model/dinov2/index.ts';
import { extrasOf } from '../../aggregation/config.ts';
import type { EvalOptions } from '../evaluate.ts';
import { MULTI, multiInversion } from './features.ts';
import { defineMethod } from './method.ts';

/** The network's DINOv2 map and the input size it was trained at. */
function dinov2MapOf(o: EvalOptions): { name: string; size: number } {
  const maps = extrasOf(o.dinov2Network!.config);
  const parsed = maps.map((m) => ({ name: m.name, p: parseDinov2MapName(m.name) }));
  if (maps.length !== 1 || !parsed[0].p)
    throw new ConfigError(
      `ours+dinov2: the network mixes ${maps.length ? maps.map((m) => m.name).join(', ') : 'diffusion features only'}; expected one DINOv2 map (a network from train --features sd,dinov2)`,
    );
  return { name: parsed[0].name, size: parsed[0].p.size };
}

export const oursDinov2 = defineMethod({
  key: 'ours+dinov2',
  byDefault: false,
  showsPublished: true,
  row: { label: 'Ours+DINOv2 (not in the paper)', layers: '13', timesteps: '11' },
  uses: [MULTI, 'dinov2-stretch'],
  requires: (o) =>
    !o.dinov2Network
      ? {
          key: 'dinov2-network',
          message: (m) =>
            `method(s) ${m.join(', ')} need a network trained on SD and DINOv2 features: pass --dinov2-aggregator <ckpt> (hyperfeatures train --features sd,dinov2 makes one) and --dinov2 <the same DINOv2>`,
        }
      : !o.dinov2
        ? {
            key: 'dinov2',
            message: (m) =>
              `method(s) ${m.join(', ')} need DINOv2: pass --dinov2 (the model the network was trained with)`,
          }
        : undefined,
  check: (o) => {
    const { name, size } = dinov2MapOf(o);
    const mine = o.dinov2!.mapName(size);
    if (mine !== name) {
      const [a, b] = [parseDinov2MapName(name)!, parseDinov2MapName(mine)!];
      const diff = (['width', 'layer', 'facet', 'weights'] as const)
        .filter((k) => a[k] !== b[k])
        .map((k) => `${k}: network ${a[k]}, given ${b[k]}`);
      throw new ConfigError(
        `ours+dinov2: the network was trained on other DINOv2 features (${diff.join('; ')}); pass the DINOv2 model, --dinov2-layer and --dinov2-facet it was trained with`,
      );
    }
  },
  describe: (o, sd) => {
    const L = tapCount(sd.unet.config);
    const net = o.dinov2Network;
    const map = net ? extrasOf(net.config)[0] : undefined;
    const share = net?.extraMixingWeights()[0]?.weight;
    return {
      layers: L + 1,
      timesteps: net?.config.saveTimesteps.length ?? 0,
      definition: `the aggregation network over all ${L} layers x save timesteps [${net?.config.saveTimesteps.join(', ')}] of the inversion and the DINOv2 map ${map?.name ?? ''} (its own bottleneck; mixing-weight share ${share === undefined ? '?' : share.toFixed(4)})`,
    };
  },
  descriptors: async (f) => {
    const { o, R } = f.run;
    const { size } = dinov2MapOf(o);
    const stacks = await multiInversion(f);
    const maps = await f.get('dinov2-stretch', () =>
      Promise.all(
        [f.pair.source, f.pair.target].map((img) =>
          o.dinov2!.describeImage(img, { loadSize: size, colorManaged: o.extract?.colorManaged }),
        ),
      ),
    );
    return Promise.all(stacks.map((s, k) => o.dinov2Network!.aggregate([s], R, [[maps[k]]])));
  },
});
