/**
 * Table 1 as a function: every method of the paper's table that public weights can produce,
 * with the paper's definitions, evaluated on keypoint pairs with the original protocol
 * (DESIGN.md semantics 9): images loaded at 224, descriptors at 64 upsampled to 224, nearest
 * neighbour of each source keypoint, prediction and ground truth rescaled to the target
 * image, PCK by image and box. Per-pair records make a run resumable and shardable: the
 * results are a pure function of the records (`summarizeRecords`).
 */
import { ConfigError } from '../core/errors.ts';
import { checkPositiveInt } from '../core/validate.ts';
import type { Tensor } from '../core/tensor.ts';
import { checkPointsInImages, type KeypointPair } from '../data/pairs.ts';
import { imageSize } from '../data/image.ts';
import { DEFAULT_EXTRACT, invertImages, type ExtractOptions } from '../diffusion/extract.ts';
import { FeatureStack } from '../diffusion/feature-stack.ts';
import { DIFT_DEFAULTS, noisedFeatures } from '../diffusion/noised.ts';
import type { StableDiffusion } from '../diffusion/pipeline.ts';
import type { AggregationNetwork } from '../aggregation/network.ts';
import { extractionForNetwork } from '../aggregation/settings.ts';
import { tapCount } from '../model/unet/config.ts';
import type { DinoModel } from '../model/dino/index.ts';
import { matchPointsBatched, matchPointsChunked, rescalePoints, type PointYX } from './match.ts';
import { PCK_ALPHAS, computePck, distances, pckThreshold, type PckPair, type PckResult } from './pck.ts';

export const TABLE1_METHODS = [
  'ours',
  'one-step',
  'sd-layer-4',
  'sd-concat-all',
  'sd-layer-pruned',
  'ours-pruned',
  'dift',
  'dino',
] as const;
export type Table1Method = (typeof TABLE1_METHODS)[number];
/** What `eval` runs without --methods: the paper's diffusion rows (DINO and DIFT need their own models / time). */
export const DEFAULT_METHODS: Table1Method[] = TABLE1_METHODS.filter((m) => m !== 'dift' && m !== 'dino');

/** The paper's rows in its order: name as printed, and (layers, timesteps) columns. */
export const PAPER_ROWS: { key: string; label: string; layers: string; timesteps: string }[] = [
  { key: 'dino', label: 'DINO', layers: '1', timesteps: '-' },
  { key: 'dhpf', label: 'DHPF', layers: '34', timesteps: '-' },
  { key: 'sd-layer-4', label: 'SD-Layer-4', layers: '1', timesteps: '1' },
  { key: 'sd-concat-all', label: 'SD-Concat-All', layers: '12', timesteps: '1' },
  { key: 'ours', label: 'Ours', layers: '12', timesteps: '11' },
  { key: 'one-step', label: 'Ours-One-Step', layers: '12', timesteps: '1' },
  { key: 'sd-layer-pruned', label: 'SD-Layer-Pruned', layers: '1', timesteps: '1' },
  { key: 'ours-pruned', label: 'Ours-Pruned', layers: '1', timesteps: '1' },
  { key: 'ours-sdv2-1', label: 'Ours-SDv2-1', layers: '12', timesteps: '11' },
  { key: 'dift', label: 'DIFT (not in the paper)', layers: '1', timesteps: '1' },
];

/** The paper's Table 1 (PCK@0.1, img / bbox), for comparison columns. */
export const PAPER_TABLE1: Record<string, { spair: [number, number]; cub: [number, number] }> = {
  dino: { spair: [51.68, 41.04], cub: [72.72, 55.9] },
  dhpf: { spair: [55.28, 42.63], cub: [77.3, 61.42] },
  'sd-layer-4': { spair: [58.8, 46.58], cub: [78.43, 61.22] },
  'sd-concat-all': { spair: [52.12, 41.83], cub: [70.22, 54.05] },
  ours: { spair: [72.56, 64.61], cub: [82.29, 69.42] },
  'one-step': { spair: [63.74, 54.69], cub: [76.59, 62.11] },
  'sd-layer-pruned': { spair: [57.69, 48.16], cub: [80.67, 67.21] },
  'ours-pruned': { spair: [64.02, 53.74], cub: [79.1, 63.95] },
  'ours-sdv2-1': { spair: [70.74, 64.85], cub: [80.39, 68.04] },
};

export function parseMethods(spec: string): Table1Method[] {
  const methods = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = methods.filter((m) => !(TABLE1_METHODS as readonly string[]).includes(m));
  if (bad.length)
    throw new ConfigError(
      `unknown method(s) ${bad.join(', ')}; valid: ${TABLE1_METHODS.join(', ')}${bad.includes('dhpf') ? ' (DHPF needs its own trained weights and code: table1.md prints the paper number, marked not computed)' : ''}`,
    );
  if (!methods.length) throw new ConfigError(`no method given; valid: ${TABLE1_METHODS.join(', ')}`);
  return [...new Set(methods)] as Table1Method[];
}

export interface DiftOptions {
  timestep?: number;
  ensemble?: number;
  upBlock?: number;
  seed?: number;
  /** Prompt; `{category}` is replaced by the pair's category (DIFT: "a photo of a {category}"). */
  prompt?: string;
}

export interface EvalOptions {
  methods: Table1Method[];
  /** Aggregation network for ours / sd-layer-pruned / ours-pruned. */
  network?: AggregationNetwork;
  /** Network trained on one-step features, for one-step. */
  oneStepNetwork?: AggregationNetwork;
  /** Why no network could be found (said when a method needs one). */
  networkMissing?: string;
  /** The DINO ViT, for `dino`. */
  dino?: DinoModel;
  loadSize?: number;
  outputResolution?: number;
  alphas?: number[];
  /** Maps kept by ours-pruned: the paper's row keeps 1, the single highest-weighted map. */
  prunedK?: number;
  /** DIFT-style features for `dift` (default DIFT's: t 261, ensemble 8, up-block 1). */
  dift?: DiftOptions;
  /** Extraction settings for the inversion methods (default: the paper's 50 steps). */
  extract?: Omit<ExtractOptions, 'loadSize' | 'onProgress'>;
  /** Positions in `pairs` to evaluate (a shard); default all. Records keep these positions. */
  indices?: readonly number[];
  /** Records of a previous run of the same settings: pairs with a record for every method are not recomputed. */
  completed?: readonly PairRecord[];
  onProgress?: (pairsDone: number, total: number) => void;
  /**
   * Called once per computed pair with its records for every method (write them as one
   * append, so a killed run never leaves a half-finished pair).
   */
  onPair?: (records: PairRecord[]) => void | Promise<void>;
}

/**
 * One pair's result for one method, comparable with the original code pair by pair. Points are
 * (x, y) in pixels: source points in the source image, predicted and true target points in the
 * target image (the original works in (y, x); it is converted back here). `distances` are in
 * target-image pixels; a keypoint is a hit when its distance <= the threshold.
 */
export interface PairRecord {
  /** Position of the pair in the evaluated list. */
  index: number;
  /** `<source stem>-<target stem>:<category>`, as SPair names its pair files. */
  id: string;
  method: Table1Method;
  category: string;
  source: string;
  target: string;
  targetSize: { width: number; height: number };
  targetBbox: [number, number, number, number] | null;
  sourcePoints: [number, number][];
  predictedPoints: [number, number][];
  targetPoints: [number, number][];
  distances: number[];
  alpha: number;
  thresholdImg: number;
  thresholdBbox: number | null;
  hitsImg: boolean[];
  hitsBbox: boolean[] | null;
}

const stem = (path: string) => (path.split(/[\\/]/).pop() ?? path).replace(/\.[^.]*$/, '');

/** The id of a pair in records and `eval --explain-pair`. */
export function pairId(pair: KeypointPair): string {
  return `${stem(pair.source)}-${stem(pair.target)}:${pair.category}`;
}

function pairRecord(
  index: number,
  pair: KeypointPair,
  method: Table1Method,
  scored: PckPair,
  alpha: number,
): PairRecord {
  const d = distances(scored.predicted, scored.groundTruth);
  const thresholdImg = pckThreshold(scored, alpha, 'img');
  const thresholdBbox = scored.bbox ? pckThreshold(scored, alpha, 'bbox') : null;
  const xy = (ps: readonly PointYX[]) => ps.map(([y, x]): [number, number] => [x, y]);
  return {
    index,
    id: pairId(pair),
    method,
    category: pair.category,
    source: pair.source,
    target: pair.target,
    targetSize: scored.imageSize,
    targetBbox: pair.targetBbox ?? null,
    sourcePoints: pair.sourcePoints.map(([x, y]): [number, number] => [x, y]),
    predictedPoints: xy(scored.predicted),
    targetPoints: xy(scored.groundTruth),
    distances: d,
    alpha,
    thresholdImg,
    thresholdBbox,
    hitsImg: d.map((v) => v <= thresholdImg),
    hitsBbox: thresholdBbox === null ? null : d.map((v) => v <= thresholdBbox),
  };
}

/** A record back as the PCK input it was scored from. */
function scoredFromRecord(r: PairRecord): PckPair {
  const yx = (ps: readonly [number, number][]) => ps.map(([x, y]): PointYX => [y, x]);
  return {
    predicted: yx(r.predictedPoints),
    groundTruth: yx(r.targetPoints),
    imageSize: r.targetSize,
    bbox: r.targetBbox ?? undefined,
    category: r.category,
  };
}

export interface MethodDefinition {
  /** Layers and timesteps used (the paper's columns). */
  layers: number;
  timesteps: number;
  /** What exactly was computed, in words (which layer, which timestep, which network). */
  definition: string;
}

export interface MethodResult extends Partial<MethodDefinition> {
  /** pck[alpha].img / .bbox */
  pck: Record<string, { img: PckResult; bbox?: PckResult }>;
  pairs: number;
  note?: string;
}

export interface EvalResults {
  pairs: number;
  keypoints: number;
  loadSize: number;
  outputResolution: number;
  methods: Partial<Record<Table1Method, MethodResult>>;
}

const NEEDS_NETWORK: Table1Method[] = ['ours', 'sd-layer-pruned', 'ours-pruned'];
/** Above this many channels, similarity is accumulated over channel chunks (the upsampled map would not fit). */
export const CHUNKED_DIM = 2048;
const CLEAN =
  'the first inversion step: one UNet call on the clean latent at t = -1 (save timestep 49 of a 50-step inversion, identical to the one-step variant)';

function requireModels(o: EvalOptions): void {
  const missing = o.methods.filter(
    (m) => (NEEDS_NETWORK.includes(m) && !o.network) || (m === 'one-step' && !o.oneStepNetwork),
  );
  if (missing.length) {
    throw new ConfigError(
      `method(s) ${missing.join(', ')} need an aggregation network${o.networkMissing ? ` (${o.networkMissing})` : ''}: pass --aggregator <ckpt> (and --one-step-aggregator for one-step), use an SD-1.5 or SD-2.1 model with --allow-download for the released networks, or train one (hyperfeatures train)`,
    );
  }
  if (o.methods.includes('dino') && !o.dino)
    throw new ConfigError(
      'method dino needs the DINO ViT: pass --dino facebook/dino-vitb8 (a transformers folder or hub id; --allow-download to fetch it)',
    );
}

/** DIFT's settings for SPair (its prompt names the category), with the options given. */
export function diftSettings(o: DiftOptions = {}): Required<DiftOptions> {
  const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return { ...DIFT_DEFAULTS, prompt: 'a photo of a {category}', ...given };
}

/** What each method computes with these options (stored with the results; the same for every pair). */
export function describeMethods(o: EvalOptions, sd: StableDiffusion): Record<string, MethodDefinition> {
  const L = tapCount(sd.unet.config);
  const k = o.prunedK ?? 1;
  const d = diftSettings(o.dift);
  const out: Record<string, MethodDefinition> = {};
  for (const m of o.methods) {
    switch (m) {
      case 'ours':
        out[m] = {
          layers: L,
          timesteps: o.network?.config.saveTimesteps.length ?? 0,
          definition: `the aggregation network over all ${L} layers x save timesteps [${o.network?.config.saveTimesteps.join(', ')}] of the inversion`,
        };
        break;
      case 'one-step':
        out[m] = {
          layers: L,
          timesteps: 1,
          definition: `the one-step network over all ${L} layers of ${CLEAN}`,
        };
        break;
      case 'sd-layer-4':
        out[m] = {
          layers: 1,
          timesteps: 1,
          definition: `raw decoder layer 4 (up_blocks.1.resnets.0) at ${CLEAN}`,
        };
        break;
      case 'sd-concat-all':
        out[m] = {
          layers: L,
          timesteps: 1,
          definition: `all ${L} raw decoder layers, each resized to the output resolution and concatenated, at ${CLEAN}; above ${CHUNKED_DIM} channels the cosine similarity is accumulated over channel chunks`,
        };
        break;
      case 'sd-layer-pruned': {
        const top = o.network?.topMixingWeights(1)[0];
        out[m] = {
          layers: 1,
          timesteps: 1,
          definition: top
            ? `raw layer ${top.layer} at save timestep ${top.saveTimestep}: the network's highest mixing weight (${top.weight.toFixed(4)})`
            : 'raw map with the highest mixing weight',
        };
        break;
      }
      case 'ours-pruned': {
        const top = o.network?.topMixingWeights(k) ?? [];
        out[m] = {
          layers: new Set(top.map((w) => w.layer)).size,
          timesteps: new Set(top.map((w) => w.saveTimestep)).size,
          definition:
            `the network restricted to its ${k === 1 ? 'single highest-weighted map' : `${k} highest-weighted maps`} (${top.map((w) => `layer ${w.layer} @ save timestep ${w.saveTimestep}`).join(', ')}) through its trained bottleneck` +
            (k === 1 ? '' : `; NOT the paper's row, which keeps 1`),
        };
        break;
      }
      case 'dift':
        out[m] = {
          layers: 1,
          timesteps: 1,
          definition: `DIFT-style: the clean latent noised to t = ${d.timestep} (q(x_t | x0)), one UNet call, output of up-block ${d.upBlock}, averaged over ${d.ensemble} seeded noises (seed ${d.seed}); prompt "${d.prompt}"`,
        };
        break;
      case 'dino':
        out[m] = {
          layers: 1,
          timesteps: 0,
          definition: o.dino ? o.dino.describe() : 'DINO ViT descriptors',
        };
        break;
    }
  }
  return out;
}

/** The stack of the clean map with one-step labels (save timestep 0 of 1 step). */
function asOneStep(s: FeatureStack): FeatureStack {
  const label = Math.max(...s.saveTimesteps);
  const one = s.select([label], s.layers);
  return new FeatureStack([0], one.layers, one.maps as Tensor[][], { ...s.meta, steps: 1 });
}

interface PairFeatures {
  multi: FeatureStack[];
  clean: FeatureStack[];
  dift: Tensor[];
  dino: Tensor[];
}

async function pairFeatures(
  sd: StableDiffusion,
  pair: KeypointPair,
  o: EvalOptions,
  loadSize: number,
  multiExtract: Omit<ExtractOptions, 'loadSize' | 'onProgress'>,
): Promise<PairFeatures> {
  const images = [pair.source, pair.target];
  const has = (...ms: Table1Method[]) => ms.some((m) => o.methods.includes(m));
  const multi = has(...NEEDS_NETWORK) ? await invertImages(sd, images, { ...multiExtract, loadSize }) : [];
  const L = tapCount(sd.unet.config);
  const steps = multiExtract.steps ?? 50;
  // the 50-step inversion's first step IS the one-step call: reuse it when it was captured whole
  const reusable = multi.length && multi[0].saveTimesteps.includes(steps - 1) && multi[0].layers.length === L;
  const clean = !has('one-step', 'sd-layer-4', 'sd-concat-all')
    ? []
    : reusable
      ? multi.map((s) => asOneStep(s.select([steps - 1], s.layers)))
      : await invertImages(sd, images, {
          ...o.extract,
          steps: 1,
          saveTimesteps: [0],
          layers: undefined,
          loadSize,
        });
  const d = diftSettings(o.dift);
  const dift = has('dift')
    ? (
        await noisedFeatures(sd, images, {
          ...d,
          prompt: d.prompt.replaceAll('{category}', pair.category),
          loadSize,
          imageSize: o.extract?.imageSize,
          posterior: o.extract?.posterior,
          colorManaged: o.extract?.colorManaged,
          layers: [],
        })
      ).map((f) => f.upBlock)
    : [];
  const dino = has('dino')
    ? await Promise.all(
        images.map((img) => o.dino!.describeImage(img, { loadSize, colorManaged: o.extract?.colorManaged })),
      )
    : [];
  return { multi, clean, dift, dino };
}

/** Descriptors of one method for a pair: [1, D, r, r] each. */
async function methodDescriptors(
  m: Table1Method,
  f: PairFeatures,
  o: EvalOptions,
  pruned: AggregationNetwork | undefined,
  R: number,
): Promise<Tensor[]> {
  switch (m) {
    case 'ours':
      return Promise.all(f.multi.map((s) => o.network!.aggregate([s], R)));
    case 'one-step':
      return Promise.all(f.clean.map((s) => o.oneStepNetwork!.aggregate([s], R)));
    case 'ours-pruned':
      return Promise.all(f.multi.map((s) => pruned!.aggregate([s], R)));
    case 'sd-layer-4':
      return f.clean.map((s) => s.select([0], [4]).concat(R));
    case 'sd-layer-pruned': {
      const top = o.network!.topMixingWeights(1)[0];
      return f.multi.map((s) => s.select([top.saveTimestep], [top.layer]).concat(R));
    }
    case 'sd-concat-all':
      return f.clean.map((s) => s.concat(R));
    case 'dift':
      return f.dift; // matched at their own resolution, upsampled to the load size like every method
    case 'dino':
      return f.dino;
  }
}

function checkOptions(o: EvalOptions, sd: StableDiffusion, pairs: readonly KeypointPair[]) {
  if (!Array.isArray(o.methods) || !o.methods.length)
    throw new ConfigError(`evaluatePairs: methods must list at least one of ${TABLE1_METHODS.join(', ')}`);
  parseMethods(o.methods.join(','));
  requireModels(o);
  if (!pairs.length) throw new ConfigError('evaluatePairs: the pair list is empty; nothing to evaluate');
  checkPositiveInt('loadSize', o.loadSize);
  checkPositiveInt('outputResolution', o.outputResolution);
  checkPositiveInt('prunedK', o.prunedK);
  if (o.methods.includes('sd-layer-4') && tapCount(sd.unet.config) < 4)
    throw new ConfigError(
      `sd-layer-4 needs decoder layer 4; this UNet has ${tapCount(sd.unet.config)} layers`,
    );
  const bad = (o.indices ?? []).filter((i) => !Number.isInteger(i) || i < 0 || i >= pairs.length);
  if (bad.length)
    throw new ConfigError(
      `evaluatePairs: indices ${bad.slice(0, 5).join(', ')} are outside 0..${pairs.length - 1}`,
    );
}

/**
 * Evaluate `methods` on `pairs` (or on the positions `indices`), reusing `completed` records.
 * @throws ConfigError for unknown methods or missing networks (before any work).
 */
export async function evaluatePairs(
  sd: StableDiffusion,
  pairs: readonly KeypointPair[],
  o: EvalOptions,
): Promise<EvalResults> {
  checkOptions(o, sd, pairs);
  const indices = o.indices ?? pairs.map((_, i) => i);
  await checkPointsInImages(indices.map((i) => pairs[i])); // before any compute
  const loadSize = o.loadSize ?? DEFAULT_EXTRACT.loadSize;
  const R = o.outputResolution ?? DEFAULT_EXTRACT.outputResolution;
  const multiExtract = o.network
    ? extractionForNetwork(o.network.config, sd.unet.config, o.extract ?? {})
    : (o.extract ?? {});
  const definitions = describeMethods(o, sd);
  const done = new Map<number, PairRecord[]>();
  for (const r of o.completed ?? []) done.set(r.index, [...(done.get(r.index) ?? []), r]);
  const records: PairRecord[] = [];
  const pruned = o.methods.includes('ours-pruned') ? o.network!.pruned(o.prunedK ?? 1) : undefined;
  const load = { width: loadSize, height: loadSize };
  try {
    for (const [n, i] of indices.entries()) {
      const pair = pairs[i];
      const previous = done.get(i) ?? [];
      if (o.methods.every((m) => previous.some((r) => r.method === m && r.id === pairId(pair)))) {
        records.push(...o.methods.map((m) => previous.find((r) => r.method === m)!));
        o.onProgress?.(n + 1, indices.length);
        continue;
      }
      const f = await pairFeatures(sd, pair, o, loadSize, multiExtract);
      const sizes = (f.multi[0] ? f.multi : f.clean[0] ? f.clean : undefined)?.map(
        (s) => s.meta.originalSize!,
      );
      const [srcSize, tgtSize] =
        sizes ?? (await Promise.all([pair.source, pair.target].map((p) => imageSize(p))));
      const sourceYX = rescalePoints(
        pair.sourcePoints.map(([x, y]): PointYX => [y, x]),
        srcSize,
        load,
      );
      const truth = pair.targetPoints.map(([x, y]): PointYX => [y, x]);
      const mine: PairRecord[] = [];
      for (const m of o.methods) {
        const [a, b] = await methodDescriptors(m, f, o, pruned, R);
        const matches =
          a.shape[1] > CHUNKED_DIM
            ? await matchPointsChunked(a, b, sourceYX, { loadSize })
            : await matchPointsBatched(a, b, sourceYX, { loadSize });
        const scored: PckPair = {
          predicted: rescalePoints(
            matches.map((x) => x.target),
            load,
            tgtSize,
          ),
          groundTruth: truth,
          imageSize: tgtSize,
          bbox: pair.targetBbox,
          category: pair.category,
        };
        mine.push(pairRecord(i, pair, m, scored, 0.1));
      }
      records.push(...mine);
      await o.onPair?.(mine);
      o.onProgress?.(n + 1, indices.length);
    }
  } finally {
    await pruned?.dispose();
  }
  return summarizeRecords(records, o.methods, {
    loadSize,
    outputResolution: R,
    alphas: o.alphas,
    definitions,
  });
}

/**
 * Table 1 numbers from per-pair records (of one run, a resumed run or merged shards): PCK at
 * each alpha by image and box, per keypoint and per image. Records are taken in pair order,
 * so the same records always give the same numbers, however they were split.
 * @throws ConfigError when a method's records do not cover the same pairs as the others.
 */
export function summarizeRecords(
  records: readonly PairRecord[],
  methods: readonly Table1Method[],
  o: {
    loadSize: number;
    outputResolution: number;
    alphas?: number[];
    definitions?: Record<string, MethodDefinition>;
  },
): EvalResults {
  const alphas = o.alphas ?? [...PCK_ALPHAS];
  const byMethod = new Map<Table1Method, PairRecord[]>(methods.map((m) => [m, []]));
  for (const r of records) byMethod.get(r.method)?.push(r);
  const counts = new Set([...byMethod.values()].map((l) => l.length));
  if (counts.size > 1)
    throw new ConfigError(
      `records cover different numbers of pairs per method (${[...byMethod].map(([m, l]) => `${m}: ${l.length}`).join(', ')})`,
    );
  const out: EvalResults['methods'] = {};
  let pairsN = 0;
  let keypoints = 0;
  for (const [m, list] of byMethod) {
    const sorted = [...list].sort((a, b) => a.index - b.index);
    const scored = sorted.map(scoredFromRecord);
    const pck: MethodResult['pck'] = {};
    for (const a of alphas)
      pck[String(a)] = {
        img: computePck(scored, a, 'img'),
        bbox: scored.every((p) => p.bbox) ? computePck(scored, a, 'bbox') : undefined,
      };
    out[m] = { ...o.definitions?.[m], pck, pairs: sorted.length };
    pairsN = sorted.length;
    keypoints = sorted.reduce((n, r) => n + r.targetPoints.length, 0);
  }
  return {
    pairs: pairsN,
    keypoints,
    loadSize: o.loadSize,
    outputResolution: o.outputResolution,
    methods: out,
  };
}

const pct = (v: number | undefined) => (v === undefined ? 'n/a' : (100 * v).toFixed(2));
/** A PCK over no keypoints (an empty shard, a list without annotations) is n/a, never 0. */
const pckPct = (p: { perKeypoint: number; keypoints: number } | undefined) =>
  pct(p && p.keypoints > 0 ? p.perKeypoint : undefined);
const paperPct = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));

/**
 * Markdown table in the paper's layout (rows in its order with its names; layers and
 * timesteps columns; PCK@0.1 img / bbox per keypoint) beside the paper's numbers. `family`
 * sd21 compares `ours` with the paper's Ours-SDv2-1 row. Rows the paper has and this run did
 * not compute are listed with the paper's numbers, marked not computed.
 */
export function table1Markdown(
  r: EvalResults,
  dataset: string,
  model: string,
  family?: 'sd15' | 'sd21',
): string {
  const key = dataset === 'cub' ? 'cub' : 'spair';
  const lines = [
    `PCK@0.1 on ${dataset} (${r.pairs} pairs, ${r.keypoints} keypoints; per keypoint; load size ${r.loadSize}, descriptors at ${r.outputResolution}; model ${model})`,
    '',
    `| method | layers | timesteps | img | bbox | paper img | paper bbox |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const computed = new Set<string>();
  for (const row of PAPER_ROWS) {
    const method = (row.key === 'ours-sdv2-1' ? 'ours' : row.key) as Table1Method;
    const res = r.methods[method];
    const paperKey = method === 'ours' && family === 'sd21' ? 'ours-sdv2-1' : row.key;
    const rowIsThisRun =
      res && (row.key !== 'ours-sdv2-1' || family === 'sd21') && !(row.key === 'ours' && family === 'sd21');
    const paper = PAPER_TABLE1[paperKey]?.[key];
    if (rowIsThisRun) {
      computed.add(row.key);
      const p = res.pck['0.1'];
      lines.push(
        `| ${row.label} | ${res.layers ?? row.layers} | ${res.timesteps === 0 ? '-' : (res.timesteps ?? row.timesteps)} | ${pckPct(p?.img)} | ${pckPct(p?.bbox)} | ${paperPct(paper?.[0])} | ${paperPct(paper?.[1])} |`,
      );
    } else if (PAPER_TABLE1[row.key]) {
      lines.push(
        `| ${row.label} | ${row.layers} | ${row.timesteps} | not computed | not computed | ${paperPct(PAPER_TABLE1[row.key][key][0])} | ${paperPct(PAPER_TABLE1[row.key][key][1])} |`,
      );
    }
  }
  lines.push('', 'How each computed row was made:');
  for (const [m, res] of Object.entries(r.methods))
    if (res?.definition) lines.push(`- ${m}: ${res.definition}${res.note ? ` (${res.note})` : ''}`);
  lines.push(
    '- not computed: DHPF needs its own trained weights and code; other rows were not asked for (--methods) or need another model (Ours-SDv2-1: an SD-2.1 model with its network).',
  );
  return lines.join('\n') + '\n';
}
