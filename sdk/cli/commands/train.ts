/**
 * `hyperfeatures train`: the aggregation network trained as the paper trains it (the original's
 * configs/train.yaml): SPair-71k training pairs, validation PCK@0.1 every 1000 steps, 5000 steps,
 * batch 2, AdamW lr 1e-3 without weight decay, projection 384, output 64 x 64, features from a
 * 50-step inversion at load size 512 with the 11 paper timesteps (or one step with --one-step).
 * Features come from the feature cache (extract once with --features-only, train many times).
 */
import { ConfigError, DataError } from '../../core/errors.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import { createProgress } from '../../core/progress.ts';
import { DATASETS, SPAIR_SPLITS, checkPointsInImages, loadPairs, loadSpairSplit } from '../../data/pairs.ts';
import { invertImages, type ExtractOptions } from '../../diffusion/extract.ts';
import { loadStableDiffusion } from '../../diffusion/pipeline.ts';
import { parseIndexList } from '../../diffusion/plan.ts';
import { RUN_FILES } from '../../aggregation/train/run.ts';
import {
  PAPER_RECIPE,
  resolveRecipe,
  trainWithRecipe,
  type RecipeOptions,
} from '../../aggregation/train/recipe.ts';
import { DEVICES } from '../../model/runtime.ts';
import { DINO_FACETS } from '../../model/dino/index.ts';
import { DINOV2_DEFAULTS, Dinov2Model } from '../../model/dinov2/index.ts';
import { SD_DINO_DEFAULTS } from '../../correspondence/sd-dino.ts';
import {
  choice,
  intOption,
  parse,
  UNET_KERNEL_FLAGS,
  UNET_KERNEL_USAGE,
  unetKernelOptions,
} from '../args.ts';
import { readTrainConfig } from '../train-config.ts';
import type { Command } from '../main.ts';
import { parseShard } from '../shard.ts';

function numberOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new ConfigError(`option --${name}: expected a non-negative number, got "${v}"`);
  return n;
}

export const train: Command = {
  summary: "train an aggregation network with the paper's recipe (resumable, with curves)",
  usage: [
    `hyperfeatures train --model <m> --dataset ${DATASETS.join('|')} --root <dir> --out <dir>`,
    `  [--split ${SPAIR_SPLITS.join('|')} (default trn)] [--pairs <list>] [--val-pairs <list> (default: the paper's val-360)] [--config <train.yaml|json>] [--resume]`,
    `  [--steps ${PAPER_RECIPE.steps}] [--batch-size ${PAPER_RECIPE.batchSize}] [--val-every ${PAPER_RECIPE.valEvery}] [--checkpoint-every N] [--lr ${PAPER_RECIPE.lr}] [--weight-decay 0] [--seed 0]`,
    `  [--one-step] [--projection-dim ${PAPER_RECIPE.projectionDim}] [--output-resolution ${PAPER_RECIPE.resolution}] [--load-size ${PAPER_RECIPE.loadSize}] [--image-size 512]`,
    '  [--ddim-steps 50] [--save-timesteps 49,45,...,0] [--limit N] [--val-limit 360] [--color-managed]',
    "  [--release-pt (also aggregation_network.pt in the authors' torch.save layout, with the AdamW state)]",
    `  [--features-only [--shard k/n]] [--device ${DEVICES.join('|')}] ${UNET_KERNEL_USAGE} [--allow-download]`,
    `  [--features sd|sd,dinov2 (ours+dinov2: DINOv2's map mixed in, its own bottleneck and weight)] [--dinov2 ${DINOV2_DEFAULTS.model}] [--dinov2-size ${SD_DINO_DEFAULTS.dinoSize}] [--dinov2-layer <last>] [--dinov2-facet token]`,
    `writes <out>/${RUN_FILES.network}, ${RUN_FILES.state} (parameters, AdamW moments, step), ${RUN_FILES.curves} and ${RUN_FILES.csv}`,
  ].join('\n'),
  async run(args) {
    const { values: v } = parse(
      args,
      {
        model: { type: 'string' },
        dataset: { type: 'string' },
        root: { type: 'string' },
        out: { type: 'string' },
        split: { type: 'string' },
        pairs: { type: 'string' },
        'val-pairs': { type: 'string' },
        config: { type: 'string' },
        resume: { type: 'boolean' },
        steps: { type: 'string' },
        'batch-size': { type: 'string' },
        'val-every': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        lr: { type: 'string' },
        'weight-decay': { type: 'string' },
        seed: { type: 'string' },
        'one-step': { type: 'boolean' },
        'projection-dim': { type: 'string' },
        'output-resolution': { type: 'string' },
        'load-size': { type: 'string' },
        'image-size': { type: 'string' },
        'ddim-steps': { type: 'string' },
        'save-timesteps': { type: 'string' },
        limit: { type: 'string' },
        'val-limit': { type: 'string' },
        'color-managed': { type: 'boolean' },
        'features-only': { type: 'boolean' },
        'release-pt': { type: 'boolean' },
        shard: { type: 'string' },
        device: { type: 'string' },
        ...UNET_KERNEL_FLAGS,
        'allow-download': { type: 'boolean' },
        features: { type: 'string' },
        dinov2: { type: 'string' },
        'dinov2-size': { type: 'string' },
        'dinov2-layer': { type: 'string' },
        'dinov2-facet': { type: 'string' },
      },
      false,
    );
    // every option is read and checked before anything loads
    const cfg = v.config ? readTrainConfig(v.config) : { ignored: [] as string[] };
    const model = v.model ?? cfg.model;
    for (const [k, val] of [
      ['model', model],
      ['dataset', v.dataset],
      ['root', v.root],
      ['out', v.out],
    ] as const)
      if (!val) throw new ConfigError(`train: --${k} is required`);
    const dataset = choice('dataset', v.dataset, DATASETS, 'spair');
    // flags over the config file over the paper's recipe (resolveRecipe fills in and checks the rest)
    const int = (name: keyof typeof v, fromConfig: number | undefined, min: number) =>
      v[name] === undefined ? fromConfig : intOption(name, v[name] as string, 0, min);
    const recipe: RecipeOptions = {
      out: v.out!,
      steps: int('steps', cfg.steps, 1),
      batchSize: int('batch-size', cfg.batchSize, 1),
      valEvery: int('val-every', cfg.valEvery, 0),
      checkpointEvery: int('checkpoint-every', undefined, 1),
      lr: numberOption('lr', v.lr) ?? cfg.lr,
      weightDecay: numberOption('weight-decay', v['weight-decay']) ?? cfg.weightDecay,
      seed: int('seed', cfg.seed, 0),
      oneStep: v['one-step'],
      projectionDim: int('projection-dim', cfg.projectionDim, 128),
      resolution: int('output-resolution', cfg.resolution, 1),
      loadSize: int('load-size', cfg.loadSize, 1),
      imageSize: int('image-size', undefined, 8),
      ddimSteps: int('ddim-steps', v['one-step'] ? undefined : cfg.ddimSteps, 1),
      saveTimesteps: v['save-timesteps']
        ? parseIndexList(v['save-timesteps'], '--save-timesteps')
        : cfg.saveTimesteps,
      alpha: cfg.alpha,
      colorManaged: v['color-managed'],
      resume: v.resume ?? false,
      datasetName: dataset,
      releasePt: v['release-pt'],
    };
    const features = (v.features ?? 'sd').split(',').map((f) => f.trim());
    const unknown = features.filter((f) => f !== 'sd' && f !== 'dinov2');
    if (unknown.length || !features.includes('sd'))
      throw new ConfigError(
        `--features: expected sd or sd,dinov2 (the diffusion features, optionally with DINOv2's), got "${v.features}"`,
      );
    const withDinov2 = features.includes('dinov2');
    for (const k of ['dinov2', 'dinov2-size', 'dinov2-layer', 'dinov2-facet'] as const)
      if (v[k] !== undefined && !withDinov2) throw new ConfigError(`--${k} applies to --features sd,dinov2`);
    const dinov2Size =
      v['dinov2-size'] !== undefined ? intOption('dinov2-size', v['dinov2-size'], 0, 14) : undefined;
    const r = resolveRecipe(recipe);
    const shard = v.shard ? parseShard(v.shard) : undefined;
    if (shard && !v['features-only'])
      throw new ConfigError('--shard applies to --features-only (training itself is one process)');
    checkOutputDir(v.out!);

    // data: training pairs and validation pairs, checked up front
    const pairsList = v.pairs ?? cfg.pairs;
    let trainPairs = loadPairs(
      dataset,
      v.root!,
      pairsList,
      dataset === 'spair' && !pairsList ? (v.split ?? 'trn') : v.split,
    );
    if (v.limit) trainPairs = trainPairs.slice(0, intOption('limit', v.limit, trainPairs.length, 1));
    const valList = v['val-pairs'] ?? cfg.valPairs;
    const valLimit = intOption('val-limit', v['val-limit'], PAPER_RECIPE.valPairs, 1);
    const valPairs = r.valEvery
      ? (valList
          ? loadPairs(dataset, v.root!, valList)
          : dataset === 'spair'
            ? loadSpairSplit(v.root!, 'val-360') // the paper's validation list, shipped with the package
            : []
        ).slice(0, valLimit)
      : [];
    await checkPointsInImages([...trainPairs, ...valPairs]);
    if (cfg.ignored.length)
      process.stderr.write(
        `--config: not used here (logging and the original's paths): ${cfg.ignored.join(', ')}\n`,
      );

    const device = choice('device', v.device, DEVICES, 'cpu');
    const kernels = unetKernelOptions(v);
    const sd = await loadStableDiffusion(model!, { device, allowDownload: v['allow-download'], ...kernels });
    const dinov2 = withDinov2
      ? await Dinov2Model.load(v.dinov2 ?? DINOV2_DEFAULTS.model, {
          device,
          precision: kernels.precision,
          allowDownload: v['allow-download'],
          layer:
            v['dinov2-layer'] !== undefined ? intOption('dinov2-layer', v['dinov2-layer'], 0, 0) : undefined,
          facet: choice('dinov2-facet', v['dinov2-facet'], DINO_FACETS, DINOV2_DEFAULTS.facet),
        }).catch(async (e) => {
          await sd.dispose();
          throw e;
        })
      : undefined;
    try {
      if (v['features-only']) {
        const extract: ExtractOptions = {
          steps: r.ddimSteps,
          saveTimesteps: r.saveTimesteps,
          loadSize: r.loadSize,
          imageSize: r.imageSize,
          colorManaged: v['color-managed'],
        };
        const images = [...new Set([...trainPairs, ...valPairs].flatMap((p) => [p.source, p.target]))].filter(
          (_, i) => !shard || i % shard[1] === shard[0] - 1,
        );
        const bar = createProgress({
          label: `features${shard ? ` (shard ${shard.join('/')})` : ''} (images)`,
          total: images.length,
        });
        for (const [i, img] of images.entries()) {
          await invertImages(sd, [img], extract); // cached: a rerun resumes where it stopped
          await dinov2?.describeImage(img, {
            loadSize: dinov2Size ?? SD_DINO_DEFAULTS.dinoSize,
            colorManaged: v['color-managed'],
          });
          bar.update(i + 1);
        }
        bar.done();
        process.stdout.write(`extracted ${images.length} image(s) into the feature cache\n`);
        return;
      }
      const bar = createProgress({ label: 'train (steps)', total: r.steps });
      const result = await trainWithRecipe(sd, trainPairs, valPairs, {
        ...recipe,
        device,
        progress: bar,
        dinov2,
        dinov2Size,
      });
      bar.done();
      // a run that did not reach its steps is not a finished run: the checkpoint is kept, the exit code says so
      if (result.stoppedAt !== undefined || result.step < r.steps)
        throw new DataError(
          `training stopped at step ${result.stoppedAt ?? result.step + 1} of ${r.steps}${result.stoppedAt !== undefined ? ' on a non-finite loss (diverged: try a lower --lr)' : ''}; ${v.out}/${RUN_FILES.state} holds the parameters after step ${result.step}`,
        );
      for (const e of result.network.extraMixingWeights())
        process.stdout.write(
          `${e.name}: ${(100 * e.weight).toFixed(2)}% of the mixing weights (the diffusion maps together: ${(100 * result.network.mixingWeights().reduce((a, w) => a + w.weight, 0)).toFixed(2)}%)\n`,
        );
      process.stdout.write(
        `trained to step ${result.step}; wrote ${v.out}/${RUN_FILES.network}, ${RUN_FILES.state}, ${RUN_FILES.curves}, ${RUN_FILES.csv}\n`,
      );
    } finally {
      await sd.dispose();
      await dinov2?.dispose();
    }
  },
};
