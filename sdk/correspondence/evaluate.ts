/**
 * Table 1 as a function: every method the paper compares that a diffusion model produces,
 * evaluated on keypoint pairs with the original protocol (DESIGN.md semantics 9): images
 * loaded at 224, descriptors at 64 upsampled to 224, nearest neighbour of each source
 * keypoint, prediction and ground truth rescaled to the target image, PCK by image and box.
 */
import { ConfigError } from '../core/errors.ts';
import { checkPositiveInt } from '../core/validate.ts';
import { Tensor } from '../core/tensor.ts';
import { checkPointsInImages, type KeypointPair } from '../data/pairs.ts';
import { invertImages, type ExtractOptions } from '../diffusion/extract.ts';
import type { FeatureStack } from '../diffusion/feature-stack.ts';
import type { StableDiffusion } from '../diffusion/pipeline.ts';
import type { AggregationNetwork } from '../aggregation/network.ts';
import { matchPointsBatched, rescalePoints, type PointYX } from './match.ts';
import { PCK_ALPHAS, computePck, distances, pckThreshold, type PckPair, type PckResult } from './pck.ts';

export const TABLE1_METHODS = [
  'ours',
  'one-step',
  'sd-layer-4',
  'sd-concat-all',
  'sd-layer-pruned',
  'ours-pruned',
] as const;
export type Table1Method = (typeof TABLE1_METHODS)[number];

/** The paper's Table 1 (PCK@0.1, img / bbox), for comparison columns. */
export const PAPER_TABLE1: Record<string, { spair: [number, number]; cub: [number, number] }> = {
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
    throw new ConfigError(`unknown method(s) ${bad.join(', ')}; valid: ${TABLE1_METHODS.join(', ')}`);
  return methods as Table1Method[];
}

export interface EvalOptions {
  methods: Table1Method[];
  /** Aggregation network for ours / sd-layer-pruned / ours-pruned. */
  network?: AggregationNetwork;
  /** Network trained on one-step features, for one-step. */
  oneStepNetwork?: AggregationNetwork;
  loadSize?: number;
  outputResolution?: number;
  alphas?: number[];
  /** (timestep, layer) pairs kept by ours-pruned (default 10). */
  prunedK?: number;
  /** Extraction settings for the multi-step methods (default: the paper's 50 steps). */
  extract?: Omit<ExtractOptions, 'loadSize' | 'onProgress'>;
  onProgress?: (pairsDone: number, total: number) => void;
  /** Called with each pair's record per method as soon as the pair is done (for JSON lines). */
  onPair?: (record: PairRecord) => void | Promise<void>;
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

export interface MethodResult {
  /** pck[alpha].img / .bbox */
  pck: Record<string, { img: PckResult; bbox?: PckResult }>;
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
/** Above this many channels descriptors are matched at their own resolution (upsampling would not fit in memory). */
const MAX_UPSAMPLED_DIM = 8192;

function requireNetworks(o: EvalOptions): void {
  const missing = o.methods.filter(
    (m) => (NEEDS_NETWORK.includes(m) && !o.network) || (m === 'one-step' && !o.oneStepNetwork),
  );
  if (missing.length) {
    throw new ConfigError(
      `method(s) ${missing.join(', ')} need an aggregation network: pass --aggregator <ckpt> (and --one-step-aggregator for one-step), use a model with released weights (SDv1-5, SDv2-1) with --allow-download, or train one (trainNetwork)`,
    );
  }
}

/** Descriptors of one method for a pair of stacks: [1, D, r, r] each. */
async function methodDescriptors(
  m: Table1Method,
  stacks: FeatureStack[],
  o: EvalOptions,
  R: number,
): Promise<Tensor[]> {
  const clean = Math.max(...stacks[0].saveTimesteps);
  const net = m === 'one-step' ? o.oneStepNetwork! : o.network;
  switch (m) {
    case 'ours':
    case 'one-step':
      return Promise.all(stacks.map((s) => net!.aggregate([s], R)));
    case 'ours-pruned': {
      const pruned = o.network!.pruned(o.prunedK ?? 10);
      try {
        return await Promise.all(stacks.map((s) => pruned.aggregate([s], R)));
      } finally {
        await pruned.dispose();
      }
    }
    case 'sd-layer-4':
      return stacks.map((s) => s.select([clean], [Math.min(4, s.layers.length)]).concat(R));
    case 'sd-layer-pruned': {
      const top = o.network!.topMixingWeights(1)[0];
      return stacks.map((s) => s.select([top.saveTimestep], [top.layer]).concat(R));
    }
    case 'sd-concat-all':
      return stacks.map((s) => s.concat(R));
  }
}

/**
 * Evaluate `methods` on `pairs`.
 * @throws ConfigError for unknown methods or missing networks (before any work).
 */
export async function evaluatePairs(
  sd: StableDiffusion,
  pairs: readonly KeypointPair[],
  o: EvalOptions,
): Promise<EvalResults> {
  requireNetworks(o);
  if (!pairs.length) throw new ConfigError('evaluatePairs: the pair list is empty; nothing to evaluate');
  await checkPointsInImages(pairs); // before any compute
  const loadSize = o.loadSize ?? 224;
  const R = o.outputResolution ?? 64;
  checkPositiveInt('loadSize', loadSize);
  const alphas = o.alphas ?? [...PCK_ALPHAS];
  const perMethod = new Map<Table1Method, PckPair[]>(o.methods.map((m) => [m, []]));
  const notes = new Map<Table1Method, string>();
  for (const [i, pair] of pairs.entries()) {
    const multi = o.methods.some((m) => m !== 'one-step')
      ? await invertImages(sd, [pair.source, pair.target], { ...o.extract, loadSize })
      : [];
    const single = o.methods.includes('one-step')
      ? await invertImages(sd, [pair.source, pair.target], {
          ...o.extract,
          steps: 1,
          saveTimesteps: [0],
          loadSize,
        })
      : [];
    const [srcSize, tgtSize] = [multi[0] ?? single[0], multi[1] ?? single[1]].map(
      (s) => s.meta.originalSize!,
    );
    const load = { width: loadSize, height: loadSize };
    const sourceYX = rescalePoints(
      pair.sourcePoints.map(([x, y]): PointYX => [y, x]),
      srcSize,
      load,
    );
    const truth = pair.targetPoints.map(([x, y]): PointYX => [y, x]);
    for (const m of o.methods) {
      const [a, b] = await methodDescriptors(m, m === 'one-step' ? single : multi, o, R);
      const big = a.shape[1] > MAX_UPSAMPLED_DIM;
      if (big)
        notes.set(
          m,
          `${a.shape[1]}-dim descriptors matched at ${R}x${R} (not upsampled to ${loadSize}) to fit in memory`,
        );
      const matches = big
        ? (await matchPointsBatched(a, b, rescalePoints(sourceYX, load, { width: R, height: R }))).map(
            (x) => rescalePoints([x.target], { width: R, height: R }, load)[0],
          )
        : (await matchPointsBatched(a, b, sourceYX, { loadSize })).map((x) => x.target);
      const scored: PckPair = {
        predicted: rescalePoints(matches, load, tgtSize),
        groundTruth: truth,
        imageSize: tgtSize,
        bbox: pair.targetBbox,
        category: pair.category,
      };
      perMethod.get(m)!.push(scored);
      await o.onPair?.(pairRecord(i, pair, m, scored, 0.1));
    }
    o.onProgress?.(i + 1, pairs.length);
  }
  const methods: EvalResults['methods'] = {};
  for (const [m, list] of perMethod) {
    const pck: MethodResult['pck'] = {};
    for (const a of alphas)
      pck[String(a)] = {
        img: computePck(list, a, 'img'),
        bbox: list.every((p) => p.bbox) ? computePck(list, a, 'bbox') : undefined,
      };
    methods[m] = { pck, note: notes.get(m) };
  }
  return {
    pairs: pairs.length,
    keypoints: pairs.reduce((n, p) => n + p.sourcePoints.length, 0),
    loadSize,
    outputResolution: R,
    methods,
  };
}

const pct = (v: number | undefined) => (v === undefined ? 'n/a' : (100 * v).toFixed(2));

/** Markdown table in the paper's layout (PCK@0.1 img / bbox, per keypoint) beside the paper's numbers. */
export function table1Markdown(r: EvalResults, dataset: string, model: string): string {
  const key = dataset === 'cub' ? 'cub' : 'spair';
  const lines = [
    `PCK@0.1 on ${dataset} (${r.pairs} pairs, ${r.keypoints} keypoints; per keypoint; model ${model})`,
    '',
    `| method | ours img | ours bbox | paper img | paper bbox |`,
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [m, res] of Object.entries(r.methods)) {
    const p = res!.pck['0.1'];
    const paper = PAPER_TABLE1[m]?.[key];
    lines.push(
      `| ${m} | ${pct(p?.img.perKeypoint)} | ${pct(p?.bbox?.perKeypoint)} | ${paper ? paper[0].toFixed(2) : 'n/a'} | ${paper ? paper[1].toFixed(2) : 'n/a'} |`,
    );
  }
  const notes = Object.entries(r.methods).filter(([, v]) => v!.note);
  if (notes.length) lines.push('', ...notes.map(([m, v]) => `- ${m}: ${v!.note}`));
  return lines.join('\n') + '\n';
}
