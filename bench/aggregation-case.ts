/**
 * Aggregation network at SD-1.5 size (11 timesteps x 12 layers = 132 maps, projection 384),
 * in its own process: `forward <R>` times one image's forward pass, `train <R>` one AdamW
 * training step on a pair given as a stacked tensor, `train-paper <R>` the paper's setting:
 * batch 2 (two pairs), FeatureStacks with the raw decoder map sizes of a 64x64 latent, resized
 * per layer. FLOPs are analytic (a conv's backward is two convs of its size; the layerwise step
 * also recomputes each layer's forward). Prints one JSON line with the peak RSS.
 */
import { performance } from 'node:perf_hooks';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { Trainer } from '../sdk/aggregation/train/trainer.ts';
import type { AggregationConfig } from '../sdk/aggregation/config.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';
import { PAPER_SAVE_TIMESTEPS } from '../sdk/diffusion/plan.ts';
import { FeatureStack } from '../sdk/diffusion/feature-stack.ts';

const mode = (['train', 'train-paper'].includes(process.argv[2]) ? process.argv[2] : 'forward') as
  'forward' | 'train' | 'train-paper';
const R = Number(process.argv[3] ?? 64);
const config: AggregationConfig = {
  featureDims: [1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320],
  saveTimesteps: [...PAPER_SAVE_TIMESTEPS],
  projectionDim: 384,
  numNormGroups: 32,
};
const b = config.projectionDim / 4;
const perPixel = (c: number) =>
  2 *
  (c * b +
    b * b * 9 +
    b * config.projectionDim +
    (c !== config.projectionDim ? c * config.projectionDim : 0));
const forwardFlops =
  config.saveTimesteps.length * config.featureDims.reduce((a, c) => a + perPixel(c), 0) * R * R;
const total = config.saveTimesteps.length * config.featureDims.reduce((a, c) => a + c, 0);
const rng = new Rng(0);
const net = AggregationNetwork.create(config, 0);
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};
let result: Record<string, number | string>;
if (mode === 'forward') {
  const one = new Tensor(rng.normalArray(total * R * R), [1, total, R, R]);
  await net.forward(one); // warm-up: graph build + first run
  const seconds = await time(() => net.forward(one));
  result = { mode, resolution: R, gflop: forwardFlops / 1e9, seconds, gflops: forwardFlops / 1e9 / seconds };
} else if (mode === 'train-paper') {
  const sizes = [8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
  const meta = { model: 'bench', mode: 'inversion' as const, steps: 50, imageSize: 512, seed: null };
  const stack = () =>
    new FeatureStack(
      config.saveTimesteps,
      config.featureDims.map((_, l) => l + 1),
      config.saveTimesteps.map(() =>
        config.featureDims.map(
          (c, l) => new Tensor(rng.normalArray(c * sizes[l] ** 2), [1, c, sizes[l], sizes[l]]),
        ),
      ),
      meta,
    );
  const pts = (): [number, number][] => Array.from({ length: 20 }, () => [rng.int(R), rng.int(R)]);
  const batch = [0, 1].map(() => ({ features: [stack(), stack()] as const, source: pts(), target: pts() }));
  const trainer = new Trainer(net, { resolution: R });
  const warm = await time(() => trainer.trainBatch(batch)); // graph build + first step
  const seconds = await time(() => trainer.trainBatch(batch));
  const useful = 4 * 3 * forwardFlops; // 4 images, forward + 2x backward
  const executed = 4 * 4 * forwardFlops; // + the recomputed forward
  result = {
    mode,
    resolution: R,
    batchPairs: 2,
    gflop: useful / 1e9,
    executedGflop: executed / 1e9,
    firstStepSeconds: warm,
    seconds,
    gflops: executed / 1e9 / seconds,
  };
} else {
  const pair = new Tensor(rng.normalArray(2 * total * R * R), [2, total, R, R]);
  const src: [number, number][] = Array.from({ length: 20 }, () => [rng.int(R), rng.int(R)]);
  const trainer = new Trainer(net);
  await trainer.trainStep(pair, src, src); // warm-up
  const seconds = await time(() => trainer.trainStep(pair, src, src));
  const flops = 2 * 3 * forwardFlops;
  result = { mode, resolution: R, gflop: flops / 1e9, seconds, gflops: flops / 1e9 / seconds };
}
console.log(JSON.stringify({ ...result, peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
