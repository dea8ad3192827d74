/**
 * `npm run bench`: UNet timing on the tiny model and on an SD-1.5-sized random model at
 * 64x64 latents (CPU), against the machine's measured matmul peak. Writes
 * bench/results/<timestamp>.json and bench/results/latest.json. `--quick` skips the
 * SD-1.5-sized model (its 3.4 GB checkpoint is generated once and reused); `--no-sd15-50` skips
 * only the ~6 minute 50-step extraction at SD-1.5 size; `--only aggregation` runs just the
 * aggregation network cases (forward, training steps incl. the paper's setting) and writes
 * bench/results/<timestamp>-aggregation.json; likewise `--only unet|extract|lotus|correspondence`
 * (the last: matching, eval per pair and SD-Concat-All's chunked similarity at the paper's
 * resolution) and `--only dinov2` (DINOv2-base and -giant at SD-DINO's 840 px). With PyTorch's own ONNX export of the SD-1.5-sized UNet at
 * HYPERFEATURES_BENCH_EXPORT (default /tmp/ortspike/unet/unet.onnx, made by ../shared/perf-anchor),
 * the UNet section also times it, alternated with ours (fused and exact attention) in fresh
 * processes, and call by call with ours in one process (bench/pair-case.ts), same threads.
 * Likewise the VAE (encoder and decoder at 512 pixels) and the text encoder against PyTorch's
 * exports of the same architectures under HYPERFEATURES_BENCH_PEERS (default /tmp/ortspike:
 * vae/, text_encoder/, made by bench/peers/).
 * `--device webgpu|cuda` runs the GPU cases instead (bench/gpu.ts; on a software Vulkan they
 * are labelled an emulation, never GPU speed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { folderBytes, writeFileAtomic } from '../sdk/core/fs.ts';
import { hyperfeaturesCacheDir } from '../sdk/core/paths.ts';
import { makeTinyCheckpoint } from '../sdk/model/tiny/index.ts';
import { gemmPeak, machineInfo, matmulPeak } from './machine.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
// the GPU path has its own cases (bench/gpu.ts)
if (process.argv.includes('--device') && process.argv[process.argv.indexOf('--device') + 1] !== 'cpu') {
  await import('./gpu.ts');
  process.exit(0);
}
const quick = process.argv.includes('--quick');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
const SECTIONS = ['unet', 'extract', 'aggregation', 'lotus', 'correspondence', 'dinov2'];
if (only !== undefined && !SECTIONS.includes(only))
  throw new Error(`--only: expected one of ${SECTIONS.join(', ')}, got ${JSON.stringify(only)}`);
const section = (name: string) => !only || only === name;
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

async function ensureModel(name: string, size: 'tiny' | 'full'): Promise<string> {
  const dir = join(hyperfeaturesCacheDir(), 'bench-models', name);
  if (!existsSync(join(dir, 'model_index.json'))) {
    say(`generating ${name} (${size} widths, random weights) in ${dir}`);
    const t0 = performance.now();
    await makeTinyCheckpoint(dir, { style: 'sd15', size, seed: 0 });
    say(`  took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return dir;
}

function child(script: string, args: string[]) {
  const tsx = join(HERE, '..', 'node_modules', '.bin', 'tsx');
  const out = execFileSync(tsx, [join(HERE, script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

function unetCase(dir: string, latent: number, calls: number, cacheDir: string, attention = 'fused') {
  return child('unet-case.ts', [dir, String(latent), String(calls), cacheDir, attention]);
}

/** PyTorch's own ONNX export of the SD-1.5-sized UNet (../shared/perf-anchor), when one was made. */
const EXPORT_ONNX = process.env.HYPERFEATURES_BENCH_EXPORT ?? '/tmp/ortspike/unet/unet.onnx';
/** PyTorch's exports of the VAE and the text encoder (bench/peers/*.py), when made. */
const PEERS = process.env.HYPERFEATURES_BENCH_PEERS ?? '/tmp/ortspike';
/** Alternated call pairs (ours, the export) timed in one process. */
const PAIRS = 8;

type CaseResult = Record<string, unknown>;

/** The export and ours alternated twice, each run in a fresh process, the export first. */
function alternate(runExport: () => CaseResult, runOurs: () => CaseResult) {
  const runs = [0, 1].flatMap(() => [runExport(), runOurs()]);
  return { export: [runs[0], runs[2]], ours: [runs[1], runs[3]] };
}

/** Each side's better median (ms per call, as `msOf` reads it) and ours over the export's. */
function againstExport(sides: { export: CaseResult[]; ours: CaseResult[] }, msOf: (r: CaseResult) => number) {
  const exportMs = Math.min(...sides.export.map(msOf));
  const oursMs = Math.min(...sides.ours.map(msOf));
  return { exportMs, oursMs, oursOverExport: oursMs / exportMs };
}

/** The VAE or the text encoder against its export: every graph of it, alternated as above. */
function peerCase(
  component: 'vae' | 'text-encoder',
  dir: string,
  graphs: string[],
  calls: number,
  cacheDir: string,
) {
  const run = (who: 'export' | 'ours') => () =>
    child('peer-case.ts', [component, who, who === 'ours' ? dir : PEERS, String(calls), '512', cacheDir]);
  const sides = alternate(run('export'), run('ours'));
  const msOf = (g: string) => (r: CaseResult) => (r[g] as { msPerCall: number }).msPerCall;
  return { ...sides, ...Object.fromEntries(graphs.map((g) => [g, againstExport(sides, msOf(g))])) };
}

const PHOTO = join(HERE, '..', 'notebooks/data/photos/chelsea.png');
const graphCache = mkdtempSync(join(tmpdir(), 'hf-bench-extract-'));
function extractCase(dir: string, steps: number) {
  return child('extract-case.ts', [dir, String(steps), PHOTO, graphCache]);
}

const machine = machineInfo();
say(`machine: ${machine.cpu} x${machine.cores}, ${machine.memoryGiB} GiB`);
// the bar: the best fp32 GEMM over UNet-like shapes (weights constant, as in the UNet)
const gemm = await gemmPeak();
const peak = gemm.peak;
const matmul2048 = await matmulPeak();
say(
  `fp32 GEMM peak over UNet shapes: ${peak.toFixed(1)} GFLOP/s (${gemm.shapes.map((s) => `${s.m}x${s.k}x${s.n}: ${s.gflops.toFixed(0)}`).join(', ')}); lone 2048^3 with both operands fed: ${matmul2048.toFixed(1)}`,
);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine,
  gemmPeakGflops: peak,
  gemmShapes: gemm.shapes,
  matmul2048FedGflops: matmul2048,
  unet: {},
};

const cases: [string, 'tiny' | 'full', number][] = [['tiny-sd15', 'tiny', 5]];
if (!quick) cases.push(['sd15-sized', 'full', 3]);
for (const [name, size, calls] of section('unet') ? cases : []) {
  const dir = await ensureModel(name, size);
  say(`${name}: build + load + ${calls} calls at 64x64 with taps, then the same from the graph cache`);
  const cacheDir = mkdtempSync(join(tmpdir(), 'hf-bench-graphs-')); // fresh: measures build + load
  const r = unetCase(dir, 64, calls, cacheDir);
  const cached = unetCase(dir, 64, calls, cacheDir);
  const weightMiB = folderBytes(join(dir, 'unet')) / 2 ** 20;
  const flopBoundMs = (r.gflopPerCall / peak) * 1000;
  const warmMs = Math.min(r.msPerCall, cached.msPerCall);
  const summary: Record<string, unknown> = {
    ...r,
    weightMiB,
    achievedGflops: r.gflopPerCall / (warmMs / 1000),
    flopBoundMs,
    ratioToFlopBound: warmMs / flopBoundMs,
    cached: {
      ...cached,
      firstCallOverWarm: cached.firstCallMs / cached.msPerCall,
      peakRssOverWeights: cached.peakRssMiB / weightMiB,
    },
  };
  // the peer: onnxruntime-node on PyTorch's export of the same network, alternated with ours
  // (the default fused attention, and exact: the export's own kernels)
  if (size === 'full' && existsSync(EXPORT_ONNX)) {
    const exportCase = () => child('export-case.ts', [EXPORT_ONNX, '64', String(calls)]);
    say(`PyTorch's export (${EXPORT_ONNX}) and ours from the cache, alternated twice`);
    const sides = alternate(exportCase, () => unetCase(dir, 64, calls, cacheDir));
    summary.vsPyTorchExport = { ...sides, ...againstExport(sides, (r) => r.msPerCall as number) };
    say(`the same with --attention exact`);
    const exact = alternate(exportCase, () => unetCase(dir, 64, calls, cacheDir, 'exact'));
    summary.exactVsPyTorchExport = { ...exact, ...againstExport(exact, (r) => r.msPerCall as number) };
    say(`ours and the export in one process, ${PAIRS} alternated calls`);
    summary.pairedWithExport = child('pair-case.ts', [dir, EXPORT_ONNX, '64', String(PAIRS), cacheDir]);
  } else if (size === 'full') say(`no PyTorch export at ${EXPORT_ONNX}: the peer comparison is skipped`);
  // the opt-in int8 Linear layers: speed and their effect on features against fp32
  say(`${name}: --linear int8 against fp32`);
  summary.linearInt8 = child('int8-case.ts', [dir, '64', String(calls), cacheDir]);
  if (size === 'full') {
    const vaeExport = existsSync(join(PEERS, 'vae', 'decoder', 'model.onnx'));
    const textExport = existsSync(join(PEERS, 'text_encoder', 'model.onnx'));
    if (vaeExport) {
      say(`VAE at 512 against PyTorch's export (${PEERS}/vae), alternated twice`);
      results.vaeVsPyTorchExport = peerCase('vae', dir, ['encoder', 'decoder'], 3, cacheDir);
    }
    if (textExport) {
      say(`text encoder against PyTorch's export (${PEERS}/text_encoder), alternated twice`);
      results.textEncoderVsPyTorchExport = peerCase('text-encoder', dir, ['textEncoder'], 20, cacheDir);
    }
    if (!vaeExport || !textExport)
      say(`no VAE or text-encoder export under ${PEERS}: bench/peers/ makes them`);
  }
  rmSync(cacheDir, { recursive: true, force: true });
  (results.unet as Record<string, unknown>)[name] = summary;
  say(`  ${JSON.stringify(summary)}`);
}

// Extraction: seconds per image at 512x512 (50 steps and one step), UNet share of time.
results.extract = {};
const extractCases: [string, number][] = [
  ['tiny-sd15', 50],
  ['tiny-sd15', 1],
];
if (!quick)
  extractCases.push(
    ['sd15-sized', 1],
    ...(process.argv.includes('--no-sd15-50') ? [] : [['sd15-sized', 50] as [string, number]]),
  );
for (const [name, steps] of section('extract') ? extractCases : []) {
  say(`${name}: ${steps}-step extraction of one 512x512 image`);
  const r = extractCase(join(hyperfeaturesCacheDir(), 'bench-models', name), steps);
  (results.extract as Record<string, unknown>)[`${name}/${steps}-step`] = r;
  say(`  ${JSON.stringify(r)}`);
}

// Aggregation network at SD-1.5 size: forward per image (64x64), a training step on a pair at
// 32x32, and the paper's training setting (batch 2 pairs, 64x64, raw maps resized per layer:
// the layerwise step keeps one layer's inputs and activations, so it fits in 8 GB).
if (!quick && section('aggregation')) {
  say('aggregation network at SD-1.5 size (132 maps, projection 384)');
  const forward = child('aggregation-case.ts', ['forward', '64']);
  const train = child('aggregation-case.ts', ['train', '32']);
  const paper = child('aggregation-case.ts', ['train-paper', '64']);
  const ratio = (r: Record<string, number>) => r.seconds / (r.gflop / peak);
  results.aggregation = {
    forward: { ...forward, ratioToFlopBound: ratio(forward) },
    train: { ...train, ratioToFlopBound: ratio(train) },
    trainPaperSetting: {
      ...paper,
      ratioToFlopBound: ratio(paper),
      fitsIn8GB: (paper.peakRssMiB as number) < 8192,
    },
  };
  say(`  ${JSON.stringify(results.aggregation)}`);
}

// Lotus at SD-2 size on a 768-pixel image.
if (!quick && section('lotus')) {
  const dir = join(hyperfeaturesCacheDir(), 'bench-models', 'lotus-depth-g-sd2-sized');
  if (!existsSync(join(dir, 'model_index.json'))) {
    say(`generating an SD-2-sized Lotus-G checkpoint (random weights) in ${dir}`);
    await makeTinyCheckpoint(dir, { style: 'lotus-g', size: 'full', seed: 0 });
  }
  say('Lotus-G at SD-2 size, processing resolution 768');
  const r = child('lotus-case.ts', [dir, join(HERE, '..', 'notebooks/data/photos/astronaut.png'), '768']);
  results.lotus = { ...r, unetFlopBoundSeconds: (r.unetGflop as number) / peak };
  say(`  ${JSON.stringify(results.lotus)}`);
  // its VAE alone at 768: untiled vs the automatic tiles (the memory budget decides)
  say('VAE at 768, untiled and auto-tiled');
  (results.lotus as Record<string, unknown>).vae768 = {
    untiled: child('vae-case.ts', [dir, '768', 'off']),
    auto: child('vae-case.ts', [dir, '768', 'auto']),
  };
  say(`  ${JSON.stringify((results.lotus as Record<string, unknown>).vae768)}`);
}

// Matching (64x64x384 pair, 4096 query points) and eval seconds per pair on the tiny model.
if (section('correspondence')) {
  say('matching and eval per pair');
  results.correspondence = {
    ...child('match-case.ts', []),
    sdConcatAllPaperResolution: child('concat-case.ts', []),
  };
  say(`  ${JSON.stringify(results.correspondence)}`);
}

// DINOv2-base and -giant (random weights, the real widths) at SD-DINO's 840 px: per image, peak RSS.
// The giant's 4.4 GB checkpoint is generated once; --quick runs the base only.
if (section('dinov2')) {
  results.dinov2 = {};
  for (const variant of quick ? ['base'] : ['base', 'giant']) {
    const dir = join(hyperfeaturesCacheDir(), 'bench-models', `dinov2-${variant}`);
    if (!existsSync(join(dir, 'config.json'))) {
      say(`generating dinov2-${variant} (full widths, random weights) in ${dir}`);
      await makeTinyCheckpoint(dir, { style: 'dinov2', size: 'full', variant: variant as 'base' | 'giant' });
    }
    say(`DINOv2-${variant} at 840 px`);
    const r = child('dinov2-case.ts', [dir, '840', variant === 'giant' ? '1' : '3']);
    (results.dinov2 as Record<string, unknown>)[variant] = r;
    say(`  ${JSON.stringify(r)}`);
  }
}

// FeatureStack memory at SD-1.5 size: 11 timesteps x 12 layers of a 64x64 latent.
const SD15_TAPS = [1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320].map((c, i) => ({
  c,
  s: [8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64][i],
}));
const rawFloats = 11 * SD15_TAPS.reduce((a, { c, s }) => a + c * s * s, 0);
const resizedFloats = 11 * SD15_TAPS.reduce((a, { c }) => a + c * 64 * 64, 0);
results.featureStackSd15 = {
  maps: 132,
  rawFloat32MiB: (rawFloats * 4) / 2 ** 20,
  rawFloat16MiB: (rawFloats * 2) / 2 ** 20,
  resized64Float32MiB: (resizedFloats * 4) / 2 ** 20,
  resized64Float16MiB: (resizedFloats * 2) / 2 ** 20,
};
say(`FeatureStack at SD-1.5 size: ${JSON.stringify(results.featureStackSd15)}`);

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const json = Buffer.from(JSON.stringify(results, null, 2) + '\n');
const name = only ? `${stamp}-${only}.json` : `${stamp}.json`;
await writeFileAtomic(join(HERE, 'results', name), json);
if (!only) await writeFileAtomic(join(HERE, 'results', 'latest.json'), json);
say(`wrote bench/results/${name}`);
