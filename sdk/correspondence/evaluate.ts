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
import { checkPointsInImages, type KeypointPair } from '../data/pairs.ts';
import { imageSize } from '../data/image.ts';
import { DEFAULT_EXTRACT, type ExtractOptions } from '../diffusion/extract.ts';
import type { StableDiffusion } from '../diffusion/pipeline.ts';
import type { AggregationNetwork } from '../aggregation/network.ts';
import { extractionForNetwork } from '../aggregation/settings.ts';
import type { DinoModel } from '../model/dino/index.ts';
import type { Dinov2Model } from '../model/dinov2/index.ts';
import type { Tensor } from '../core/tensor.ts';
import { CHUNKED_DIM, matchPointsBatched, matchPointsChunked, rescalePoints, type PointYX } from './match.ts';
import { PCK_ALPHAS, computePck, distances, pckThreshold, type PckPair, type PckResult } from './pck.ts';
import { CLEAN, MULTI, cleanStep, multiInversion } from './methods/features.ts';
import { publishedMarkdown } from './methods/published.ts';
import {
  METHODS,
  PAPER_ROWS,
  PAPER_TABLE1,
  PairFeatures,
  TABLE1_METHODS,
  methodOf,
  type RunContext,
  type Table1Method,
} from './methods/index.ts';

export {
  DEFAULT_METHODS,
  PAPER_ROWS,
  PAPER_TABLE1,
  TABLE1_METHODS,
  diftSettings,
  type Table1Method,
} from './methods/index.ts';
export { CHUNKED_DIM } from './match.ts';

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

export interface SdDinoOptions {
  /** Weight of DINOv2 against SD in [0, 1] (default 0.5, the original's equal weights). */
  dinoWeight?: number;
  sdSize?: number;
  dinoSize?: number;
  timestep?: number;
  pcaDims?: number[];
  /** Prompt; `{category}` is replaced by the pair's category. */
  prompt?: string;
  /** Conditioning [1, 77, D] per image file stem ('default' for any other), instead of the prompt. */
  embeddings?: Map<string, Tensor>;
  seed?: number;
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
  /** DINOv2, for `dinov2`, `sd-dino` and `ours+dinov2`. */
  dinov2?: Dinov2Model;
  /** A network trained on SD and DINOv2 features (`train --features sd,dinov2`), for `ours+dinov2`. */
  dinov2Network?: AggregationNetwork;
  /** SD-DINO's settings (correspondence/sd-dino.ts SD_DINO_DEFAULTS), for `sd-dino` (and `dinov2`'s input size). */
  sdDino?: SdDinoOptions;
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

/**
 * The multi-timestep inversion's settings: the network's (or the ours+dinov2 network's; two
 * networks must agree, since the methods share one inversion).
 */
function multiExtraction(
  o: EvalOptions,
  sd: StableDiffusion,
): Omit<ExtractOptions, 'loadSize' | 'onProgress'> {
  const nets = [o.network, o.dinov2Network].filter((n) => n !== undefined);
  const settings = nets.map((n) => extractionForNetwork(n.config, sd.unet.config, o.extract ?? {}));
  if (settings.length === 2 && JSON.stringify(settings[0]) !== JSON.stringify(settings[1]))
    throw new ConfigError(
      `the ours and ours+dinov2 networks were trained on different inversions (${JSON.stringify(settings[0])} vs ${JSON.stringify(settings[1])}); evaluate them in separate runs`,
    );
  return settings[0] ?? o.extract ?? {};
}

/** Every missing model, one sentence per kind, before any work. */
function requireModels(o: EvalOptions): void {
  const groups = new Map<string, { message: (m: readonly string[]) => string; methods: string[] }>();
  for (const m of o.methods) {
    const r = methodOf(m).requires?.(o);
    if (!r) continue;
    const g = groups.get(r.key) ?? { message: r.message, methods: [] };
    g.methods.push(m);
    groups.set(r.key, g);
  }
  const first = [...groups.values()][0];
  if (first) throw new ConfigError(first.message(first.methods));
}

/** What each method computes with these options (stored with the results; the same for every pair). */
export function describeMethods(o: EvalOptions, sd: StableDiffusion): Record<string, MethodDefinition> {
  return Object.fromEntries(o.methods.map((m) => [m, methodOf(m).describe(o, sd)]));
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
  for (const m of o.methods) methodOf(m).check?.(o, sd);
  const bad = (o.indices ?? []).filter((i) => !Number.isInteger(i) || i < 0 || i >= pairs.length);
  if (bad.length)
    throw new ConfigError(
      `evaluatePairs: indices ${bad.slice(0, 5).join(', ')} are outside 0..${pairs.length - 1}`,
    );
}

/** Image sizes as the extraction decoded them when the run inverts, else from the file headers. */
async function originalSizes(f: PairFeatures): Promise<{ width: number; height: number }[]> {
  const stacks = f.run.uses.has(MULTI)
    ? await multiInversion(f)
    : f.run.uses.has(CLEAN)
      ? await cleanStep(f)
      : undefined;
  if (stacks) return stacks.map((s) => s.meta.originalSize!);
  return Promise.all([f.pair.source, f.pair.target].map((p) => imageSize(p)));
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
  multiExtraction(o, sd);
  const indices = o.indices ?? pairs.map((_, i) => i);
  await checkPointsInImages(indices.map((i) => pairs[i])); // before any compute
  const loadSize = o.loadSize ?? DEFAULT_EXTRACT.loadSize;
  const R = o.outputResolution ?? DEFAULT_EXTRACT.outputResolution;
  const multiExtract = multiExtraction(o, sd);
  const definitions = describeMethods(o, sd);
  const done = new Map<number, PairRecord[]>();
  for (const r of o.completed ?? []) done.set(r.index, [...(done.get(r.index) ?? []), r]);
  const records: PairRecord[] = [];
  const run: RunContext = {
    sd,
    o,
    loadSize,
    R,
    multiExtract,
    uses: new Set(o.methods.flatMap((m) => methodOf(m).uses)),
    prepared: new Map(),
  };
  const load = { width: loadSize, height: loadSize };
  const releases: { dispose(): Promise<void> }[] = [];
  try {
    for (const m of o.methods) {
      const r = await methodOf(m).prepare?.(run);
      if (r) releases.push(r);
    }
    for (const [n, i] of indices.entries()) {
      const pair = pairs[i];
      const previous = done.get(i) ?? [];
      if (o.methods.every((m) => previous.some((r) => r.method === m && r.id === pairId(pair)))) {
        records.push(...o.methods.map((m) => previous.find((r) => r.method === m)!));
        o.onProgress?.(n + 1, indices.length);
        continue;
      }
      const f = new PairFeatures(pair, run);
      const [srcSize, tgtSize] = await originalSizes(f);
      const sourceYX = rescalePoints(
        pair.sourcePoints.map(([x, y]): PointYX => [y, x]),
        srcSize,
        load,
      );
      const truth = pair.targetPoints.map(([x, y]): PointYX => [y, x]);
      const mine: PairRecord[] = [];
      for (const m of o.methods) {
        const method = methodOf(m);
        let predicted: PointYX[];
        if (method.predict) predicted = (await method.predict(f)).map(([x, y]): PointYX => [y, x]);
        else {
          const [a, b] = await method.descriptors!(f);
          const matches =
            a.shape[1] > CHUNKED_DIM
              ? await matchPointsChunked(a, b, sourceYX, { loadSize })
              : await matchPointsBatched(a, b, sourceYX, { loadSize });
          predicted = rescalePoints(
            matches.map((x) => x.target),
            load,
            tgtSize,
          );
        }
        const scored: PckPair = {
          predicted,
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
    for (const r of releases) await r.dispose();
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
  const thisFamily = family ?? 'sd15';
  for (const row of PAPER_ROWS) {
    const res = row.method ? r.methods[row.method as Table1Method] : undefined;
    const paper = PAPER_TABLE1[row.key]?.[key];
    if (res && (!row.family || row.family === thisFamily)) {
      const p = res.pck['0.1'];
      lines.push(
        `| ${row.label} | ${res.layers ?? row.layers} | ${res.timesteps === 0 ? '-' : (res.timesteps ?? row.timesteps)} | ${pckPct(p?.img)} | ${pckPct(p?.bbox)} | ${paperPct(paper?.[0])} | ${paperPct(paper?.[1])} |`,
      );
    } else if (paper) {
      lines.push(
        `| ${row.label} | ${row.layers} | ${row.timesteps} | not computed | not computed | ${paperPct(paper[0])} | ${paperPct(paper[1])} |`,
      );
    }
  }
  // rows beyond the paper's, in the registry's order
  for (const m of METHODS) {
    const res = r.methods[m.key];
    if (!res || !m.row || PAPER_ROWS.some((row) => row.method === m.key)) continue;
    const p = res.pck['0.1'];
    lines.push(
      `| ${m.row.label} | ${res.layers ?? m.row.layers} | ${res.timesteps === 0 ? '-' : (res.timesteps ?? m.row.timesteps)} | ${pckPct(p?.img)} | ${pckPct(p?.bbox)} | - | - |`,
    );
  }
  lines.push('', 'How each computed row was made:');
  for (const [m, res] of Object.entries(r.methods))
    if (res?.definition) lines.push(`- ${m}: ${res.definition}${res.note ? ` (${res.note})` : ''}`);
  lines.push(
    '- not computed: DHPF needs its own trained weights and code; other rows were not asked for (--methods) or need another model (Ours-SDv2-1: an SD-2.1 model with its network).',
  );
  // later methods' own numbers, for context, when this run has a row of their kind
  if (key === 'spair' && METHODS.some((m) => r.methods[m.key] && m.showsPublished))
    lines.push(...publishedMarkdown());
  return lines.join('\n') + '\n';
}
