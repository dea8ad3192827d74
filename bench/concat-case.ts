/**
 * SD-Concat-All at the paper's resolution: the 12 raw SD-1.5 taps of one timestep (64x64
 * latent), each resized to 64 and concatenated (10560 channels), matched at load size 224 for
 * a pair with 15 keypoints by channel-chunked cosine similarity. Prints one JSON line with the
 * seconds, the peak RSS and what the unchunked upsampled maps would take.
 */
import { performance } from 'node:perf_hooks';
import { FeatureStack } from '../sdk/diffusion/feature-stack.ts';
import { matchPointsChunked, type PointYX } from '../sdk/correspondence/match.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';

const TAPS = [1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320];
const SIZES = [8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
const rng = new Rng(0);
const stack = () =>
  new FeatureStack(
    [0],
    TAPS.map((_, i) => i + 1),
    [TAPS.map((c, i) => new Tensor(rng.normalArray(c * SIZES[i] ** 2), [1, c, SIZES[i], SIZES[i]]))],
    { model: 'random', mode: 'inversion', steps: 1, imageSize: 512, seed: null },
  );
const t0 = performance.now();
const [a, b] = [stack().concat(64), stack().concat(64)];
const concatSeconds = (performance.now() - t0) / 1000;
const points: PointYX[] = Array.from({ length: 15 }, (_, i) => [10 + i * 13, 200 - i * 11]);
const t1 = performance.now();
await matchPointsChunked(a, b, points, { loadSize: 224 });
const matchSeconds = (performance.now() - t1) / 1000;
const channels = a.shape[1];
console.log(
  JSON.stringify({
    channels,
    loadSize: 224,
    points: points.length,
    concatSeconds,
    matchSeconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    unchunkedUpsampledMiB: (2 * channels * 224 * 224 * 4) / 2 ** 20,
  }),
);
