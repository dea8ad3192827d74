/**
 * Lotus on a zero-shot benchmark: each sample is predicted at the protocol's processing
 * resolution and scored (protocol.ts); one record per image, handed out as it finishes so a
 * command can append it (resume, shards); the summary is a pure function of the records.
 */
import { ConfigError } from '../../core/errors.ts';
import type { Lotus, LotusResult } from '../pipeline.ts';
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
  /** Longest edge the model sees (default: the dataset's, else 0 = the image's own size, as the reference). */
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
  // the reference runs at the image's own size unless the dataset's config sets a resolution
  const res = o.processingRes ?? spec.processingRes ?? 0;
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
      const r = await model.predict(s.rgb, { task: o.task, processingRes: res, seeds: o.seeds ?? [0] });
      if (o.task === 'depth') {
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
      } else record = { ...record, normal: normalErrorStats(r.normal!.data, s.gt, s.valid) };
    }
    records.push(record);
    await o.onRecord?.(record);
    o.onProgress?.(k + 1, indices.length);
  }
  return summarizeBenchmark(records, o.task);
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

/** A markdown table in the papers' units (AbsRel and delta in percent; angles in degrees). */
export function benchmarkMarkdown(
  s: BenchmarkSummary,
  meta: { model: string; dataset: string; processingRes: number; seeds: number[]; alignment: string },
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
      `Lotus ${s.task} on ${meta.dataset}: ${s.images} images${s.skipped ? ` (${s.skipped} skipped: no valid ground truth)` : ''}; model ${meta.model}; processing resolution ${meta.processingRes}; seeds ${meta.seeds.join(',')}; ${meta.alignment}`,
      '',
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
