/**
 * Aggregation network at SD-1.5 size (11 timesteps x 12 layers = 132 maps, projection 384):
 * forward time per image at 64x64 and training-step time for a pair (batch 2) at 32x32
 * (the one-graph training step keeps every activation: ~22 GB at 64x64, more than this
 * 24 GB machine can spare), with analytic FLOPs. Prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { Trainer } from '../sdk/aggregation/train/trainer.ts';
import type { AggregationConfig } from '../sdk/aggregation/config.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';
import { PAPER_SAVE_TIMESTEPS } from '../sdk/diffusion/plan.ts';

const R = 64;
const TRAIN_R = Number(process.argv[2] ?? 32);
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
const flopsAt = (r: number) =>
  config.saveTimesteps.length * config.featureDims.reduce((a, c) => a + perPixel(c), 0) * r * r;
const forwardFlops = flopsAt(R);
const total = config.saveTimesteps.length * config.featureDims.reduce((a, c) => a + c, 0);
const rng = new Rng(0);
const net = AggregationNetwork.create(config, 0);
const one = new Tensor(rng.normalArray(total * R * R), [1, total, R, R]);
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};
await net.forward(one); // warm-up: graph build + first run
const forwardSeconds = await time(() => net.forward(one));
const pair = new Tensor(new Float32Array(2 * one.size), [2, total, R, R]);
pair.data.set(one.data);
pair.data.set(
  one.data.map((v) => v * 0.9),
  one.size,
);
const src: [number, number][] = Array.from({ length: 20 }, () => [rng.int(R), rng.int(R)]);
const trainer = new Trainer(net);
await trainer.trainStep(pair, src, src); // warm-up
const stepSeconds = await time(() => trainer.trainStep(pair, src, src));
// backward of each conv is two convs of the same size (dx, dw) -> ~3x the forward, on 2 images
const stepFlops = 2 * 3 * flopsAt(TRAIN_R);
console.log(
  JSON.stringify({
    forwardGflopPerImage: forwardFlops / 1e9,
    forwardSeconds,
    forwardGflops: forwardFlops / 1e9 / forwardSeconds,
    trainResolution: TRAIN_R,
    trainStepGflop: stepFlops / 1e9,
    trainStepSeconds: stepSeconds,
    trainStepGflops: stepFlops / 1e9 / stepSeconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
