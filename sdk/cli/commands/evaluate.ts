import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/fs.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import { createProgress } from '../../core/progress.ts';
import {
  DATASETS,
  SPAIR_SPLITS,
  checkPointsInImages,
  loadPairs,
  type KeypointPair,
} from '../../data/pairs.ts';
import { decodeImage } from '../../data/image.ts';
import { explainPairPng } from '../../viz/explain.ts';
import { undecodable } from '../images.ts';
import { loadStableDiffusion } from '../../diffusion/pipeline.ts';
import { DEFAULT_EXTRACT } from '../../diffusion/extract.ts';
import { AggregationNetwork } from '../../aggregation/network.ts';
import { modelFamily, officialNetwork, readUNetConfig } from '../../aggregation/official.ts';
import {
  DEFAULT_METHODS,
  TABLE1_METHODS,
  describeMethods,
  evaluatePairs,
  pairId,
  parseMethods,
  summarizeRecords,
  table1Markdown,
  type EvalOptions,
  type EvalResults,
  type PairRecord,
} from '../../correspondence/evaluate.ts';
import { DINO_DEFAULTS, DINO_FACETS, DinoModel } from '../../model/dino/index.ts';
import { POSITION_INTERPOLATIONS } from '../../model/dino/positions.ts';
import { DINOV2_DEFAULTS, Dinov2Model } from '../../model/dinov2/index.ts';
import { SD_DINO_DEFAULTS, checkDinoWeight, readEmbeddings } from '../../correspondence/sd-dino.ts';
import type { SdDinoOptions } from '../../correspondence/evaluate.ts';
import { DEVICES } from '../../model/runtime.ts';
import {
  EXTRACT_FLAGS,
  choice,
  extractFlags,
  intOption,
  parse,
  spreadList,
  UNET_KERNEL_FLAGS,
  unetKernelOptions,
  UNET_KERNEL_USAGE,
} from '../args.ts';
import {
  RECORDS_FILE,
  mergeShards,
  checkMergeOutput,
  openRunFolder,
  settingsDiff,
  shardFolders,
  sha256File,
  sha256Json,
  writeRunFile,
  type RunFile,
  type RunSettings,
} from '../eval-run.ts';
import { resolveShard, shardIndices } from '../shard.ts';
import type { Command } from '../main.ts';

/** The network given, else the official one for the model's family; the reason when there is none. */
async function network(
  path: string | undefined,
  model: string,
  variant: 'multi-step' | 'one-step',
  allowDownload: boolean,
): Promise<{ net?: AggregationNetwork; file?: string; missing?: string }> {
  if (path) return { net: await AggregationNetwork.load(path), file: path };
  const config = await readUNetConfig(model, { allowDownload });
  try {
    const file = await officialNetwork({ modelId: model, config }, variant, { allowDownload });
    return { net: await AggregationNetwork.load(file), file };
  } catch (e) {
    if (e instanceof ConfigError) return { missing: e.message }; // the methods that need it say so
    throw e;
  }
}

const pckDefinitions = {
  perKeypoint:
    "correct keypoints / all keypoints, pooled over every pair (the paper's number; the original code averages this way)",
  perImage: "mean over pairs of each pair's fraction of correct keypoints",
  img: 'threshold alpha x max(width, height) of the target image',
  bbox: 'threshold alpha x max(width, height) of the target object box',
  records: 'pairs.jsonl: one line per pair and method with points (x, y), distances, thresholds and hits',
};

/** results.json and table1.md of a finished (or merged) run; the same files for the same records. */
async function writeResults(dir: string, run: RunFile, results: EvalResults): Promise<string> {
  const family = run.family === 'sd15' || run.family === 'sd21' ? run.family : undefined;
  const precision = run.options.precision;
  const model = typeof precision === 'string' ? `${run.model}, precision ${precision}` : run.model;
  let table = table1Markdown(results, run.dataset, model, family);
  if (run.shard)
    table += `\nShard ${run.shard.k}/${run.shard.n} only: merge the shards with \`hyperfeatures eval --merge <folders> --out <dir>\` for the table.\n`;
  const json = {
    dataset: run.dataset,
    model: run.model,
    family: run.family,
    shard: run.shard,
    pck_definitions: pckDefinitions,
    ...results,
  };
  await writeFileAtomic(join(dir, 'results.json'), Buffer.from(JSON.stringify(json, null, 2)));
  await writeFileAtomic(join(dir, 'table1.md'), Buffer.from(table));
  return table;
}

async function merge(dirs: string[], out: string | undefined, overwrite: boolean): Promise<void> {
  if (!out) throw new ConfigError('eval --merge: --out <dir> is required (where the merged results go)');
  // before checkOutputDir, which makes the folder
  checkMergeOutput(out, { args: dirs, folders: shardFolders(dirs) }, { kind: 'eval', overwrite });
  checkOutputDir(out);
  const { run, records } = mergeShards(dirs);
  const sorted = [...records].sort(
    (a, b) => a.index - b.index || run.methods.indexOf(a.method) - run.methods.indexOf(b.method),
  );
  const results = summarizeRecords(sorted, run.methods, {
    loadSize: Number(run.options.loadSize),
    outputResolution: Number(run.options.outputResolution),
    definitions: run.definitions,
  });
  mkdirSync(out, { recursive: true });
  const merged: RunFile = { ...run, shard: null };
  await writeRunFile(out, merged);
  await writeFileAtomic(
    join(out, RECORDS_FILE),
    Buffer.from(sorted.map((r) => JSON.stringify(r) + '\n').join('')),
  );
  const table = await writeResults(out, merged, results);
  process.stdout.write(
    table +
      `\nmerged ${run.shard?.n ?? 1} shard(s), ${results.pairs} pairs: wrote ${join(out, 'results.json')}, table1.md and ${RECORDS_FILE}\n`,
  );
}

export const evaluate: Command = {
  summary: "the paper's Table 1: PCK of each method on a keypoint dataset, beside the paper's numbers",
  usage: [
    `hyperfeatures eval --model <m> --dataset ${DATASETS.join('|')} --root <dataset folder> [--split ${SPAIR_SPLITS.join('|')} (SPair; default test-360, the paper's list, shipped) | --pairs <list>] --out <dir>`,
    `  [--methods ${TABLE1_METHODS.join(',')}] (default ${DEFAULT_METHODS.join(',')})`,
    '  [--aggregator <ckpt>] [--one-step-aggregator <ckpt>] (default: the released networks of the model family)',
    '  [--load-size 224] [--output-resolution 64] [--steps 50] [--save-timesteps ...] [--image-size 512] [--limit N]',
    `  [--pruned-k 1] [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--allow-download] [--no-cache] [--color-managed]`,
    "  [--dift-timestep 261] [--dift-ensemble 8] [--dift-up-block 1] [--dift-seed 0] [--dift-prompt 'a photo of a {category}' (DIFT's; the pair's category)]",
    `  [--dino ${DINO_DEFAULTS.model}] [--dino-layer ${DINO_DEFAULTS.layer}] [--dino-facet ${DINO_FACETS.join('|')}] [--dino-stride ${DINO_DEFAULTS.stride}]`,
    `  [--dinov2 ${DINOV2_DEFAULTS.model}] [--dinov2-aggregator <ckpt from train --features sd,dinov2> (ours+dinov2)] [--dinov2-layer <last>] [--dinov2-facet ${DINO_FACETS.join('|')} (token)] [--dinov2-positions ${POSITION_INTERPOLATIONS.join('|')}] (dinov2, sd-dino)`,
    `  [--sd-dino-weight ${SD_DINO_DEFAULTS.dinoWeight} (DINOv2's share in [0, 1])] [--sd-dino-sd-size ${SD_DINO_DEFAULTS.sdSize}] [--sd-dino-dino-size ${SD_DINO_DEFAULTS.dinoSize}] [--sd-dino-timestep ${SD_DINO_DEFAULTS.timestep}] [--sd-dino-pca ${SD_DINO_DEFAULTS.pcaDims.join(',')}] [--sd-dino-prompt '${SD_DINO_DEFAULTS.prompt}'] [--embeddings <file.safetensors> (conditioning [1, 77, D] per image stem or "default")]`,
    '  [--resume | --overwrite] [--shard k/n | Slurm array / Kubernetes Indexed Job environment [--shard-count n]]',
    '  [--explain-pair <index | id like 2008_007604-2009_001056:aeroplane>]  (that pair only: <out>/explain_<index>_<method>.png)',
    'hyperfeatures eval --merge <shard folders or their parent...> --out <dir> [--overwrite]  (the table of all shards, as one run)',
    'writes <out>/run.json, pairs.jsonl (one record per pair and method, appended as each pair finishes), results.json, table1.md;',
    'a shard writes into <out>/shard-<k>-of-<n>/',
  ].join('\n'),
  async run(args) {
    const { values: v, positionals } = parse(
      spreadList(args, 'merge'),
      {
        model: { type: 'string' },
        dataset: { type: 'string' },
        root: { type: 'string' },
        pairs: { type: 'string' },
        split: { type: 'string' },
        out: { type: 'string' },
        methods: { type: 'string' },
        aggregator: { type: 'string' },
        'one-step-aggregator': { type: 'string' },
        ...EXTRACT_FLAGS,
        'output-resolution': { type: 'string' },
        limit: { type: 'string' },
        'explain-pair': { type: 'string' },
        'pruned-k': { type: 'string' },
        'dift-timestep': { type: 'string' },
        'dift-ensemble': { type: 'string' },
        'dift-up-block': { type: 'string' },
        'dift-seed': { type: 'string' },
        'dift-prompt': { type: 'string' },
        dino: { type: 'string' },
        'dino-layer': { type: 'string' },
        'dino-facet': { type: 'string' },
        'dino-stride': { type: 'string' },
        dinov2: { type: 'string' },
        'dinov2-aggregator': { type: 'string' },
        'dinov2-layer': { type: 'string' },
        'dinov2-facet': { type: 'string' },
        'dinov2-positions': { type: 'string' },
        'sd-dino-weight': { type: 'string' },
        'sd-dino-sd-size': { type: 'string' },
        'sd-dino-dino-size': { type: 'string' },
        'sd-dino-timestep': { type: 'string' },
        'sd-dino-pca': { type: 'string' },
        'sd-dino-prompt': { type: 'string' },
        embeddings: { type: 'string' },
        resume: { type: 'boolean' },
        overwrite: { type: 'boolean' },
        shard: { type: 'string' },
        'shard-count': { type: 'string' },
        merge: { type: 'string', multiple: true },
        device: { type: 'string' },
        ...UNET_KERNEL_FLAGS,
        'allow-download': { type: 'boolean' },
        'no-cache': { type: 'boolean' },
      },
      false,
    );
    void positionals;
    if (v.merge) return merge(v.merge, v.out, v.overwrite ?? false);
    for (const k of ['model', 'dataset', 'root', 'out'] as const)
      if (!v[k]) throw new ConfigError(`eval: --${k} is required`);
    if (v.resume && v.overwrite) throw new ConfigError('eval: --resume and --overwrite exclude each other');
    checkOutputDir(v.out!);
    const dataset = choice('dataset', v.dataset, DATASETS, 'spair');
    const methods = parseMethods(v.methods ?? DEFAULT_METHODS.join(','));
    const shard = resolveShard(v.shard, v['shard-count']);
    let pairs = loadPairs(dataset, v.root!, v.pairs, v.split); // all missing images reported before any work
    if (v.limit) pairs = pairs.slice(0, intOption('limit', v.limit, pairs.length, 1));
    pairs = await decodablePairs(pairs, v['color-managed']);
    await checkPointsInImages(pairs);
    const explain = v['explain-pair'] !== undefined ? findPair(pairs, v['explain-pair']) : undefined;
    if (explain && shard) throw new ConfigError('--explain-pair runs one pair: it takes no --shard');
    const allow = v['allow-download'] ?? false;
    const device = choice('device', v.device, DEVICES, 'cpu');
    // the precision applies to every model of the run: SD's three and DINO / DINOv2
    const kernels = unetKernelOptions(v);
    const precision = kernels.precision === 'fp32' ? undefined : kernels.precision;
    const needs = (...ms: string[]) => methods.some((m) => ms.includes(m));
    const multi = needs('ours', 'sd-layer-pruned', 'ours-pruned')
      ? await network(v.aggregator, v.model!, 'multi-step', allow)
      : {};
    const oneStep = needs('one-step')
      ? await network(v['one-step-aggregator'], v.model!, 'one-step', allow)
      : {};
    const dino = needs('dino')
      ? await DinoModel.load(v.dino ?? DINO_DEFAULTS.model, {
          layer: v['dino-layer'] !== undefined ? intOption('dino-layer', v['dino-layer'], 0, 0) : undefined,
          facet: choice('dino-facet', v['dino-facet'], DINO_FACETS, DINO_DEFAULTS.facet),
          stride:
            v['dino-stride'] !== undefined ? intOption('dino-stride', v['dino-stride'], 1, 1) : undefined,
          device,
          precision,
          allowDownload: allow,
        })
      : undefined;
    const sdDino = await sdDinoFlags(v);
    const dinov2Network = needs('ours+dinov2')
      ? v['dinov2-aggregator']
        ? await AggregationNetwork.load(v['dinov2-aggregator'], { device })
        : undefined
      : undefined;
    const dinov2 = needs('dinov2', 'sd-dino', 'ours+dinov2')
      ? await Dinov2Model.load(v.dinov2 ?? DINOV2_DEFAULTS.model, {
          layer:
            v['dinov2-layer'] !== undefined ? intOption('dinov2-layer', v['dinov2-layer'], 0, 0) : undefined,
          facet: choice('dinov2-facet', v['dinov2-facet'], DINO_FACETS, DINOV2_DEFAULTS.facet),
          positions:
            v['dinov2-positions'] !== undefined
              ? choice('dinov2-positions', v['dinov2-positions'], POSITION_INTERPOLATIONS, 'offset')
              : undefined,
          device,
          precision,
          allowDownload: allow,
        })
      : undefined;
    const sd = await loadStableDiffusion(v.model!, { device, allowDownload: allow, ...kernels });
    const options: EvalOptions = {
      methods,
      network: multi.net,
      oneStepNetwork: oneStep.net,
      networkMissing: multi.missing ?? oneStep.missing,
      dino,
      dinov2,
      dinov2Network,
      sdDino,
      loadSize: intOption('load-size', v['load-size'], DEFAULT_EXTRACT.loadSize, 1),
      outputResolution: intOption(
        'output-resolution',
        v['output-resolution'],
        DEFAULT_EXTRACT.outputResolution,
        1,
      ),
      prunedK: intOption('pruned-k', v['pruned-k'], 1, 1),
      dift: {
        timestep:
          v['dift-timestep'] !== undefined
            ? intOption('dift-timestep', v['dift-timestep'], 261, 0)
            : undefined,
        ensemble:
          v['dift-ensemble'] !== undefined ? intOption('dift-ensemble', v['dift-ensemble'], 8, 1) : undefined,
        upBlock:
          v['dift-up-block'] !== undefined ? intOption('dift-up-block', v['dift-up-block'], 1, 0) : undefined,
        seed: v['dift-seed'] !== undefined ? intOption('dift-seed', v['dift-seed'], 0, 0) : undefined,
        prompt: v['dift-prompt'],
      },
      extract: { ...withoutLoadSize(extractFlags(v)), cache: v['no-cache'] ? false : undefined },
    };
    try {
      if (explain) return await explainOne(sd, explain, options, v.out!, v['color-managed']);
      const dir = shard ? join(v.out!, `shard-${shard.k}-of-${shard.n}`) : v.out!;
      const settings: RunSettings = {
        dataset,
        model: v.model!,
        family: modelFamily(sd.unet.config) ?? null,
        pairList: sha256Json(
          pairs.map((p) => [pairId(p), p.sourcePoints, p.targetPoints, p.targetBbox ?? null]),
        ),
        pairCount: pairs.length,
        methods,
        options: {
          loadSize: options.loadSize,
          outputResolution: options.outputResolution,
          prunedK: options.prunedK,
          dift: methods.includes('dift') ? options.dift : null,
          dino: dino ? { layer: dino.layer, facet: dino.facet, stride: dino.stride } : null,
          ...(dinov2
            ? {
                dinov2: { layer: dinov2.layer, facet: dinov2.facet, positions: dinov2.positions },
                sdDino: { ...sdDino, embeddings: v.embeddings ? sha256File(v.embeddings) : undefined },
              }
            : {}),
          extract: { ...options.extract, cache: undefined },
          ...(precision ? { precision } : {}),
        },
        weights: {
          model: sd.modelHash,
          network: multi.file ? sha256File(multi.file) : null,
          oneStepNetwork: oneStep.file ? sha256File(oneStep.file) : null,
          dino: dino ? dino.modelId : null,
          ...(dinov2 ? { dinov2: sha256File(dinov2.weightsFile) } : {}),
          ...(v['dinov2-aggregator'] ? { dinov2Network: sha256File(v['dinov2-aggregator']) } : {}),
        },
      };
      const completed = openRunFolder<PairRecord>(dir, {
        records: RECORDS_FILE,
        resume: v.resume ?? false,
        overwrite: v.overwrite ?? false,
        differs: (previous) => settingsDiff(previous as RunSettings, settings),
        what: ['an eval', 'pair records'],
        kind: 'eval',
      });
      const run: RunFile = {
        ...settings,
        shard: shard ? { k: shard.k, n: shard.n } : null,
        definitions: describeMethods(options, sd),
        started: new Date().toISOString(),
      };
      await writeRunFile(dir, run);
      const indices = shardIndices(pairs.length, shard);
      if (shard)
        process.stderr.write(
          `shard ${shard.k}/${shard.n} (from ${shard.source}): ${indices.length} of ${pairs.length} pairs -> ${dir}\n`,
        );
      const reused = new Set(completed.map((r) => r.index)).size;
      if (reused)
        process.stderr.write(`resuming: ${reused} pair(s) already recorded in ${join(dir, RECORDS_FILE)}\n`);
      const bar = createProgress({ label: `eval ${dataset} (pairs)`, total: indices.length });
      const jsonl = join(dir, RECORDS_FILE);
      const results = await evaluatePairs(sd, pairs, {
        ...options,
        indices,
        completed,
        onProgress: (d) => bar.update(d),
        // one append per pair: a kill leaves whole pairs, at worst one cut line (dropped on resume)
        onPair: (rs) => appendFileSync(jsonl, rs.map((r) => JSON.stringify(r) + '\n').join('')),
      });
      bar.done();
      const table = await writeResults(dir, run, results);
      process.stdout.write(table + `\nwrote ${join(dir, 'results.json')}, table1.md and ${RECORDS_FILE}\n`);
    } finally {
      await sd.dispose();
      await multi.net?.dispose();
      await oneStep.net?.dispose();
      await dino?.dispose();
      await dinov2?.dispose();
      await dinov2Network?.dispose();
    }
  },
};

/** SD-DINO's settings from the command line (undefined: the defaults). */
async function sdDinoFlags(
  v: Record<string, string | string[] | boolean | undefined>,
): Promise<SdDinoOptions> {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const weight = str('sd-dino-weight');
  const dinoWeight = weight === undefined ? undefined : Number(weight);
  if (dinoWeight !== undefined) checkDinoWeight(Number.isNaN(dinoWeight) ? weight : dinoWeight);
  const int = (k: string, min: number) => (str(k) !== undefined ? intOption(k, str(k), 0, min) : undefined);
  const pca = str('sd-dino-pca');
  const pcaDims = pca?.split(',').map((d) => intOption('sd-dino-pca', d.trim(), 0, 1));
  const embeddings = str('embeddings');
  return {
    dinoWeight,
    sdSize: int('sd-dino-sd-size', 8),
    dinoSize: int('sd-dino-dino-size', 1),
    timestep: int('sd-dino-timestep', 0),
    pcaDims,
    prompt: str('sd-dino-prompt'),
    embeddings: embeddings ? await readEmbeddings(embeddings) : undefined,
  };
}

/** `--explain-pair`: one pair, its records and one PNG per method. */
async function explainOne(
  sd: Awaited<ReturnType<typeof loadStableDiffusion>>,
  explain: { pair: KeypointPair; index: number },
  options: EvalOptions,
  out: string,
  colorManaged: boolean | undefined,
): Promise<void> {
  const records: PairRecord[] = [];
  const jsonl = join(out, `explain_${explain.index}.jsonl`);
  mkdirSync(out, { recursive: true });
  await evaluatePairs(sd, [explain.pair], {
    ...options,
    onPair: (rs) => {
      records.push(...rs.map((r) => ({ ...r, index: explain.index })));
    },
  });
  await writeFileAtomic(jsonl, Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join('')));
  const [src, tgt] = await Promise.all(
    [explain.pair.source, explain.pair.target].map((p) => decodeImage(p, { colorManaged })),
  );
  const written: string[] = [];
  for (const r of records) {
    const path = join(out, `explain_${explain.index}_${r.method}.png`);
    await writeFileAtomic(path, await explainPairPng(src, tgt, r));
    written.push(path);
  }
  process.stdout.write(
    records
      .map(
        (r) =>
          `${r.method}: ${r.hitsImg.filter(Boolean).length}/${r.hitsImg.length} hits by image` +
          (r.hitsBbox ? `, ${r.hitsBbox.filter(Boolean).length}/${r.hitsBbox.length} by box` : '') +
          ` (distances ${r.distances.map((d) => d.toFixed(1)).join(', ')})`,
      )
      .join('\n') + `\nwrote ${written.join(', ')} and ${jsonl}\n`,
  );
}

/** eval passes the load size on its own (it is also the matching frame). */
/**
 * The pairs whose two images decode (checked up front, each image once); the others are
 * skipped with a count and the reasons. @throws DataError when none is left.
 */
async function decodablePairs(pairs: KeypointPair[], colorManaged?: boolean): Promise<KeypointPair[]> {
  const bad = await undecodable(
    pairs.flatMap((p) => [p.source, p.target]),
    colorManaged,
  );
  if (!bad.size) return pairs;
  const kept = pairs.filter((p) => !bad.has(p.source) && !bad.has(p.target));
  process.stderr.write(
    `skipped ${pairs.length - kept.length} of ${pairs.length} pair(s) whose images cannot be decoded:\n  ${[...bad.values()].join('\n  ')}\n`,
  );
  if (!kept.length) throw new DataError('no pair is left to evaluate; see the reasons above');
  return kept;
}

/** A pair by its index in the (limited) list or by its id. @throws ConfigError naming what exists. */
function findPair(pairs: KeypointPair[], spec: string): { pair: KeypointPair; index: number } {
  const n = Number(spec);
  if (/^\d+$/.test(spec)) {
    if (n >= pairs.length)
      throw new ConfigError(
        `--explain-pair: index ${n} is outside the ${pairs.length} pairs of this list (0..${pairs.length - 1})`,
      );
    return { pair: pairs[n], index: n };
  }
  const index = pairs.findIndex((p) => pairId(p) === spec);
  if (index < 0)
    throw new ConfigError(
      `--explain-pair: no pair "${spec}" in this list; ids look like ${pairs.slice(0, 3).map(pairId).join(', ')}`,
    );
  return { pair: pairs[index], index };
}

function withoutLoadSize<T extends { loadSize?: number }>(o: T): Omit<T, 'loadSize'> {
  const rest: Omit<T, 'loadSize'> & { loadSize?: number } = { ...o };
  delete rest.loadSize;
  return rest;
}
