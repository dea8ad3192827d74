import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
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
import { AggregationNetwork } from '../../aggregation/network.ts';
import { officialNetwork, readUNetConfig } from '../../aggregation/official.ts';
import {
  TABLE1_METHODS,
  evaluatePairs,
  pairId,
  parseMethods,
  table1Markdown,
  type PairRecord,
} from '../../correspondence/evaluate.ts';
import { DEVICES } from '../../model/runtime.ts';
import { EXTRACT_FLAGS, choice, extractFlags, intOption, parse } from '../args.ts';
import type { Command } from '../main.ts';

async function network(
  path: string | undefined,
  model: string,
  variant: 'multi-step' | 'one-step',
  allowDownload: boolean,
) {
  if (path) return AggregationNetwork.load(path);
  // no network given: the official one for the model's family, when there is one
  const config = await readUNetConfig(model, { allowDownload });
  const official = await officialNetwork({ modelId: model, config }, variant, { allowDownload }).catch(
    (e) => {
      if (e instanceof ConfigError) return undefined; // the methods that need it say so
      throw e;
    },
  );
  return official ? AggregationNetwork.load(official) : undefined;
}

export const evaluate: Command = {
  summary: "the paper's Table 1: PCK of each method on a keypoint dataset, beside the paper's numbers",
  usage: [
    `hyperfeatures eval --model <m> --dataset ${DATASETS.join('|')} --root <dataset folder> [--split ${SPAIR_SPLITS.join('|')} (SPair; default test-360, the paper's list, shipped) | --pairs <list>] --out <dir>`,
    `  [--methods ${TABLE1_METHODS.join(',')}] [--aggregator <ckpt>] [--one-step-aggregator <ckpt>]`,
    '  [--load-size 224] [--output-resolution 64] [--steps 50] [--save-timesteps ...] [--image-size 512] [--limit N]',
    `  [--pruned-k 10] [--device ${DEVICES.join('|')}] [--allow-download] [--no-cache] [--color-managed]`,
    '  [--explain-pair <index | id like 2008_007604-2009_001056:aeroplane>]  (that pair only: <out>/explain_<index>_<method>.png)',
    'writes <out>/results.json, table1.md and pairs.jsonl (one record per pair and method, as each pair finishes)',
  ].join('\n'),
  async run(args) {
    const { values: v } = parse(
      args,
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
        device: { type: 'string' },
        'allow-download': { type: 'boolean' },
        'no-cache': { type: 'boolean' },
      },
      false,
    );
    for (const k of ['model', 'dataset', 'root', 'out'] as const)
      if (!v[k]) throw new ConfigError(`eval: --${k} is required`);
    checkOutputDir(v.out!);
    const dataset = choice('dataset', v.dataset, DATASETS, 'spair');
    const methods = parseMethods(v.methods ?? TABLE1_METHODS.join(','));
    let pairs = loadPairs(dataset, v.root!, v.pairs, v.split); // all missing images reported before any work
    if (v.limit) pairs = pairs.slice(0, intOption('limit', v.limit, pairs.length, 1));
    pairs = await decodablePairs(pairs, v['color-managed']);
    await checkPointsInImages(pairs);
    const explain = v['explain-pair'] !== undefined ? findPair(pairs, v['explain-pair']) : undefined;
    const evaluated = explain ? [explain.pair] : pairs;
    const allow = v['allow-download'] ?? false;
    const net = await network(v.aggregator, v.model!, 'multi-step', allow);
    const oneStep = methods.includes('one-step')
      ? await network(v['one-step-aggregator'], v.model!, 'one-step', allow)
      : undefined;
    const sd = await loadStableDiffusion(v.model!, {
      device: choice('device', v.device, DEVICES, 'cpu'),
      allowDownload: allow,
    });
    const bar = createProgress({ label: `eval ${dataset} (pairs)`, total: evaluated.length });
    const records: PairRecord[] = [];
    const jsonl = join(v.out!, explain ? `explain_${explain.index}.jsonl` : 'pairs.jsonl');
    mkdirSync(v.out!, { recursive: true });
    writeFileSync(jsonl, ''); // a fresh run starts a fresh file; each line is one complete record
    try {
      const results = await evaluatePairs(sd, evaluated, {
        methods,
        network: net,
        oneStepNetwork: oneStep,
        loadSize: intOption('load-size', v['load-size'], 224, 1),
        outputResolution: intOption('output-resolution', v['output-resolution'], 64, 1),
        prunedK: intOption('pruned-k', v['pruned-k'], 10, 1),
        extract: { ...withoutLoadSize(extractFlags(v)), cache: v['no-cache'] ? false : undefined },
        onProgress: (d) => bar.update(d),
        onPair: (r) => {
          const record = explain ? { ...r, index: explain.index } : r;
          records.push(record);
          appendFileSync(jsonl, JSON.stringify(record) + '\n');
        },
      });
      bar.done();
      if (explain) {
        const colorManaged = v['color-managed'];
        const [src, tgt] = await Promise.all(
          [explain.pair.source, explain.pair.target].map((p) => decodeImage(p, { colorManaged })),
        );
        const written: string[] = [];
        for (const r of records) {
          const path = join(v.out!, `explain_${explain.index}_${r.method}.png`);
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
        return;
      }
      const table = table1Markdown(results, dataset, v.model!);
      await writeFileAtomic(
        join(v.out!, 'results.json'),
        Buffer.from(
          JSON.stringify(
            {
              dataset,
              model: v.model,
              pck_definitions: {
                perKeypoint:
                  "correct keypoints / all keypoints, pooled over every pair (the paper's number; the original code averages this way)",
                perImage: "mean over pairs of each pair's fraction of correct keypoints",
                img: 'threshold alpha x max(width, height) of the target image',
                bbox: 'threshold alpha x max(width, height) of the target object box',
                records:
                  'pairs.jsonl: one line per pair and method with points (x, y), distances, thresholds and hits',
              },
              ...results,
            },
            null,
            2,
          ),
        ),
      );
      await writeFileAtomic(join(v.out!, 'table1.md'), Buffer.from(table));
      process.stdout.write(table + `\nwrote ${join(v.out!, 'results.json')} and table1.md\n`);
    } finally {
      await sd.dispose();
      await net?.dispose();
      await oneStep?.dispose();
    }
  },
};

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
