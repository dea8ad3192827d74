/**
 * `hyperfeatures lotus-eval`: Lotus on a zero-shot depth or normal benchmark with the protocol
 * of the public Marigold / Lotus evaluation code; per-image records appended as they finish
 * (`--resume`), shards (`--shard k/n` or the scheduler's environment) merged with `--merge`.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { readInputFile, writeFileAtomic } from '../../core/fs.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import { createProgress } from '../../core/progress.ts';
import { Lotus } from '../../lotus/pipeline.ts';
import { BENCHMARK_DATASETS, openDataset } from '../../lotus/benchmark/datasets.ts';
import {
  benchmarkMarkdown,
  benchmarkProtocol,
  benchmarkResolution,
  checkModelTask,
  evaluateBenchmark,
  summarizeBenchmark,
  type BenchmarkProtocol,
  type BenchmarkRecord,
  type BenchmarkSummary,
  type PaperNumbers,
} from '../../lotus/benchmark/run.ts';
import { DEVICES } from '../../model/runtime.ts';
import { unetNumerics } from '../../model/unet/index.ts';
import {
  choice,
  intOption,
  parse,
  spreadList,
  UNET_KERNEL_FLAGS,
  unetKernelOptions,
  UNET_KERNEL_USAGE,
} from '../args.ts';
import {
  checkMergeOutput,
  checkShardSet,
  openRunFolder,
  readRecords,
  sha256Json,
  shardFolders,
} from '../eval-run.ts';
import { resolveShard, shardIndices } from '../shard.ts';
import type { Command } from '../main.ts';

const RECORDS = 'images.jsonl';

interface LotusRun {
  settings: Record<string, unknown>;
  /** What the protocol fixes, as this run set it (absent in runs written before it was kept). */
  protocol?: BenchmarkProtocol;
  shard: { k: number; n: number } | null;
  count: number;
}

/** `--processing-res`: 0 or `native` = each image's own size, else a longest edge of at least 8. */
function processingResFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value === 'native') return 0;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || (n !== 0 && n < 8))
    throw new ConfigError(
      `--processing-res: expected 0 or native (each image's own size) or an integer >= 8, got "${value}"`,
    );
  return n;
}

function readPaper(path: string | undefined): PaperNumbers | undefined {
  if (!path) return undefined;
  let paper: unknown;
  try {
    paper = JSON.parse(readInputFile(path, 'utf8'));
  } catch (e) {
    throw new DataError(
      `--paper-numbers ${path}: not a JSON file of {"<dataset>": {"<metric>": number}} (${(e as Error).message})`,
    );
  }
  // checked before any work: a bad value must not end a finished evaluation without its results
  const isObject = (x: unknown): x is Record<string, unknown> =>
    typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(paper))
    throw new DataError(
      `--paper-numbers ${path}: expected {"<dataset>": {"<metric>": number}}, got ${JSON.stringify(paper)?.slice(0, 60)}`,
    );
  for (const [dataset, metrics] of Object.entries(paper)) {
    if (!isObject(metrics))
      throw new DataError(
        `--paper-numbers ${path}: "${dataset}" should map metric names to numbers, got ${JSON.stringify(metrics)?.slice(0, 60)}`,
      );
    for (const [metric, value] of Object.entries(metrics))
      if (typeof value !== 'number' || !Number.isFinite(value))
        throw new DataError(
          `--paper-numbers ${path}: ${dataset}.${metric} is ${JSON.stringify(value)}, expected a number (percent as in the paper)`,
        );
  }
  return paper as PaperNumbers;
}

async function writeOutputs(dir: string, run: LotusRun, summary: BenchmarkSummary, paper?: PaperNumbers) {
  const s = run.settings;
  const table = benchmarkMarkdown(
    summary,
    {
      model: String(s.model),
      dataset: String(s.dataset),
      processingRes: Number(s.processingRes),
      seeds: s.seeds as number[],
      alignment: String(s.alignment),
      protocol: run.protocol,
    },
    paper,
  );
  await writeFileAtomic(
    join(dir, 'results.json'),
    Buffer.from(JSON.stringify({ ...s, protocol: run.protocol, shard: run.shard, ...summary }, null, 2)),
  );
  await writeFileAtomic(join(dir, 'table.md'), Buffer.from(table));
  return table;
}

export const lotusEval: Command = {
  summary:
    'Lotus on zero-shot depth / normal benchmarks (NYUv2, KITTI, ETH3D, ScanNet, DIODE, iBims, Sintel, OASIS, custom)',
  usage: [
    `hyperfeatures lotus-eval --model <m> --task depth|normal --dataset ${BENCHMARK_DATASETS.join('|')} --root <archive or folder> --out <dir>`,
    `  [--limit N] [--processing-res R|native (default: the protocol's: the dataset's, else native = each image's own size)]`,
    `  [--seeds 0,1,2] [--alignment depth|disparity (default: the model's)]`,
    `  [--depth-scale S (custom PNG depth: value / S = metres)] [--paper-numbers paper.json] [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--allow-download]`,
    '  [--resume | --overwrite] [--shard k/n | Slurm array / Kubernetes Indexed Job environment [--shard-count n]]',
    'hyperfeatures lotus-eval --merge <shard folders or their parent...> --out <dir> [--overwrite]',
    'writes run.json, images.jsonl (one record per image, as it finishes), results.json and table.md',
  ].join('\n'),
  async run(args) {
    const { values: v } = parse(
      spreadList(args, 'merge'),
      {
        model: { type: 'string' },
        task: { type: 'string' },
        dataset: { type: 'string' },
        root: { type: 'string' },
        out: { type: 'string' },
        limit: { type: 'string' },
        'processing-res': { type: 'string' },
        seeds: { type: 'string' },
        alignment: { type: 'string' },
        'depth-scale': { type: 'string' },
        'paper-numbers': { type: 'string' },
        device: { type: 'string' },
        ...UNET_KERNEL_FLAGS,
        'allow-download': { type: 'boolean' },
        resume: { type: 'boolean' },
        overwrite: { type: 'boolean' },
        shard: { type: 'string' },
        'shard-count': { type: 'string' },
        merge: { type: 'string', multiple: true },
      },
      false,
    );
    const paper = readPaper(v['paper-numbers']);
    if (v.merge) return merge(v.merge, v.out, paper, v.overwrite ?? false);
    for (const k of ['model', 'task', 'dataset', 'root', 'out'] as const)
      if (!v[k]) throw new ConfigError(`lotus-eval: --${k} is required`);
    if (v.resume && v.overwrite)
      throw new ConfigError('lotus-eval: --resume and --overwrite exclude each other');
    checkOutputDir(v.out!);
    const task = choice('task', v.task, ['depth', 'normal'] as const, 'depth');
    const dataset = choice('dataset', v.dataset, BENCHMARK_DATASETS, 'nyuv2');
    const explicitRes = processingResFlag(v['processing-res']);
    const seeds = (v.seeds ?? '0').split(',').map((s) => intOption('seeds', s.trim(), 0, 0));
    if (seeds.length > 100)
      throw new ConfigError(`--seeds: ${seeds.length} seeds; at most 100 predictions are averaged per image`);
    const depthScale = v['depth-scale'] !== undefined ? Number(v['depth-scale']) : undefined;
    if (depthScale !== undefined && !(depthScale > 0))
      throw new ConfigError(
        `--depth-scale: expected a positive number (e.g. 1000 for millimetres), got "${v['depth-scale']}"`,
      );
    const { spec, source } = openDataset(task, dataset, v.root!, { depthScale });
    const unmatched = spec.withoutGroundTruth ?? [];
    if (unmatched.length)
      process.stderr.write(
        `${unmatched.length} image(s) in ${join(v.root!, 'images')} have no ${task}/ file with the same stem and are not evaluated: ${unmatched.slice(0, 10).join(', ')}${unmatched.length > 10 ? ', ...' : ''}\n`,
      );
    const shard = resolveShard(v.shard, v['shard-count']);
    try {
      if (v.limit) spec.entries = spec.entries.slice(0, intOption('limit', v.limit, spec.entries.length, 1));
      const kernels = unetKernelOptions(v);
      const device = choice('device', v.device, DEVICES, 'cpu');
      const numerics = unetNumerics({ ...kernels, device });
      const model = await Lotus.fromModel(v.model!, {
        device,
        allowDownload: v['allow-download'] ?? false,
        ...kernels,
      });
      try {
        checkModelTask(model, task);
        const disparity = v.alignment
          ? choice('alignment', v.alignment, ['depth', 'disparity'] as const, 'depth') === 'disparity'
          : model.disparity;
        // the same default as the SDK's evaluateBenchmark: the dataset's resolution, else native
        const { processingRes, source: resSource } = benchmarkResolution(spec, explicitRes);
        const protocol = benchmarkProtocol(spec, {
          processingRes,
          source: resSource,
          disparity,
          modelDisparity: model.disparity,
        });
        if (protocol.departures.length && dataset !== 'custom')
          process.stderr.write(`not the protocol's run: ${protocol.departures.join('; ')}\n`);
        const settings = {
          model: v.model!,
          task,
          dataset,
          entries: sha256Json(spec.entries),
          count: spec.entries.length,
          // a custom set's images that had no ground truth: named, not silently dropped
          ...(unmatched.length ? { withoutGroundTruth: unmatched } : {}),
          processingRes,
          seeds,
          alignment:
            task === 'depth'
              ? `least squares in ${disparity ? 'disparity' : 'depth'} space`
              : 'none (angles)',
          depthScale: depthScale ?? null,
          // the UNet's kernels change the numbers: records of other kernels are never resumed or
          // merged (absent for exact fp32, the default of runs written before this key existed)
          ...(Object.keys(numerics).length ? { unet: numerics } : {}),
        };
        const dir = shard ? join(v.out!, `shard-${shard.k}-of-${shard.n}`) : v.out!;
        // a record cut short and recomputed appears twice: the last one counts
        const completed = [
          ...new Map(
            openRunFolder<BenchmarkRecord>(dir, {
              records: RECORDS,
              resume: v.resume ?? false,
              overwrite: v.overwrite ?? false,
              differs: (previous) => {
                const before = (previous as Partial<LotusRun>).settings ?? {};
                return [...new Set([...Object.keys(before), ...Object.keys(settings)])]
                  .filter(
                    (k) => JSON.stringify(before[k]) !== JSON.stringify(settings[k as keyof typeof settings]),
                  )
                  .map(
                    (k) =>
                      `${k}: ${JSON.stringify(before[k])} vs ${JSON.stringify(settings[k as keyof typeof settings])}`,
                  );
              },
              what: ['a lotus-eval', 'image records'],
              kind: 'lotus-eval',
            }).map((r) => [r.index, r]),
          ).values(),
        ];
        const run: LotusRun = {
          settings,
          protocol,
          shard: shard ? { k: shard.k, n: shard.n } : null,
          count: spec.entries.length,
        };
        await writeFileAtomic(join(dir, 'run.json'), Buffer.from(JSON.stringify(run, null, 2)));
        const indices = shardIndices(spec.entries.length, shard);
        if (shard)
          process.stderr.write(
            `shard ${shard.k}/${shard.n} (from ${shard.source}): ${indices.length} of ${spec.entries.length} images -> ${dir}\n`,
          );
        if (completed.length)
          process.stderr.write(`resuming: ${completed.length} image(s) already recorded\n`);
        const bar = createProgress({
          label: `lotus-eval ${dataset} ${task} (images)`,
          total: indices.length,
        });
        // the summary covers the reused records and the new ones (evaluateBenchmark merges them)
        const summary = await evaluateBenchmark(model, spec, source, {
          task,
          processingRes,
          seeds,
          disparity,
          indices,
          completed,
          onRecord: (r) => appendFileSync(join(dir, RECORDS), JSON.stringify(r) + '\n'),
          onProgress: (d) => bar.update(d),
        });
        bar.done();
        const table = await writeOutputs(dir, run, summary, paper);
        process.stdout.write(table + `\nwrote ${join(dir, 'results.json')}, table.md and ${RECORDS}\n`);
      } finally {
        await model.dispose();
      }
    } finally {
      source.close();
    }
  },
};

async function merge(
  dirs: string[],
  out: string | undefined,
  paper: PaperNumbers | undefined,
  overwrite: boolean,
) {
  if (!out) throw new ConfigError('lotus-eval --merge: --out <dir> is required');
  const folders = shardFolders(dirs);
  checkMergeOutput(out, { args: dirs, folders }, { kind: 'lotus-eval', overwrite });
  checkOutputDir(out);
  const runs = folders.map((f) => JSON.parse(readFileSync(join(f, 'run.json'), 'utf8')) as LotusRun);
  const first = runs[0];
  for (const [i, r] of runs.entries())
    if (JSON.stringify(r.settings) !== JSON.stringify(first.settings))
      throw new ConfigError(`--merge: ${folders[i]} is another run than ${folders[0]}`);
  const n = checkShardSet(
    folders,
    runs.map((r) => r.shard),
  );
  const records = new Map<number, BenchmarkRecord>();
  for (const [i, r] of runs.entries()) {
    const recs = readRecords<BenchmarkRecord>(join(folders[i], RECORDS));
    const want = shardIndices(first.count, r.shard ?? undefined);
    const have = new Set(recs.map((x) => x.index));
    const left = want.filter((x) => !have.has(x));
    if (left.length)
      throw new ConfigError(
        `--merge: ${folders[i]} has not finished ${left.length} image(s); run it again with --resume`,
      );
    for (const x of recs) records.set(x.index, x);
  }
  mkdirSync(out, { recursive: true });
  const merged: LotusRun = { ...first, shard: null };
  await writeFileAtomic(join(out, 'run.json'), Buffer.from(JSON.stringify(merged, null, 2)));
  const sorted = [...records.values()].sort((a, b) => a.index - b.index);
  await writeFileAtomic(
    join(out, RECORDS),
    Buffer.from(sorted.map((r) => JSON.stringify(r) + '\n').join('')),
  );
  const summary = summarizeBenchmark(sorted, first.settings.task as 'depth' | 'normal');
  const table = await writeOutputs(out, merged, summary, paper);
  process.stdout.write(table + `\nmerged ${n} shard(s): wrote ${join(out, 'results.json')} and table.md\n`);
}
