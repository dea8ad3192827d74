/**
 * The aggregation network's configuration (DESIGN.md semantics 7), inferred from a state
 * dict's keys and shapes and checked against the checkpoint's own config when it has one.
 */
import { ConfigError, ModelError, ShapeError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { PAPER_SAVE_TIMESTEPS } from '../diffusion/plan.ts';

export interface AggregationConfig {
  /** Channels of each decoder layer's features, in layer order. */
  featureDims: number[];
  /** Save timesteps in stacking order (generation numbering). */
  saveTimesteps: number[];
  projectionDim: number;
  numNormGroups: number;
  /**
   * DDIM steps of the extraction the network was trained on (the original config's
   * `num_timesteps`): 50 for the paper's network, 1 for the one-step variant.
   */
  steps?: number;
  /**
   * Maps beside the diffusion features (ours+dinov2: DINOv2 blocks), each with its own
   * bottleneck (`extra_bottleneck_layers.<k>.0.*`) and ONE mixing weight
   * (`extra_mixing_weights[k]`), softmaxed jointly with the diffusion maps' weights. `name` says
   * what the map is (e.g. "dinov2:block11:token"), so a network is never fed other features.
   */
  extraMaps?: ExtraMap[];
}

export interface ExtraMap {
  name: string;
  dim: number;
}

/** The extra maps (none for the paper's networks). */
export const extrasOf = (c: AggregationConfig): ExtraMap[] => c.extraMaps ?? [];

/**
 * The DDIM steps a network's features come from: its config's, else what its save timesteps
 * imply for the paper's two networks (the 11 paper timesteps: 50; [0] alone: 1), else unknown.
 */
export function networkSteps(c: AggregationConfig): number | undefined {
  if (c.steps) return c.steps;
  if (c.saveTimesteps.join() === PAPER_SAVE_TIMESTEPS.join()) return 50;
  if (c.saveTimesteps.join() === '0') return 1;
  return undefined;
}

export const DEFAULT_PROJECTION_DIM = 384;
export const LOGIT_SCALE = 1 / 0.07;
const KNOWN_CONFIG_KEYS = new Set([
  'projection_dim',
  'save_timestep',
  'num_timesteps',
  'dims',
  'diffusion_mode',
  'output_resolution',
  'load_resolution',
  'lr',
  'weight_decay',
  'model_id',
  'batch_size',
  'prompt',
  'negative_prompt',
  'guidance_scale',
  'weights_path',
  'idxs',
  'max_epochs',
  'max_steps_per_epoch',
  'val_every_n_steps',
  'plot_every_n_steps',
  'pck_threshold',
  'image_path',
  'train_path',
  'val_path',
  'results_folder',
  'wandb_project',
  'wandb_run',
  'device',
  'seed',
  'flip_timesteps',
  'use_paper_size',
  'num_norm_groups',
  'feature_dims',
  'extra_maps',
]);

export function layerKey(l: number, part: string): string {
  return `bottleneck_layers.${l}.0.${part}`;
}

export function extraKey(k: number, part: string): string {
  return `extra_bottleneck_layers.${k}.0.${part}`;
}

/** Parameter names and shapes of a network with this config, in state-dict order. */
export function parameterShapes(c: AggregationConfig): Map<string, number[]> {
  const p = c.projectionDim;
  const b = p / 4;
  const shapes = new Map<string, number[]>([
    ['mixing_weights', [c.featureDims.length * c.saveTimesteps.length]],
  ]);
  const block = (key: (part: string) => string, dim: number) => {
    const conv = (name: string, shape: number[]) => {
      shapes.set(key(`${name}.weight`), shape);
      shapes.set(key(`${name}.norm.weight`), [shape[0]]);
      shapes.set(key(`${name}.norm.bias`), [shape[0]]);
    };
    if (dim !== p) conv('shortcut', [p, dim, 1, 1]);
    conv('conv1', [b, dim, 1, 1]);
    conv('conv2', [b, b, 3, 3]);
    conv('conv3', [p, b, 1, 1]);
  };
  c.featureDims.forEach((dim, l) => block((part) => layerKey(l, part), dim));
  const extras = extrasOf(c);
  if (extras.length) {
    shapes.set('extra_mixing_weights', [extras.length]);
    extras.forEach((e, k) => block((part) => extraKey(k, part), e.dim));
  }
  return shapes;
}

/**
 * Infer the config from a state dict (+ the checkpoint's config dict, if any) and check
 * that every parameter is present with the right shape; collects all problems.
 * @throws ModelError naming the file and each problem; ConfigError for unknown config fields.
 */
export function inferConfig(
  file: string,
  params: Map<string, Tensor>,
  saved?: Record<string, unknown>,
): AggregationConfig {
  const problems: string[] = [];
  if (saved) {
    const unknown = Object.keys(saved).filter((k) => !KNOWN_CONFIG_KEYS.has(k));
    if (unknown.length) throw new ConfigError(`${file}: unknown config fields ${unknown.join(', ')}`);
  }
  const featureDims: number[] = [];
  while (params.has(layerKey(featureDims.length, 'conv1.weight')))
    featureDims.push(params.get(layerKey(featureDims.length, 'conv1.weight'))!.shape[1]);
  if (!featureDims.length)
    throw new ModelError(
      `${file}: not an aggregation network state dict (no bottleneck_layers.0.0.conv1.weight; keys: ${[...params.keys()].slice(0, 5).join(', ')})`,
    );
  const conv3 = params.get(layerKey(0, 'conv3.weight'));
  const projectionDim = conv3?.shape[0] ?? DEFAULT_PROJECTION_DIM;
  const mixing = params.get('mixing_weights');
  if (!mixing) throw new ModelError(`${file}: missing mixing_weights`);
  const S = mixing.size / featureDims.length;
  let saveTimesteps = Array.isArray(saved?.save_timestep) ? (saved!.save_timestep as number[]) : undefined;
  if (!saveTimesteps)
    saveTimesteps = S === PAPER_SAVE_TIMESTEPS.length ? [...PAPER_SAVE_TIMESTEPS] : S === 1 ? [0] : undefined;
  if (!Number.isInteger(S) || !saveTimesteps || saveTimesteps.length !== S) {
    problems.push(
      `mixing_weights has ${mixing.size} entries for ${featureDims.length} layers; the save timesteps (${JSON.stringify(saveTimesteps)}) do not account for them`,
    );
  }
  if (Array.isArray(saved?.dims) && JSON.stringify(saved!.dims) !== JSON.stringify(featureDims)) {
    problems.push(
      `config dims ${JSON.stringify(saved!.dims)} differ from the weights' ${JSON.stringify(featureDims)}`,
    );
  }
  const extraDims: number[] = [];
  while (params.has(extraKey(extraDims.length, 'conv1.weight')))
    extraDims.push(params.get(extraKey(extraDims.length, 'conv1.weight'))!.shape[1]);
  const savedExtras = Array.isArray(saved?.extra_maps) ? (saved!.extra_maps as { name?: unknown }[]) : [];
  if (extraDims.length && savedExtras.length !== extraDims.length)
    problems.push(
      `${extraDims.length} extra bottleneck(s) but the config names ${savedExtras.length} extra map(s) (extra_maps: [{ name, dim }])`,
    );
  const extraMaps = extraDims.map((dim, k) => ({ name: String(savedExtras[k]?.name ?? `extra${k}`), dim }));
  const config: AggregationConfig = {
    featureDims,
    saveTimesteps: saveTimesteps ?? [],
    ...(extraMaps.length ? { extraMaps } : {}),
    projectionDim,
    numNormGroups: 32,
    ...(typeof saved?.num_timesteps === 'number' &&
    Number.isInteger(saved.num_timesteps) &&
    saved.num_timesteps > 0
      ? { steps: saved.num_timesteps }
      : {}),
  };
  if (projectionDim % 4 || (projectionDim / 4) % config.numNormGroups)
    problems.push(
      `projection_dim ${projectionDim} must be a multiple of 4 x 32 (GroupNorm(32) on projection_dim / 4)`,
    );
  for (const [name, shape] of parameterShapes(config)) {
    const t = params.get(name);
    if (!t) problems.push(`missing parameter ${name} [${shape.join(', ')}]`);
    else if (t.shape.join() !== shape.join())
      problems.push(`${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  const extra = [...params.keys()].filter((k) => !parameterShapes(config).has(k));
  if (extra.length) problems.push(`unexpected parameters: ${extra.slice(0, 5).join(', ')}`);
  if (problems.length)
    throw new ModelError(`${file}: aggregation network does not load:\n  ${problems.join('\n  ')}`);
  return config;
}

/**
 * Check that a feature stack fits the network: same layers' channels and save timesteps.
 * @throws ShapeError saying exactly what differs.
 */
export function checkStackFits(
  c: AggregationConfig,
  stack: { saveTimesteps: readonly number[]; channels(): number[] },
): void {
  const problems: string[] = [];
  if (JSON.stringify(stack.saveTimesteps) !== JSON.stringify(c.saveTimesteps)) {
    problems.push(
      `save timesteps [${stack.saveTimesteps.join(', ')}] but the network was trained on [${c.saveTimesteps.join(', ')}] (generation features: use .flipped())`,
    );
  }
  const ch = stack.channels();
  if (JSON.stringify(ch) !== JSON.stringify(c.featureDims))
    problems.push(`layer channels [${ch.join(', ')}] but the network expects [${c.featureDims.join(', ')}]`);
  if (problems.length)
    throw new ShapeError(`feature stack does not fit the aggregation network: ${problems.join('; ')}`);
}

/**
 * Check the extra maps given for `n` images against the network's (ours+dinov2).
 * @throws ShapeError naming what differs: maps for a network without extras, missing ones,
 *   other channels
 */
export function checkExtrasFit(
  c: AggregationConfig,
  n: number,
  extras: readonly (readonly { shape: readonly number[] }[])[] | undefined,
): void {
  const want = extrasOf(c);
  const given = extras ?? [];
  if (!want.length && given.some((e) => e.length))
    throw new ShapeError(
      'extra feature maps given, but this network mixes diffusion features only (it was trained without --features dinov2)',
    );
  if (!want.length) return;
  if (given.length !== n)
    throw new ShapeError(
      `this network also mixes ${want.map((e) => e.name).join(', ')}: expected those maps for each of the ${n} image(s), got ${given.length === 0 ? 'none' : `maps for ${given.length}`}`,
    );
  for (const [i, maps] of given.entries()) {
    if (maps.length !== want.length)
      throw new ShapeError(
        `image ${i}: expected ${want.length} extra map(s) (${want.map((e) => e.name).join(', ')}), got ${maps.length}`,
      );
    maps.forEach((m, k) => {
      if (m.shape.length !== 4 || m.shape[0] !== 1 || m.shape[1] !== want[k].dim)
        throw new ShapeError(
          `image ${i}: extra map ${want[k].name} has shape [${m.shape.join(', ')}], expected [1, ${want[k].dim}, h, w]`,
        );
    });
  }
}
