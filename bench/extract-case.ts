/**
 * One extraction benchmark in its own process: seconds per image for inversion at 512x512
 * (batch 1, cache off), and the share of time spent inside UNet calls.
 * usage: tsx bench/extract-case.ts <modelDir> <steps> <image> <cacheDir>
 */
import { performance } from 'node:perf_hooks';
import { loadStableDiffusion } from '../sdk/diffusion/pipeline.ts';
import { invertImages } from '../sdk/diffusion/extract.ts';
import type { UNet } from '../sdk/model/unet/index.ts';

const [dir, stepsArg, image, cacheDir] = process.argv.slice(2);
const steps = Number(stepsArg);
const sd = await loadStableDiffusion(dir, { cacheDir });
let unetMs = 0;
const inner = sd.unet;
const timed = {
  config: inner.config,
  async run(input: Parameters<UNet['run']>[0]) {
    const t0 = performance.now();
    try {
      return await inner.run(input);
    } finally {
      unetMs += performance.now() - t0;
    }
  },
};
const t0 = performance.now();
const [stack] = await invertImages({ ...sd, unet: timed as unknown as UNet }, [image], {
  steps,
  loadSize: 512,
  imageSize: 512,
  batchSize: 1,
  cache: false,
});
const totalMs = performance.now() - t0;
await sd.dispose();
console.log(
  JSON.stringify({
    steps,
    secondsPerImage: totalMs / 1000,
    unetShare: unetMs / totalMs,
    outsideUnetShare: 1 - unetMs / totalMs,
    stackMiB: (stack.size() * 4) / 2 ** 20,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
