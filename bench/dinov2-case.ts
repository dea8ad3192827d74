/**
 * DINOv2 descriptors of one image at SD-DINO's input size: load (graph build included), then
 * `calls` timed descriptor maps of random pixels (the feature cache off). Prints one JSON line
 * with seconds per image and peak RSS.
 * usage: tsx bench/dinov2-case.ts <model dir> <size> <calls>
 */
import { performance } from 'node:perf_hooks';
import { Rng } from '../sdk/core/rng.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Dinov2Model } from '../sdk/model/dinov2/index.ts';

const [dir, sizeArg, callsArg] = process.argv.slice(2);
const [size, calls] = [Number(sizeArg), Number(callsArg)];
const t0 = performance.now();
const model = await Dinov2Model.load(dir, { featureCache: false });
const loadSeconds = (performance.now() - t0) / 1000;
const pixels = new Tensor(new Rng(0).normalArray(3 * size * size), [1, 3, size, size]);
await model.describePixels(pixels); // first call: allocations
const times: number[] = [];
for (let i = 0; i < calls; i++) {
  const t = performance.now();
  await model.describePixels(pixels);
  times.push((performance.now() - t) / 1000);
}
const c = model.config;
console.log(
  JSON.stringify({
    hidden: c.hiddenSize,
    blocks: c.layers,
    swiglu: c.swiglu,
    size,
    grid: size / c.patchSize,
    loadSeconds,
    secondsPerImage: times.reduce((a, b) => a + b, 0) / times.length,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
await model.dispose();
