/**
 * Lotus at SD-2 size (random weights from the generator) on a 768-pixel image: seconds per
 * image (after a warm-up) and peak memory. Prints one JSON line.
 * usage: tsx bench/lotus-case.ts <modelDir> <image> <processingRes>
 */
import { performance } from 'node:perf_hooks';
import { Lotus } from '../sdk/lotus/pipeline.ts';
import { unetFlops } from '../sdk/model/unet/flops.ts';
import { processingSize } from '../sdk/lotus/pipeline.ts';

const [dir, image, resArg] = process.argv.slice(2);
const res = Number(resArg ?? 768);
const t0 = performance.now();
const lotus = await Lotus.fromModel(dir);
const loadSeconds = (performance.now() - t0) / 1000;
await lotus.predict(image, { processingRes: res });
const t1 = performance.now();
const r = await lotus.predict(image, { processingRes: res });
const seconds = (performance.now() - t1) / 1000;
const [, h, w] = r.depth!.shape;
const size = processingSize(h, w, res);
await lotus.dispose();
console.log(
  JSON.stringify({
    processingRes: res,
    processedSize: size,
    loadSeconds,
    secondsPerImage: seconds,
    unetGflop: unetFlops(lotus.unet.config, Math.ceil(size.height / 8), Math.ceil(size.width / 8), 2) / 1e9,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
