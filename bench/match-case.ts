/**
 * Matching and evaluation speed: nearest neighbours of 4096 query points between two
 * 64x64x384 descriptor maps (one onnxruntime matrix product), and end-to-end `eval` seconds
 * per pair on the tiny model with the share per stage. Prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matchPointsBatched, type PointYX } from '../sdk/correspondence/match.ts';
import { evaluatePairs } from '../sdk/correspondence/evaluate.ts';
import { loadSpairPairList } from '../sdk/data/pairs.ts';
import { loadStableDiffusion } from '../sdk/diffusion/pipeline.ts';
import { invertImages } from '../sdk/diffusion/extract.ts';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { demoCheckpoint } from '../sdk/model/tiny/index.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';

const DATA = join(dirname(fileURLToPath(import.meta.url)), '..', 'notebooks', 'data', 'spair');
const rng = new Rng(0);
const desc = () => new Tensor(rng.normalArray(384 * 64 * 64), [1, 384, 64, 64]);
const [a, b] = [desc(), desc()];
const all: PointYX[] = Array.from({ length: 4096 }, (_, i) => [Math.floor(i / 64), i % 64]);
await matchPointsBatched(a, b, all.slice(0, 10)); // warm-up
let t = performance.now();
await matchPointsBatched(a, b, all.slice(0, 10));
const match10Ms = performance.now() - t;
t = performance.now();
await matchPointsBatched(a, b, all);
const match4096Ms = performance.now() - t;

// eval on the tiny model, paper settings (50 steps, load 224, 512 pixels, output 64), 2 pairs
const sd = await loadStableDiffusion(await demoCheckpoint('sd15'));
const pairs = loadSpairPairList(join(DATA, 'spair_71k_test-6.json'), DATA).slice(0, 2);
const [probe] = await invertImages(sd, [pairs[0].source], { steps: 1, cache: false });
const net = AggregationNetwork.create({
  featureDims: probe.channels(),
  saveTimesteps: [49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0],
  projectionDim: 384,
  numNormGroups: 32,
});
t = performance.now();
for (const p of pairs) await invertImages(sd, [p.source, p.target], { cache: false });
const extractSeconds = (performance.now() - t) / 1000 / pairs.length;
t = performance.now();
await evaluatePairs(sd, pairs, { methods: ['ours'], network: net, extract: { cache: false } });
const evalSeconds = (performance.now() - t) / 1000 / pairs.length;
await sd.dispose();
console.log(
  JSON.stringify({
    match64x64x384: { points10Ms: match10Ms, points4096Ms: match4096Ms },
    evalTinyPerPair: {
      seconds: evalSeconds,
      extractionShare: extractSeconds / evalSeconds,
      aggregationAndMatchingShare: 1 - extractSeconds / evalSeconds,
    },
  }),
);
