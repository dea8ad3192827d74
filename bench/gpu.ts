/**
 * `npm run bench -- --device webgpu` (or cuda): the GPU path's timings in one process: a UNet
 * call with taps, a 50-step extraction of a 512 image, the aggregation network's forward and a
 * training step, and Lotus at 768. On a real GPU the SD-1.5-sized random model is used and each
 * number comes with achieved TFLOP/s (against `--gpu-peak-tflops`, the GPU's fp32 peak, when
 * given). On a software adapter (SwiftShader, llvmpipe) the run is labelled an emulation, uses
 * the tiny model, and its numbers are never GPU speed. `--precision fp16` times the half-precision
 * graphs (UNet, VAE, text encoder; GPUs with half-precision shaders only). Writes
 * bench/results/<timestamp>-<device>[-fp16].json.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFileAtomicSync } from '../sdk/core/fs.ts';
import { hyperfeaturesCacheDir } from '../sdk/core/paths.ts';
import { makeTinyCheckpoint } from '../sdk/model/tiny/index.ts';
import { UNet } from '../sdk/model/unet/index.ts';
import { unetFlops } from '../sdk/model/unet/flops.ts';
import { adapterSummary, softwareAdapterOnly } from '../sdk/model/adapter.ts';
import { isDevice, transfers } from '../sdk/model/runtime.ts';
import { loadStableDiffusion } from '../sdk/diffusion/pipeline.ts';
import { invertImages } from '../sdk/diffusion/extract.ts';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { Trainer } from '../sdk/aggregation/train/trainer.ts';
import { Lotus } from '../sdk/lotus/pipeline.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';
import { benchInput } from './calls.ts';
import { machineInfo } from './machine.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const device = arg('--device') ?? 'webgpu';
if (!isDevice(device) || device === 'cpu')
  throw new Error(`--device: expected webgpu or cuda, got ${device}`);
const precision = arg('--precision') ?? 'fp32';
if (precision !== 'fp32' && precision !== 'fp16')
  throw new Error(`--precision: expected fp32 or fp16, got ${precision}`);
const peakArg = arg('--gpu-peak-tflops');
const peakTflops = peakArg === undefined ? undefined : Number(peakArg);
const emulated = device === 'webgpu' && softwareAdapterOnly();
const say = (s: string) => process.stderr.write(`[bench ${device}] ${s}\n`);
say(adapterSummary());
if (emulated && precision === 'fp16')
  throw new Error(
    '--precision fp16 needs an adapter with half-precision shaders; the only one here is a software Vulkan, which has none',
  );
if (emulated)
  say(
    'EMULATION: the only WebGPU adapter here is a CPU Vulkan; these numbers check the path runs, they are not GPU speed',
  );

const size = emulated ? 'tiny' : 'full';
const model = join(hyperfeaturesCacheDir(), 'bench-models', size === 'tiny' ? 'tiny-sd15' : 'sd15-sized');
if (!existsSync(join(model, 'model_index.json'))) {
  say(`generating the ${size} model (random weights) in ${model}`);
  await makeTinyCheckpoint(model, { style: 'sd15', size, seed: 0 });
}
const cacheDir = mkdtempSync(join(tmpdir(), 'hf-bench-gpu-'));
const ms = async (f: () => Promise<unknown>, n: number) => {
  await f(); // shaders compiled, buffers allocated
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t0) / n;
};
const rate = (flop: number, msPer: number) => {
  const tflops = flop / (msPer / 1e3) / 1e12;
  return { achievedTflops: tflops, ...(peakTflops ? { ofPeak: tflops / peakTflops } : {}) };
};

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  device,
  adapter: adapterSummary(),
  emulation: emulated,
  note: emulated
    ? 'software Vulkan (CPU): correctness path only, not GPU speed'
    : `GPU timings (${precision}); TFLOP/s are multiply-adds x2 over the model FLOP count`,
  precision,
  machine: machineInfo(),
  model: size,
  ...(peakTflops ? { gpuPeakTflops: peakTflops } : {}),
};
const models = { device, cacheDir, precision } as const;

// UNet call with all taps at 64x64 latents (512 pixels); 16x16 on an emulation
const latent = emulated ? 16 : 64;
const unet = await UNet.load(model, models);
const input = benchInput(unet.config, latent);
const unetMs = await ms(() => unet.run(input), emulated ? 2 : 10);
results.unetCall = { latent, msPerCall: unetMs, ...rate(unetFlops(unet.config, latent, latent), unetMs) };
say(`UNet call at ${latent}x${latent}: ${unetMs.toFixed(1)} ms`);
await unet.dispose();

// 50-step extraction of one 512 image (128 on an emulation), the loop on the device
const sd = await loadStableDiffusion(model, models);
const steps = emulated ? 5 : 50;
const imageSize = emulated ? 128 : 512;
const photo = join(HERE, '..', 'notebooks/data/photos/chelsea.png');
const before = transfers.readbacks;
const t0 = performance.now();
await invertImages(sd, [photo], { steps, imageSize, cache: false });
const extractMs = performance.now() - t0;
const lat = imageSize / 8;
results.extraction = {
  steps,
  imageSize,
  seconds: extractMs / 1e3,
  readbacks: transfers.readbacks - before,
  ...rate(steps * unetFlops(sd.unet.config, lat, lat), extractMs),
};
say(`${steps}-step extraction of a ${imageSize} image: ${(extractMs / 1e3).toFixed(1)} s`);
await sd.dispose();

// aggregation network at the paper's setting: 12 layers x 2 timesteps, 64x64 maps
const dims = [1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320];
const net = AggregationNetwork.create(
  { featureDims: dims, saveTimesteps: [1, 0], projectionDim: 384, numNormGroups: 32 },
  0,
  { device },
);
const R = emulated ? 16 : 64;
const total = 2 * dims.reduce((a, b) => a + b, 0);
const feats = new Tensor(new Rng(1).normalArray(2 * total * R * R), [2, total, R, R]);
const fwdMs = await ms(() => net.forward(feats), emulated ? 1 : 5);
const trainer = new Trainer(net, { resolution: R });
const pts: [number, number][] = Array.from({ length: 20 }, (_, i) => [i % R, (3 * i) % R]);
const stepMs = await ms(() => trainer.trainStep(feats, pts, pts), emulated ? 1 : 5);
results.aggregation = { resolution: R, forwardMsPerPair: fwdMs, trainStepMs: stepMs };
say(`aggregation at ${R}x${R}: forward ${fwdMs.toFixed(0)} ms, training step ${stepMs.toFixed(0)} ms`);
await trainer.dispose();
await net.dispose();

// Lotus at 768 (128 on an emulation)
const lotusDir = join(hyperfeaturesCacheDir(), 'bench-models', `lotus-d-${size}`);
if (!existsSync(join(lotusDir, 'model_index.json')))
  await makeTinyCheckpoint(lotusDir, { style: 'lotus-d', size, seed: 0 });
const lotus = await Lotus.fromModel(lotusDir, models);
const res = emulated ? 128 : 768;
const lotusMs = await ms(() => lotus.predict(photo, { processingRes: res }), emulated ? 1 : 3);
results.lotus = {
  processingRes: res,
  msPerImage: lotusMs,
  ...rate(unetFlops(lotus.unet.config, res / 8, res / 8, 1), lotusMs),
};
say(`Lotus-D at ${res}: ${lotusMs.toFixed(0)} ms per image`);
await lotus.dispose();

const dir = join(HERE, 'results');
mkdirSync(dir, { recursive: true });
const file = join(
  dir,
  `${results.date as string}-${device}${emulated ? '-emulation' : ''}${precision === 'fp16' ? '-fp16' : ''}.json`.replace(
    /:/g,
    '-',
  ),
);
writeFileAtomicSync(file, JSON.stringify(results, null, 2) + '\n');
say(`wrote ${file}`);
process.stdout.write(JSON.stringify(results) + '\n');
