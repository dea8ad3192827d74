/**
 * Training from keypoint pairs with the paper's recipe (the original's configs/train.yaml), the
 * code path of `hyperfeatures train` and of notebook 06: features by DDIM inversion from the
 * feature cache, keypoints mapped to the output grid, validation PCK@0.1 with the network being
 * trained, and a resumable run folder (./run.ts).
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../../core/errors.ts';
import type { Progress } from '../../core/progress.ts';
import type { KeypointPair } from '../../data/pairs.ts';
import { invertImages, type ExtractOptions } from '../../diffusion/extract.ts';
import type { StableDiffusion } from '../../diffusion/pipeline.ts';
import { PAPER_SAVE_TIMESTEPS } from '../../diffusion/plan.ts';
import { evaluatePairs } from '../../correspondence/evaluate.ts';
import type { Device } from '../../model/runtime.ts';
import type { Dinov2Model } from '../../model/dinov2/index.ts';
import type { Tensor } from '../../core/tensor.ts';
import { SD_DINO_DEFAULTS } from '../../correspondence/sd-dino.ts';
import { AggregationNetwork } from '../network.ts';
import { runTraining, type TrainRunResult } from './run.ts';
import type { TrainingExample } from './trainer.ts';

/** The paper's recipe. */
export const PAPER_RECIPE = {
  steps: 5000,
  batchSize: 2,
  valEvery: 1000,
  lr: 1e-3,
  weightDecay: 0,
  projectionDim: 384,
  resolution: 64,
  loadSize: 512,
  imageSize: 512,
  ddimSteps: 50,
  valPairs: 360,
  seed: 0,
  /** PCK threshold of the validation (the original's pck_threshold). */
  alpha: 0.1,
} as const;

export interface RecipeOptions {
  /** The run folder (network, state, curves). */
  out: string;
  steps?: number;
  batchSize?: number;
  /** Validate every N steps (0: never). */
  valEvery?: number;
  checkpointEvery?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /** One DDIM step and save timestep [0] (the one-step variant). */
  oneStep?: boolean;
  projectionDim?: number;
  resolution?: number;
  loadSize?: number;
  imageSize?: number;
  ddimSteps?: number;
  saveTimesteps?: number[];
  /** Validation PCK threshold (default 0.1). */
  alpha?: number;
  colorManaged?: boolean;
  resume?: boolean;
  device?: Device;
  progress?: Progress;
  /** Recorded in the run's settings (a resume on other data is refused). */
  datasetName?: string;
  /** Also write the authors' `.pt` release layout. */
  releasePt?: boolean;
  /**
   * ours+dinov2: also mix this DINOv2's descriptor map (its block and facet) of each image,
   * loaded at `dinov2Size` (default 840, SD-DINO's) like the diffusion input (stretched square).
   */
  dinov2?: Dinov2Model;
  dinov2Size?: number;
}

const pairsHash = (pairs: readonly KeypointPair[]) =>
  createHash('sha256')
    .update(JSON.stringify(pairs.map((p) => [p.source, p.target, p.sourcePoints, p.targetPoints])))
    .digest('hex')
    .slice(0, 16);

/** The recipe with `o`'s overrides, checked. @throws ConfigError */
export function resolveRecipe(o: RecipeOptions) {
  const r = {
    steps: o.steps ?? PAPER_RECIPE.steps,
    batchSize: o.batchSize ?? PAPER_RECIPE.batchSize,
    valEvery: o.valEvery ?? PAPER_RECIPE.valEvery,
    lr: o.lr ?? PAPER_RECIPE.lr,
    weightDecay: o.weightDecay ?? PAPER_RECIPE.weightDecay,
    seed: o.seed ?? PAPER_RECIPE.seed,
    projectionDim: o.projectionDim ?? PAPER_RECIPE.projectionDim,
    resolution: o.resolution ?? PAPER_RECIPE.resolution,
    loadSize: o.loadSize ?? PAPER_RECIPE.loadSize,
    imageSize: o.imageSize ?? PAPER_RECIPE.imageSize,
    ddimSteps: o.ddimSteps ?? (o.oneStep ? 1 : PAPER_RECIPE.ddimSteps),
    saveTimesteps: o.saveTimesteps,
    alpha: o.alpha ?? PAPER_RECIPE.alpha,
  };
  if (o.oneStep && r.ddimSteps !== 1)
    throw new ConfigError('oneStep (--one-step) extracts with 1 DDIM step; drop ddimSteps (--ddim-steps)');
  if (!(r.alpha > 0 && r.alpha <= 1))
    throw new ConfigError(`the validation PCK threshold (pck_threshold) must be in (0, 1], got ${r.alpha}`);
  const saveTimesteps =
    r.saveTimesteps ?? (r.ddimSteps === 1 ? [0] : r.ddimSteps === 50 ? [...PAPER_SAVE_TIMESTEPS] : undefined);
  if (!saveTimesteps)
    throw new ConfigError(
      `ddimSteps (--ddim-steps) ${r.ddimSteps}: give saveTimesteps (--save-timesteps) too (the paper's 11 are for 50 steps)`,
    );
  return { ...r, saveTimesteps };
}

export async function trainWithRecipe(
  sd: StableDiffusion,
  trainPairs: readonly KeypointPair[],
  valPairs: readonly KeypointPair[],
  o: RecipeOptions,
): Promise<TrainRunResult & { network: AggregationNetwork }> {
  const r = resolveRecipe(o);
  if (!trainPairs.length) throw new ConfigError('train: no training pairs');
  const extract: ExtractOptions = {
    steps: r.ddimSteps,
    saveTimesteps: r.saveTimesteps,
    loadSize: r.loadSize,
    imageSize: r.imageSize,
    colorManaged: o.colorManaged,
  };
  const dinoSize = o.dinov2Size ?? SD_DINO_DEFAULTS.dinoSize;
  const dinov2 = o.dinov2;
  if (dinov2 && (!Number.isInteger(dinoSize) || dinoSize % dinov2.config.patchSize))
    throw new ConfigError(
      `dinov2Size (--dinov2-size) ${dinoSize}: must be a multiple of DINOv2's patch size ${dinov2.config.patchSize}`,
    );
  const network = AggregationNetwork.forModel(sd, {
    oneStep: r.ddimSteps === 1 && r.saveTimesteps.join() === '0',
    steps: r.ddimSteps,
    saveTimesteps: r.saveTimesteps,
    projectionDim: r.projectionDim,
    seed: r.seed,
    device: o.device,
    extraMaps: dinov2 ? [{ name: dinov2.mapName(dinoSize), dim: dinov2.config.hiddenSize }] : undefined,
  });
  const dinoMaps = async (images: string[]): Promise<Tensor[][]> =>
    Promise.all(
      images.map(async (img) => [
        await dinov2!.describeImage(img, { loadSize: dinoSize, colorManaged: o.colorManaged }),
      ]),
    );
  const R = r.resolution;
  const examples = {
    count: trainPairs.length,
    async get(i: number): Promise<TrainingExample> {
      const p = trainPairs[i];
      const [a, b] = await invertImages(sd, [p.source, p.target], extract);
      // keypoints from original pixels to the R x R output grid, as (y, x)
      const grid = (pts: [number, number][], size: { width: number; height: number }) =>
        pts.map(([x, y]): [number, number] => [(y * R) / size.height, (x * R) / size.width]);
      const extras = dinov2 ? await dinoMaps([p.source, p.target]) : undefined;
      return {
        features: [a, b],
        ...(extras ? { extras: [extras[0], extras[1]] as const } : {}),
        source: grid(p.sourcePoints, a.meta.originalSize!),
        target: grid(p.targetPoints, b.meta.originalSize!),
      };
    },
  };
  const method = dinov2 ? 'ours+dinov2' : r.ddimSteps === 1 ? 'one-step' : 'ours';
  const validate =
    valPairs.length && r.valEvery
      ? async (net: AggregationNetwork) => {
          const res = await evaluatePairs(sd, valPairs, {
            methods: [method],
            ...(dinov2 ? { dinov2Network: net, dinov2 } : { network: net, oneStepNetwork: net }),
            loadSize: r.loadSize, // the training features (cached), as the original validates
            outputResolution: R,
            alphas: [r.alpha],
            extract: {
              steps: r.ddimSteps,
              saveTimesteps: r.saveTimesteps,
              imageSize: r.imageSize,
              colorManaged: o.colorManaged,
            },
          });
          const p = res.methods[method]!.pck[String(r.alpha)];
          return { img: p.img.perKeypoint, bbox: p.bbox?.perKeypoint, alpha: r.alpha };
        }
      : undefined;
  const result = await runTraining(network, {
    out: o.out,
    steps: r.steps,
    batchSize: r.batchSize,
    valEvery: validate ? r.valEvery : 0,
    checkpointEvery: o.checkpointEvery,
    lr: r.lr,
    weightDecay: r.weightDecay,
    seed: r.seed,
    resolution: R,
    resume: o.resume ?? false,
    settings: {
      model: sd.modelHash,
      dataset: o.datasetName ?? 'pairs',
      train: pairsHash(trainPairs),
      val: pairsHash(valPairs),
      batchSize: r.batchSize,
      lr: r.lr,
      weightDecay: r.weightDecay,
      seed: r.seed,
      resolution: R,
      projectionDim: r.projectionDim,
      alpha: r.alpha,
      ...(dinov2 ? { dinov2: { map: dinov2.mapName(dinoSize) } } : {}),
      extract: {
        ddimSteps: r.ddimSteps,
        saveTimesteps: r.saveTimesteps,
        loadSize: r.loadSize,
        imageSize: r.imageSize,
        colorManaged: o.colorManaged ?? false,
      },
    },
    examples,
    validate,
    progress: o.progress,
    releasePt: o.releasePt,
  });
  return { ...result, network };
}
