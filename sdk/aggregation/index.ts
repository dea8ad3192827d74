export {
  AggregationNetwork,
  readAggregationCheckpoint,
  initParameters,
  type MixingWeight,
} from './network.ts';
export {
  inferConfig,
  checkStackFits,
  networkSteps,
  parameterShapes,
  DEFAULT_PROJECTION_DIM,
  LOGIT_SCALE,
  type AggregationConfig,
  type ExtraMap,
  extrasOf,
  checkExtrasFit,
} from './config.ts';
export { torchLoad, type TorchTensor } from './torch-load.ts';
export { Trainer, pointsToIndices, ADAMW_DEFAULTS, type AdamWOptions } from './train/trainer.ts';
export { trainNetwork, type TrainingPair, type TrainOptions, type TrainHistory } from './train/loop.ts';
export { buildAggregationGraph } from './graph.ts';
export { mirroredPairs } from './train/mirror.ts';
export { extractionForNetwork } from './settings.ts';
export {
  modelFamily,
  officialNetwork,
  officialNetworkFile,
  readUNetConfig,
  OFFICIAL_REPO,
  type ModelFamily,
} from './official.ts';
export { type PairFeatures, type TrainingExample } from './train/trainer.ts';
export {
  runTraining,
  batchIndices,
  RUN_FILES,
  type CurveRow,
  type TrainRunOptions,
  type TrainRunResult,
} from './train/run.ts';
export { trainWithRecipe, resolveRecipe, PAPER_RECIPE, type RecipeOptions } from './train/recipe.ts';
