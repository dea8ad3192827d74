/** hyperfeatures: the public API. */
import { assertNodeVersion } from './core/node-version.ts';

assertNodeVersion();

export * from './core/errors.ts';
export { Tensor, concat, resizeBilinear, relativeError } from './core/tensor.ts';
export { Rng } from './core/rng.ts';
export { setLogger, captureLogs, type Logger } from './core/logger.ts';
export { SafetensorsReader, writeSafetensors, readAllSafetensors } from './core/safetensors.ts';
export {
  loadImage,
  decodeImage,
  saveImage,
  pixelsToRgb,
  IMAGE_FORMATS,
  type DecodeOptions,
  type ImageInput,
  type RgbImage,
} from './data/image.ts';
export * from './data/pairs.ts';
export { UNet } from './model/unet/index.ts';
export { Vae } from './model/vae/index.ts';
export { TextEncoder, ClipTokenizer } from './model/clip/index.ts';
export { makeTinyCheckpoint, demoCheckpoint } from './model/tiny/index.ts';
export { downloadModel, resolveModel, hubFile } from './model/hub.ts';
export {
  listGraphCache,
  pruneGraphCache,
  graphCacheDir,
  type GraphCacheEntry,
  type PruneOptions,
} from './model/cache-admin.ts';
export { DEVICES, deviceStatus, type Device } from './model/runtime.ts';
export { loadStableDiffusion, type StableDiffusion } from './diffusion/pipeline.ts';
export {
  invertImages,
  invertLatents,
  generateImages,
  generateLatents,
  DEFAULT_EXTRACT,
  type ExtractOptions,
  type GenerateOptions,
} from './diffusion/extract.ts';
export { FeatureStack } from './diffusion/feature-stack.ts';
export { pcaRgb } from './diffusion/pca.ts';
export {
  noisedFeatures,
  addNoise,
  ensembleNoise,
  DIFT_DEFAULTS,
  type NoisedOptions,
  type NoisedFeatures,
} from './diffusion/noised.ts';
export {
  DinoModel,
  DINO_DEFAULTS,
  DINO_FACETS,
  interpolatePositions,
  type DinoFacet,
  type DinoOptions,
} from './model/dino/index.ts';
export { POSITION_INTERPOLATIONS, type PositionInterpolation } from './model/dino/positions.ts';
export {
  SD_DINO_DEFAULTS,
  sdDinoDescriptors,
  letterbox,
  letterboxImage,
  fuse as fuseDescriptors,
  gridMatch,
  type Letterbox,
  type SdDinoDescriptorOptions,
} from './correspondence/sd-dino.ts';
export { coPca } from './correspondence/co-pca.ts';
export { PUBLISHED_SPAIR, type PublishedResult } from './correspondence/methods/published.ts';
export {
  Dinov2Model,
  DINOV2_DEFAULTS,
  parseDinov2Config,
  type Dinov2Config,
  type Dinov2Options,
} from './model/dinov2/index.ts';
export { DdimScheduler } from './diffusion/scheduler.ts';
export { unetTimestepOf, stepSchedule } from './diffusion/loop.ts';
export { PAPER_SAVE_TIMESTEPS } from './diffusion/plan.ts';
export * from './aggregation/index.ts';
export {
  matchPoints,
  matchPointsBatched,
  matchPointsChunked,
  mutualNearestNeighbours,
} from './correspondence/match.ts';
export {
  DEFAULT_MATCH_LIMIT,
  matchImagePoints,
  mutualImageMatches,
  type Correspondence,
} from './correspondence/points.ts';
export { computePck, PCK_ALPHAS } from './correspondence/pck.ts';
export { gridPck } from './correspondence/grid-pck.ts';
export {
  evaluatePairs,
  summarizeRecords,
  describeMethods,
  table1Markdown,
  pairId,
  TABLE1_METHODS,
  DEFAULT_METHODS,
  PAPER_TABLE1,
  PAPER_ROWS,
  type EvalOptions,
  type SdDinoOptions,
  type EvalResults,
  type PairRecord,
  type Table1Method,
} from './correspondence/evaluate.ts';
export { explainPairPng } from './viz/explain.ts';
export { drawCorrespondences } from './viz/correspondences.ts';
export { imageGridPng } from './viz/grid.ts';
export { Hyperfeatures, HyperfeatureImage, type HyperfeaturesOptions } from './facade/hyperfeatures.ts';
export { Lotus, type LotusResult, type LotusPredictOptions } from './lotus/pipeline.ts';
export { depthMetrics, normalMetrics, alignScaleShift } from './lotus/metrics.ts';
export { colorizeMap, normalsToRgb, saveDepth16, savePointCloud } from './lotus/outputs.ts';
export {
  openDataset,
  BENCHMARK_DATASETS,
  DEPTH_DATASETS,
  NORMAL_DATASETS,
  type BenchmarkDataset,
  type DatasetSpec,
} from './lotus/benchmark/datasets.ts';
export {
  evaluateBenchmark,
  summarizeBenchmark,
  benchmarkMarkdown,
  type BenchmarkRecord,
  type BenchmarkSummary,
  type PaperNumbers,
} from './lotus/benchmark/run.ts';
export { alignDepth, depthErrors, normalErrorStats, poolNormalStats } from './lotus/benchmark/protocol.ts';
export {
  mixingHeatmapSpec,
  mixingMarginalsSpec,
  mixingSharesSpec,
  pckBarsSpec,
  trainingCurvesSpec,
  renderSvg,
  renderPng,
  writeFigure,
} from './viz/charts.ts';
export { readHomography, warpPoints } from './data/homography.ts';
export {
  correspondenceExplorerSpec,
  layerTimestepBrowserSpec,
  mixingWeightsExplorerSpec,
  type MapDetail,
  similarityMap,
  type BrowserMap,
  type ExplorerMethod,
  type ExplorerOptions,
} from './viz/explorer.ts';
