/**
 * The aggregation network: load the authors' `.pt` releases or safetensors, run the
 * forward graph on FeatureStacks, expose the mixing weights, save as safetensors.
 */
import { extname } from 'node:path';
import { ConfigError, DataError, ShapeError } from '../core/errors.ts';
import { readAllSafetensors, writeSafetensors } from '../core/safetensors.ts';
import { Rng } from '../core/rng.ts';
import { Tensor, concat, resizedToSquare } from '../core/tensor.ts';
import type { FeatureStack } from '../diffusion/feature-stack.ts';
import { Session, type Device, type SessionOptions } from '../model/runtime.ts';
import { deviceKernels } from '../model/numerics.ts';
import {
  checkExtrasFit,
  checkStackFits,
  DEFAULT_PROJECTION_DIM,
  extrasOf,
  inferConfig,
  networkSteps,
  parameterShapes,
  type AggregationConfig,
  type ExtraMap,
} from './config.ts';
import { tapChannels, type UNetConfig } from '../model/unet/config.ts';
import { PAPER_SAVE_TIMESTEPS } from '../diffusion/plan.ts';
import { assertFinite, checkPositiveInt } from '../core/validate.ts';
import { buildAggregationGraph, inputChannels } from './graph.ts';
import { isTorchTensor, toPlain, torchLoad } from './torch-load.ts';
import { orderedDict, torchSave, torchTensor } from './torch-save.ts';

export interface MixingWeight {
  saveTimestep: number;
  layer: number;
  weight: number;
}

/** Read parameters (+ saved config) from `.pt` (torch.save) or `.safetensors`. @throws DataError / ModelError */
export async function readAggregationCheckpoint(
  path: string,
): Promise<{ params: Map<string, Tensor>; saved?: Record<string, unknown> }> {
  if (extname(path) === '.safetensors') {
    const { tensors, metadata } = await readAllSafetensors(path);
    let saved: Record<string, unknown> | undefined;
    if (metadata.config) {
      try {
        saved = JSON.parse(metadata.config);
      } catch {
        throw new DataError(`${path}: __metadata__.config is not JSON`);
      }
    }
    return { params: tensors, saved };
  }
  const obj = torchLoad(path);
  const root = obj instanceof Map ? obj : undefined;
  const sd = root?.get('aggregation_network') ?? root;
  if (!(sd instanceof Map) || ![...sd.values()].every(isTorchTensor)) {
    throw new DataError(
      `${path}: expected a state dict (or a dict with "aggregation_network"), found ${root ? `a dict with keys ${[...root.keys()].join(', ')}` : typeof obj}`,
    );
  }
  const params = new Map<string, Tensor>();
  for (const [k, t] of sd as Map<string, ReturnType<typeof torchLoad>>) {
    if (!isTorchTensor(t) || !(t.data instanceof Float32Array))
      throw new DataError(`${path}: parameter ${String(k)} is not a float tensor`);
    params.set(String(k), new Tensor(t.data, t.shape));
  }
  const saved = root?.get('config');
  return { params, saved: saved instanceof Map ? (toPlain(saved) as Record<string, unknown>) : undefined };
}

/** detectron2's init: c2_msra_fill convs (kaiming normal, fan_out), GN 1/0, mixing weights ones. */
export function initParameters(c: AggregationConfig, seed = 0): Map<string, Tensor> {
  const rng = new Rng(seed);
  const params = new Map<string, Tensor>();
  for (const [name, shape] of parameterShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (name === 'mixing_weights' || name === 'extra_mixing_weights' || name.endsWith('norm.weight'))
      values = new Float32Array(n).fill(1);
    else if (name.endsWith('norm.bias')) values = new Float32Array(n);
    else values = rng.normalArray(n, 0, Math.sqrt(2 / (shape[0] * shape[2] * shape[3])));
    params.set(name, new Tensor(values, shape));
  }
  return params;
}

export class AggregationNetwork {
  readonly config: AggregationConfig;
  params: Map<string, Tensor>;
  private session?: Session;
  private readonly sessionOptions: SessionOptions;

  constructor(config: AggregationConfig, params: Map<string, Tensor>, options: SessionOptions = {}) {
    this.config = config;
    this.params = params;
    this.sessionOptions = options;
  }

  /** Load the authors' `.pt` or a safetensors checkpoint. @throws DataError / ModelError / ConfigError */
  static async load(path: string, options: SessionOptions = {}): Promise<AggregationNetwork> {
    const { params, saved } = await readAggregationCheckpoint(path);
    return new AggregationNetwork(inferConfig(path, params, saved), params, options);
  }

  /**
   * A freshly initialised network for a diffusion model without a released one: feature dims
   * come from the UNet config (no probe inversion), save timesteps default to the paper's
   * 11 of a 50-step inversion, or [0] of one step with `oneStep`.
   * @example const net = AggregationNetwork.forModel(sd, { projectionDim: 384 });
   */
  static forModel(
    model: { unet: { config: UNetConfig } } | UNetConfig,
    o: {
      oneStep?: boolean;
      /** DDIM steps of the extraction (default 50, or 1 with oneStep). */
      steps?: number;
      saveTimesteps?: readonly number[];
      projectionDim?: number;
      seed?: number;
      layers?: readonly number[];
      /** Maps mixed beside the diffusion features (ours+dinov2), each with its own bottleneck. */
      extraMaps?: readonly ExtraMap[];
    } & SessionOptions = {},
  ): AggregationNetwork {
    const cfg = 'unet' in model ? model.unet.config : model;
    const dims = tapChannels(cfg);
    const layers = o.layers ?? dims.map((_, i) => i + 1);
    for (const l of layers)
      if (!Number.isInteger(l) || l < 1 || l > dims.length)
        throw new ConfigError(
          `forModel: layers must be in 1..${dims.length}, got ${JSON.stringify(o.layers)}`,
        );
    const saveTimesteps = [...(o.saveTimesteps ?? (o.oneStep ? [0] : PAPER_SAVE_TIMESTEPS))];
    const projectionDim = o.projectionDim ?? DEFAULT_PROJECTION_DIM;
    checkPositiveInt('projectionDim', projectionDim);
    if (projectionDim % 128)
      throw new ConfigError(
        `forModel: projectionDim must be a multiple of 128 (GroupNorm(32) on projectionDim / 4), got ${projectionDim}`,
      );
    const config: AggregationConfig = {
      featureDims: layers.map((l) => dims[l - 1]),
      saveTimesteps,
      projectionDim,
      numNormGroups: 32,
      steps: o.steps ?? (o.oneStep ? 1 : 50),
      ...(o.extraMaps?.length ? { extraMaps: o.extraMaps.map((e) => ({ name: e.name, dim: e.dim })) } : {}),
    };
    for (const e of config.extraMaps ?? [])
      if (typeof e.name !== 'string' || !e.name || !Number.isInteger(e.dim) || e.dim < 1)
        throw new ConfigError(
          `forModel: extraMaps entries need a name and a positive integer dim, got ${JSON.stringify(e)}`,
        );
    checkPositiveInt('steps', config.steps);
    for (const t of saveTimesteps)
      if (!Number.isInteger(t) || t < 0 || t >= config.steps!)
        throw new ConfigError(
          `forModel: save timesteps must be integers in 0..${config.steps! - 1} for ${config.steps} steps, got ${JSON.stringify(saveTimesteps)}`,
        );
    const {
      seed,
      oneStep: _o,
      steps: _s,
      saveTimesteps: _t,
      projectionDim: _p,
      layers: _l,
      extraMaps: _e,
      ...session
    } = o;
    return AggregationNetwork.create(config, seed ?? 0, session);
  }

  /** A freshly initialised network for training. */
  static create(config: AggregationConfig, seed = 0, options: SessionOptions = {}): AggregationNetwork {
    return new AggregationNetwork(config, initParameters(config, seed), options);
  }

  /** The device its graphs run on (training's too). */
  get device(): Device {
    return this.sessionOptions.device ?? 'cpu';
  }

  private async getSession(): Promise<Session> {
    const { twoPassNorm } = deviceKernels(this.device);
    this.session ??= await Session.create(
      await buildAggregationGraph(this.config, { twoPassNorm }).serialize(),
      {
        memoryArena: false,
        ...this.sessionOptions,
      },
    );
    return this.session;
  }

  /** Descriptors [B, P, R, R] from stacked features [B, S*sum(C), R, R]. @throws ShapeError */
  forward(features: Tensor): Promise<Tensor> {
    return this.run(features, true);
  }

  private async run(features: Tensor, checkInputs: boolean): Promise<Tensor> {
    features.expectShape('aggregation features', [-1, inputChannels(this.config), -1, -1]);
    const feeds: Record<string, Tensor> = { features, ...Object.fromEntries(this.params) };
    return (await (await this.getSession()).run(feeds, undefined, { checkInputs })).descriptors;
  }

  /**
   * Diffusion hyperfeatures of feature stacks at `resolution` (default 64): [N, P, R, R]. A
   * network with extra maps (ours+dinov2) takes them per stack, in its config's order, any size.
   * @throws ShapeError for features that do not fit (naming what differs)
   */
  async aggregate(
    stacks: readonly FeatureStack[],
    resolution = 64,
    extras?: readonly (readonly Tensor[])[],
  ): Promise<Tensor> {
    if (!stacks.length) throw new ShapeError('aggregate: expected at least one feature stack');
    checkExtrasFit(this.config, stacks.length, extras);
    for (const [k, s] of stacks.entries()) {
      checkStackFits(this.config, s);
      s.saveTimesteps.forEach((t, i) =>
        s.layers.forEach((l, j) => assertFinite(s.maps[i][j].data, `feature stack ${k}: map t${t}_l${l}`)),
      );
      extras?.[k].forEach((m, e) =>
        assertFinite(m.data, `feature stack ${k}: extra map ${extrasOf(this.config)[e].name}`),
      );
    }
    const sized = (m: Tensor) => resizedToSquare(m, resolution);
    // the maps were just checked (naming the bad one); their resized concatenation needs no second scan
    return this.run(
      concat(
        stacks.map((s, k) => {
          const sd = s.concat(resolution);
          return extras?.length ? concat([sd, ...extras[k].map(sized)], 1) : sd;
        }),
        0,
      ),
      false,
    );
  }

  /** Every mixing weight, softmaxed jointly: the diffusion maps' (timestep-major), then the extras'. */
  private jointWeights(): number[] {
    const m = [
      ...this.params.get('mixing_weights')!.data,
      ...(this.params.get('extra_mixing_weights')?.data ?? []),
    ];
    const max = Math.max(...m);
    const e = m.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  }

  /** Softmaxed mixing weights with their (save timestep, layer), timestep-major (the diffusion maps'). */
  mixingWeights(): MixingWeight[] {
    const L = this.config.featureDims.length;
    const n = L * this.config.saveTimesteps.length;
    return this.jointWeights()
      .slice(0, n)
      .map((weight, k) => ({
        saveTimestep: this.config.saveTimesteps[Math.floor(k / L)],
        layer: (k % L) + 1,
        weight,
      }));
  }

  /** The extra maps' mixing weights (their share of the joint softmax), by name. */
  extraMixingWeights(): { name: string; weight: number }[] {
    const n = this.config.featureDims.length * this.config.saveTimesteps.length;
    return extrasOf(this.config).map((e, k) => ({ name: e.name, weight: this.jointWeights()[n + k] }));
  }

  /** The k largest (timestep, layer) pairs: a pruned extraction plan. */
  topMixingWeights(k: number): MixingWeight[] {
    return [...this.mixingWeights()].sort((a, b) => b.weight - a.weight).slice(0, k);
  }

  /**
   * A copy restricted to the k largest mixing weights (the others get zero weight, the
   * softmax renormalises over the kept ones): the pruned network of the paper's ablation.
   */
  pruned(k: number): AggregationNetwork {
    if (extrasOf(this.config).length)
      throw new ConfigError(
        `pruned: this network also mixes ${extrasOf(this.config)
          .map((e) => e.name)
          .join(', ')}; pruning keeps diffusion maps only, so it is defined for diffusion-only networks`,
      );
    const keep = new Set(
      this.topMixingWeights(k).map(
        (w) =>
          this.config.saveTimesteps.indexOf(w.saveTimestep) * this.config.featureDims.length + w.layer - 1,
      ),
    );
    const logits = this.params.get('mixing_weights')!.map((v, i) => (keep.has(i) ? v : -1e30));
    return new AggregationNetwork(
      this.config,
      new Map([...this.params, ['mixing_weights', logits]]),
      this.sessionOptions,
    );
  }

  /** Save parameters as safetensors with the same key names and the config in metadata. */
  /** The config under the original code's keys (num_timesteps only when known). */
  private originalConfig(): Record<string, unknown> {
    const steps = networkSteps(this.config);
    return {
      dims: this.config.featureDims,
      save_timestep: this.config.saveTimesteps,
      projection_dim: this.config.projectionDim,
      ...(steps ? { num_timesteps: steps } : {}),
      ...(extrasOf(this.config).length ? { extra_maps: extrasOf(this.config) } : {}),
    };
  }

  async save(path: string): Promise<void> {
    await writeSafetensors(path, Object.fromEntries(this.params), {
      config: JSON.stringify(this.originalConfig()),
    });
  }

  /**
   * The authors' release layout (`torch.save({"step", "config", "aggregation_network",
   * "optimizer_state_dict"})`), readable by their code and by `AggregationNetwork.load`.
   * With `optimizer`, its AdamW state in torch's format (param indices in state-dict order).
   */
  async saveRelease(
    path: string,
    o: {
      step?: number;
      optimizer?: {
        m: Map<string, Tensor>;
        v: Map<string, Tensor>;
        step: number;
        lr: number;
        betas: [number, number];
        eps: number;
        weightDecay: number;
      };
    } = {},
  ): Promise<void> {
    const names = [...this.params.keys()];
    const opt = o.optimizer;
    const optimizerState = opt
      ? {
          state: new Map(
            names.map((n, i) => [
              i,
              {
                step: torchTensor(Tensor.from([opt.step], [])),
                exp_avg: torchTensor(opt.m.get(n)!),
                exp_avg_sq: torchTensor(opt.v.get(n)!),
              },
            ]),
          ),
          param_groups: [
            {
              lr: opt.lr,
              betas: opt.betas,
              eps: opt.eps,
              weight_decay: opt.weightDecay,
              amsgrad: false,
              maximize: false,
              foreach: null,
              capturable: false,
              differentiable: false,
              fused: null,
              params: names.map((_, i) => i),
            },
          ],
        }
      : null;
    await torchSave(path, {
      step: o.step ?? opt?.step ?? 0,
      config: this.originalConfig(),
      aggregation_network: orderedDict(names.map((n) => [n, torchTensor(this.params.get(n)!)])),
      optimizer_state_dict: optimizerState,
    });
  }

  async dispose(): Promise<void> {
    await this.session?.dispose();
    this.session = undefined;
  }
}
