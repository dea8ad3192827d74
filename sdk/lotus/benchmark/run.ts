/**
 * Lotus on a zero-shot benchmark: each sample is predicted at the protocol's processing
 * resolution and scored (protocol.ts); one record per image, handed out as it finishes so a
 * command can append it (resume, shards); the summary is a pure function of the records.
 */
import { ConfigError } from '../../core/errors.ts';
import type { Lotus, LotusResult } from '../pipeline.ts';
import type { RgbImage } from '../../core/rgb.ts';
import { Tensor, resizeBilinear } from '../../core/tensor.ts';
import type { DataSource, DatasetSpec } from './datasets.ts';
import {
  DEPTH_METRICS,
  alignDepth,
  depthErrors,
  normalErrorStats,
  poolNormalStats,
  type DepthRecordMetrics,
  type NormalErrorStats,
  type NormalSummary,
} from './protocol.ts';

export interface BenchmarkRecord {
  index: number;
  id: string;
  width: number;
  height: number;
  validPixels: number;
  /** Why the image does not count (e.g. no valid ground truth); then no metrics. */
  skipped?: string;
  depth?: DepthRecordMetrics & { scale: number; shift: number };
  normal?: NormalErrorStats;
}

export interface BenchmarkOptions {
  task: 'depth' | 'normal';
  /** Longest edge the model sees (default: benchmarkResolution: the dataset's, else 0 = the image's own size). */
  processingRes?: number;
  /** Lotus-G noise seeds (predictions averaged); default [0]. */
  seeds?: number[];
  /** Align in disparity space (default: when the model predicts disparity). */
  disparity?: boolean;
  indices?: readonly number[];
  completed?: readonly BenchmarkRecord[];
  onRecord?: (r: BenchmarkRecord) => void | Promise<void>;
  onProgress?: (done: number, total: number) => void;
}

/** Where a run's processing resolution came from. */
export type ResolutionSource = 'dataset' | 'native' | 'override';

/**
 * The one source of the processing resolution for the SDK and the CLI: an explicit value, else
 * the dataset's configured one, else 0 = the image's own size, as the reference evaluation runs.
 */
export function benchmarkResolution(
  spec: Pick<DatasetSpec, 'processingRes'>,
  explicit?: number,
): { processingRes: number; source: ResolutionSource } {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 0)
      throw new ConfigError(
        `processingRes: expected an integer >= 0 (0 = each image's own size), got ${String(explicit)}`,
      );
    return { processingRes: explicit, source: 'override' };
  }
  if (spec.processingRes !== undefined) return { processingRes: spec.processingRes, source: 'dataset' };
  return { processingRes: 0, source: 'native' };
}

/** What a run fixed that the protocol also fixes, so a reader can tell a protocol run from a custom one. */
export interface BenchmarkProtocol {
  dataset: string;
  task: 'depth' | 'normal';
  /** The processing resolution used (longest edge; 0 = each image's own size) and its origin. */
  processingRes: number;
  processingResSource: ResolutionSource;
  /** What the protocol runs at (0 = native). */
  protocolProcessingRes: number;
  /** Depth: the space of the least-squares scale-and-shift fit; normals: none. */
  alignmentSpace: 'depth' | 'disparity' | 'none';
  /** The space the protocol aligns in for this model. */
  protocolAlignmentSpace: 'depth' | 'disparity' | 'none';
  /** The fit on a copy downsampled to this longest edge (ETH3D), else null. */
  alignmentMaxRes: number | null;
  /** Valid ground-truth depth range in metres (depth), else null. */
  depthRange: [number, number | null] | null;
  /** Normals at the native size: the reference's centred padding to multiples of 32. */
  normalPadding: string | null;
  /** Empty for a protocol run; otherwise each setting that differs from it. */
  departures: string[];
}

export function benchmarkProtocol(
  spec: Pick<DatasetSpec, 'name' | 'task' | 'processingRes' | 'alignmentMaxRes' | 'minDepth' | 'maxDepth'>,
  used: { processingRes: number; source: ResolutionSource; disparity: boolean; modelDisparity: boolean },
): BenchmarkProtocol {
  const depth = spec.task === 'depth';
  const protocolRes = benchmarkResolution(spec).processingRes;
  const space = (d: boolean) =>
    (depth ? (d ? 'disparity' : 'depth') : 'none') as 'depth' | 'disparity' | 'none';
  const departures: string[] = [];
  if (spec.name === 'custom') departures.push('custom dataset: no published protocol');
  if (used.processingRes !== protocolRes)
    departures.push(
      `processing resolution ${used.processingRes || 'native'} (protocol: ${protocolRes || 'native'})`,
    );
  if (depth && used.disparity !== used.modelDisparity)
    departures.push(`alignment in ${space(used.disparity)} space (protocol: ${space(used.modelDisparity)})`);
  return {
    dataset: spec.name,
    task: spec.task,
    processingRes: used.processingRes,
    processingResSource: used.source,
    protocolProcessingRes: protocolRes,
    alignmentSpace: space(used.disparity),
    protocolAlignmentSpace: space(used.modelDisparity),
    alignmentMaxRes: depth ? (spec.alignmentMaxRes ?? null) : null,
    depthRange: depth ? [spec.minDepth, Number.isFinite(spec.maxDepth) ? spec.maxDepth : null] : null,
    normalPadding:
      !depth && used.processingRes === 0 ? "centred to multiples of 32 with DSINE's padding values" : null,
    departures,
  };
}

export interface BenchmarkSummary {
  task: 'depth' | 'normal';
  images: number;
  skipped: number;
  /** Depth: each metric averaged over images. */
  depth?: Record<string, number>;
  normal?: NormalSummary;
}

/** @throws ConfigError when the checkpoint predicts the other task. */
export function checkModelTask(model: Lotus, task: 'depth' | 'normal'): void {
  if (model.kind !== 'unknown' && model.kind !== task)
    throw new ConfigError(
      `${model.modelId} is a Lotus ${model.kind} checkpoint: it cannot be evaluated on ${task}; use a ${task} checkpoint (e.g. jingheya/lotus-${task}-g-v1-${task === 'depth' ? '0' : '1'})`,
    );
}

export async function evaluateBenchmark(
  model: Lotus,
  spec: DatasetSpec,
  source: DataSource,
  o: BenchmarkOptions,
): Promise<BenchmarkSummary> {
  checkModelTask(model, o.task);
  if (spec.task !== o.task)
    throw new ConfigError(`dataset ${spec.name} is a ${spec.task} set, asked for ${o.task}`);
  const indices = o.indices ?? spec.entries.map((_, i) => i);
  const done = new Map((o.completed ?? []).map((r) => [r.index, r]));
  const records: BenchmarkRecord[] = [];
  const res = benchmarkResolution(spec, o.processingRes).processingRes;
  for (const [k, i] of indices.entries()) {
    const previous = done.get(i);
    if (previous) {
      records.push(previous);
      o.onProgress?.(k + 1, indices.length);
      continue;
    }
    const s = await spec.load(source, spec.entries[i]);
    const { width, height } = s.rgb;
    const validPixels = s.valid.reduce((a, v) => a + v, 0);
    let record: BenchmarkRecord = { index: i, id: s.id, width, height, validPixels };
    if (validPixels < 2) record.skipped = 'no valid ground-truth pixels';
    else {
      if (o.task === 'depth') {
        const r = await model.predict(s.rgb, { task: 'depth', processingRes: res, seeds: o.seeds ?? [0] });
        const aligned = alignDepth(depthAtImageSize(r, width, height), s.gt, s.valid, {
          width,
          height,
          disparity: o.disparity ?? model.disparity,
          maxRes: spec.alignmentMaxRes,
          minDepth: spec.minDepth,
          maxDepth: spec.maxDepth,
        });
        record = {
          ...record,
          depth: { ...depthErrors(aligned.depth, s.gt, s.valid), scale: aligned.scale, shift: aligned.shift },
        };
      } else {
        const normal =
          res === 0
            ? (await predictPaddedNormals(model, s.rgb, o.seeds ?? [0])).normal
            : (await model.predict(s.rgb, { task: 'normal', processingRes: res, seeds: o.seeds ?? [0] }))
                .normal!;
        record = { ...record, normal: normalErrorStats(normal.data, s.gt, s.valid) };
      }
    }
    records.push(record);
    await o.onRecord?.(record);
    o.onProgress?.(k + 1, indices.length);
  }
  return summarizeBenchmark(records, o.task);
}

/** DSINE's padding values: ImageNet-normalised zeros, put into the [-1, 1] input as they are. */
const PAD = [(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225];

/**
 * Normals as the reference evaluates them at the native size: the [-1, 1] image padded (centred)
 * to multiples of 32 with DSINE's padding values, predicted at that size, and cropped back.
 */
export async function predictPaddedNormals(
  model: Lotus,
  rgb: RgbImage,
  seeds: number[],
): Promise<{ normal: Tensor }> {
  const { width: W, height: H } = rgb;
  const [PW, PH] = [W, H].map((v) => (v % 32 === 0 ? v : 32 * (Math.floor(v / 32) + 1)));
  const [l, t] = [Math.floor((PW - W) / 2), Math.floor((PH - H) / 2)];
  const pixels = new Float32Array(3 * PW * PH);
  for (let c = 0; c < 3; c++) pixels.fill(PAD[c], c * PW * PH, (c + 1) * PW * PH);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < 3; c++)
        pixels[c * PW * PH + (y + t) * PW + x + l] = rgb.data[(y * W + x) * 3 + c] / 127.5 - 1;
  const r = await model.predictPixels(new Tensor(pixels, [1, 3, PH, PW]), {
    task: 'normal',
    processingRes: 0,
    seeds,
  });
  const full = r.normal!;
  const out = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++)
    out.set(full.data.subarray(((y + t) * PW + l) * 3, ((y + t) * PW + l + W) * 3), y * W * 3);
  return { normal: new Tensor(out, [1, H, W, 3]) };
}

/**
 * The depth at the image's size as the evaluation code makes it: the seeds' channel means at the
 * processing size, averaged, and resized back bilinearly (torchvision's resize; the pipeline's own
 * output uses nearest).
 */
function depthAtImageSize(r: LotusResult, width: number, height: number): Float32Array {
  const [, h, w] = r.processed[0].shape;
  if (h === height && w === width) return r.depth!.data;
  const mean = new Float32Array(h * w);
  for (const img of r.processed)
    for (let i = 0; i < h * w; i++)
      mean[i] += (img.data[i * 3] + img.data[i * 3 + 1] + img.data[i * 3 + 2]) / 3 / r.processed.length;
  return resizeBilinear(new Tensor(mean, [1, 1, h, w]), height, width).data;
}

/** The dataset's numbers from its records, in index order. */
export function summarizeBenchmark(
  records: readonly BenchmarkRecord[],
  task: 'depth' | 'normal',
): BenchmarkSummary {
  const sorted = [...records].sort((a, b) => a.index - b.index);
  const used = sorted.filter((r) => !r.skipped);
  const out: BenchmarkSummary = { task, images: used.length, skipped: sorted.length - used.length };
  if (!used.length) return out;
  if (task === 'depth')
    out.depth = Object.fromEntries(
      DEPTH_METRICS.map((m) => [m, used.reduce((a, r) => a + r.depth![m], 0) / used.length]),
    );
  else out.normal = poolNormalStats(used.map((r) => r.normal!));
  return out;
}

/** Paper numbers as a user supplies them: { "<dataset>": { "abs_rel": 5.4, "delta1": 96.6 } } (percent). */
export type PaperNumbers = Record<string, Record<string, number>>;

const resolutionText = (r: number) => (r === 0 ? "native (each image's own size)" : String(r));

/** The dataset's row: what this run used, and whether it is the protocol's run. */
function protocolRows(p: BenchmarkProtocol, images: number): string[] {
  const resolution =
    p.processingResSource === 'override'
      ? `${resolutionText(p.processingRes)} (--processing-res)`
      : p.processingRes === 0
        ? "native: each image's own size (the protocol's)"
        : `${p.processingRes} (the dataset's, as the protocol)`;
  const alignment =
    p.alignmentSpace === 'none'
      ? 'none (angles)'
      : `scale and shift in ${p.alignmentSpace} space${p.alignmentMaxRes ? `, fitted at <= ${p.alignmentMaxRes} px` : ''}`;
  return [
    '| dataset | images | processing resolution | alignment | protocol run |',
    '| --- | ---: | --- | --- | --- |',
    `| ${p.dataset} | ${images} | ${resolution} | ${alignment} | ${p.departures.length ? `no: ${p.departures.join('; ')}` : 'yes'} |`,
    '',
  ];
}

/** A markdown table in the papers' units (AbsRel and delta in percent; angles in degrees). */
export function benchmarkMarkdown(
  s: BenchmarkSummary,
  meta: {
    model: string;
    dataset: string;
    processingRes: number;
    seeds: number[];
    alignment: string;
    protocol?: BenchmarkProtocol;
  },
  paper?: PaperNumbers,
): string {
  const ours = (k: string) => paper?.[meta.dataset]?.[k];
  const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
  const rows: [string, number | undefined, string][] =
    s.task === 'depth'
      ? [
          ['AbsRel (%)', s.depth && 100 * s.depth.abs_rel, 'abs_rel'],
          ['delta1 (%)', s.depth && 100 * s.depth.delta1, 'delta1'],
          ['delta2 (%)', s.depth && 100 * s.depth.delta2, 'delta2'],
          ['delta3 (%)', s.depth && 100 * s.depth.delta3, 'delta3'],
          ['SqRel', s.depth?.sq_rel, 'sq_rel'],
          ['RMSE', s.depth?.rmse, 'rmse'],
          ['RMSE log', s.depth?.rmse_log, 'rmse_log'],
          ['log10', s.depth?.log10, 'log10'],
          ['iRMSE', s.depth?.i_rmse, 'i_rmse'],
          ['SILog', s.depth?.silog_rmse, 'silog_rmse'],
        ]
      : [
          ['mean angle (deg)', s.normal?.mean, 'mean'],
          ['median angle (deg)', s.normal?.median, 'median'],
          ['RMSE angle (deg)', s.normal?.rmse, 'rmse'],
          ...['5', '7.5', '11.25', '22.5', '30'].map((t): [string, number | undefined, string] => [
            `< ${t} deg (%)`,
            s.normal?.within[t],
            t,
          ]),
        ];
  return (
    [
      `Lotus ${s.task} on ${meta.dataset}: ${s.images} images${s.skipped ? ` (${s.skipped} skipped: no valid ground truth)` : ''}; model ${meta.model}; processing resolution ${resolutionText(meta.processingRes)}; seeds ${meta.seeds.join(',')}; ${meta.alignment}`,
      '',
      ...(meta.protocol ? protocolRows(meta.protocol, s.images) : []),
      '| metric | this run | paper |',
      '| --- | ---: | ---: |',
      ...rows.map(([name, v, key]) => `| ${name} | ${fmt(v)} | ${fmt(ours(key))} |`),
      '',
      paper
        ? 'Paper column: the numbers given with --paper-numbers.'
        : 'Paper column: not filled in. The Lotus paper\'s tables could not be read where this tool was built; pass them with --paper-numbers <json> ({"<dataset>": {"abs_rel": ..., "delta1": ...}}, percent as in the paper).',
    ].join('\n') + '\n'
  );
}
