/**
 * One AdamW training step at a time on a batch of pairs, layer by layer (./graph.ts): holds the
 * optimizer state (m, v, step) beside the network's parameters, converts keypoints to grid
 * indices as the original code does, averages the loss over the batch as the original, and
 * refuses to apply a non-finite step. Only one layer's inputs and activations are in memory at
 * a time, so the paper's setting fits a small machine.
 */
import { ConfigError, ShapeError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { Tensor } from '../../core/tensor.ts';
import { assertFinite, roundHalfEven } from '../../core/validate.ts';
import { Session } from '../../model/runtime.ts';
import type { AggregationNetwork } from '../network.ts';
import { resizedToSquare } from '../../core/tensor.ts';
import {
  checkExtrasFit,
  checkStackFits,
  extraKey,
  extrasOf,
  layerKey,
  type AggregationConfig,
} from '../config.ts';
import type { FeatureStack } from '../../diffusion/feature-stack.ts';
import {
  buildLayerBackwardGraph,
  buildLayerForwardGraph,
  buildLossGraph,
  buildUpdateGraph,
  layerParamShapes,
} from './graph.ts';
import { adamwScalarFeeds } from './adamw.ts';

export interface AdamWOptions {
  lr?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export const ADAMW_DEFAULTS = { lr: 1e-3, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const;

export { roundHalfEven };

/**
 * (y, x) points on an H x W grid -> flat indices H*y + x after clipping and rounding, like
 * the original `points_to_idxs` (which multiplies by the height: square grids in practice).
 */
export function pointsToIndices(
  points: readonly (readonly [number, number])[],
  height: number,
  width: number,
): number[] {
  return points.map(([y, x]) => {
    if (!Number.isFinite(y) || !Number.isFinite(x))
      throw new ShapeError(`keypoint (${y}, ${x}) is not finite`);
    const yy = roundHalfEven(Math.min(Math.max(y, 0), height - 1));
    const xx = roundHalfEven(Math.min(Math.max(x, 0), width - 1));
    return height * yy + xx;
  });
}

/**
 * A pair's features: the two images' stacked maps [2, S*sum(C), R, R] (as `AggregationNetwork
 * .forward` takes them), or the two FeatureStacks themselves (maps at any size, resized to the
 * training resolution one layer at a time: the memory-lean form).
 */
export type PairFeatures = Tensor | readonly [FeatureStack, FeatureStack];

export interface TrainingExample {
  features: PairFeatures;
  /** A network with extra maps (ours+dinov2): each image's maps in its config's order, any size. */
  extras?: readonly [readonly Tensor[], readonly Tensor[]];
  /** (y, x) on the R x R output grid of image 0, and the matching points of image 1. */
  source: [number, number][];
  target: [number, number][];
}

export interface StepResult {
  /** Mean of the pairs' losses. */
  loss: number;
  grads: Map<string, Tensor>;
  /** False when the loss or a gradient was not finite: the parameters were left unchanged. */
  applied: boolean;
}

export interface TrainerOptions extends AdamWOptions {
  /** Output resolution R for FeatureStack inputs (default 64, the paper's). */
  resolution?: number;
}

type Feeds = Record<string, Tensor | { int64: BigInt64Array; shape: number[] }>;

export class Trainer {
  readonly network: AggregationNetwork;
  readonly options: Required<AdamWOptions>;
  readonly resolution: number;
  step = 0;
  m = new Map<string, Tensor>();
  v = new Map<string, Tensor>();
  private sessions = new Map<string, Promise<Session>>();

  constructor(network: AggregationNetwork, options: TrainerOptions = {}) {
    this.network = network;
    const d = ADAMW_DEFAULTS;
    this.options = {
      lr: options.lr ?? d.lr,
      weightDecay: options.weightDecay ?? d.weightDecay,
      beta1: options.beta1 ?? d.beta1,
      beta2: options.beta2 ?? d.beta2,
      eps: options.eps ?? d.eps,
    };
    for (const [k, val] of Object.entries(this.options)) {
      if (!(Number.isFinite(val) && val >= 0))
        throw new ConfigError(messages.invalidOption(k, 'a finite non-negative number', val));
    }
    this.resolution = options.resolution ?? 64;
    if (!Number.isInteger(this.resolution) || this.resolution < 1)
      throw new ConfigError(messages.invalidOption('resolution', 'a positive integer', this.resolution));
    for (const [name, p] of network.params) {
      this.m.set(name, Tensor.zeros(p.shape));
      this.v.set(name, Tensor.zeros(p.shape));
    }
  }

  /** WebGPU's Conv needs the weight gradient's batch channels padded (ops.ts padChannelsTo4). */
  private get graphOptions(): { padChannels: boolean } {
    return { padChannels: this.network.device === 'webgpu' };
  }

  private session(key: string, build: () => { serialize(): Promise<Uint8Array> }): Promise<Session> {
    let s = this.sessions.get(key);
    if (!s) {
      // per-layer graphs are small enough for onnxruntime's full optimisation (NCHWc convolutions)
      s = build()
        .serialize()
        .then((b) => Session.create(b, { memoryArena: false, device: this.network.device }));
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * Loss and gradients of one pair, then one AdamW update (unless non-finite).
   * @param features the pair's features (see PairFeatures)
   * @param sourcePoints (y, x) in the R x R grid of image 0; targetPoints in image 1
   */
  trainStep(
    features: PairFeatures,
    sourcePoints: [number, number][],
    targetPoints: [number, number][],
  ): Promise<StepResult> {
    return this.trainBatch([{ features, source: sourcePoints, target: targetPoints }]);
  }

  /** One AdamW step on a batch of pairs: the loss is the mean of the pairs' losses, as the original. */
  async trainBatch(batch: readonly TrainingExample[]): Promise<StepResult> {
    if (!batch.length) throw new ShapeError('training batch: expected at least one pair, got none');
    const c = this.network.config;
    const R = this.checkBatch(batch, c);
    const B = batch.length;
    const L = c.featureDims.length;
    const S = c.saveTimesteps.length;
    const P = c.projectionDim;
    const params = this.network.params;
    const extras = extrasOf(c);
    const E = extras.length;
    // one softmax over the diffusion maps' and the extra maps' logits
    const mixing = [
      ...params.get('mixing_weights')!.data,
      ...(params.get('extra_mixing_weights')?.data ?? []),
    ];
    const max = Math.max(...mixing);
    const e = Array.from(mixing, (x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const w = Float32Array.from(e, (x) => x / sum);
    const layerW = (l: number) =>
      new Tensor(
        Float32Array.from({ length: S }, (_, s) => w[s * L + l]),
        [S],
      );
    const layerFeeds = (l: number): Feeds => {
      const feeds: Feeds = { x: this.layerInput(batch, l, R), w: layerW(l) };
      for (const name of layerParamShapes(c, c.featureDims[l]).keys())
        feeds[name] = params.get(layerKey(l, name))!;
      return feeds;
    };
    // an extra map is a layer of one "timestep" with its own weight
    const one = { ...c, saveTimesteps: [0] };
    const extraFeeds = (k: number): Feeds => {
      const feeds: Feeds = {
        x: this.extraInput(batch, k, R),
        w: new Tensor(Float32Array.from([w[L * S + k]]), [1]),
      };
      for (const name of layerParamShapes(c, extras[k].dim).keys())
        feeds[name] = params.get(extraKey(k, name))!;
      return feeds;
    };
    // pass 1: D = sum over layers of each layer's mixed bottleneck outputs
    const D = new Float32Array(2 * B * P * R * R);
    for (let l = 0; l < L; l++) {
      const dim = c.featureDims[l];
      const fwd = await this.session(`fwd${dim}`, () => buildLayerForwardGraph(c, dim));
      // the data was checked in checkBatch (naming the map); a non-finite result is a stopped step
      const out = await fwd.run(layerFeeds(l), undefined, { checkOutputs: false, checkInputs: false });
      const contribution = out.contribution.data;
      for (let i = 0; i < D.length; i++) D[i] += contribution[i];
    }
    for (let k = 0; k < E; k++) {
      const dim = extras[k].dim;
      const fwd = await this.session(`fwd${dim}x1`, () => buildLayerForwardGraph(one, dim));
      const out = await fwd.run(extraFeeds(k), undefined, { checkOutputs: false, checkInputs: false });
      const contribution = out.contribution.data;
      for (let i = 0; i < D.length; i++) D[i] += contribution[i];
    }
    // the loss of each pair, and dL/dD with the batch mean folded in
    const lossGraph = await this.session('loss', () => buildLossGraph(c));
    const dD = new Float32Array(D.length);
    const per = 2 * P * R * R;
    let loss = 0;
    for (const [b, ex] of batch.entries()) {
      const [src, tgt] = [pointsToIndices(ex.source, R, R), pointsToIndices(ex.target, R, R)];
      const idx = (ix: number[]) => ({ int64: BigInt64Array.from(ix.map(BigInt)), shape: [ix.length] });
      const onehot = (ix: number[]) => {
        const rows = new Float32Array(ix.length * R * R);
        ix.forEach((p, k) => (rows[k * R * R + p] = 1));
        return new Tensor(rows, [ix.length, R * R]);
      };
      const r = await lossGraph.run(
        {
          D: new Tensor(D.subarray(b * per, (b + 1) * per), [2, P, R, R]),
          source_idx: idx(src),
          target_idx: idx(tgt),
          source_onehot: onehot(src),
          target_onehot: onehot(tgt),
        },
        undefined,
        { checkOutputs: false, checkInputs: false }, // a diverged D is a non-finite loss, handled below
      );
      loss += r.loss.data[0] / B;
      const g = r.dD.data;
      for (let i = 0; i < per; i++) dD[b * per + i] = g[i] / B;
    }
    const grads = new Map<string, Tensor>();
    const gwMix = new Float32Array(S * L + E);
    let finite = Number.isFinite(loss);
    // pass 2: each layer's gradients, its forward recomputed
    if (finite) {
      const dDt = new Tensor(dD, [2 * B, P, R, R]);
      for (let l = 0; l < L; l++) {
        const dim = c.featureDims[l];
        const bwd = await this.session(`bwd${dim}`, () => buildLayerBackwardGraph(c, dim, this.graphOptions));
        const out = await bwd.run({ ...layerFeeds(l), dD: dDt }, undefined, {
          checkOutputs: false,
          checkInputs: false,
        });
        for (const name of layerParamShapes(c, dim).keys()) grads.set(layerKey(l, name), out[`grad.${name}`]);
        out.gw.data.forEach((v, s) => (gwMix[s * L + l] = v));
      }
      for (let k = 0; k < E; k++) {
        const dim = extras[k].dim;
        const bwd = await this.session(`bwd${dim}x1`, () =>
          buildLayerBackwardGraph(one, dim, this.graphOptions),
        );
        const out = await bwd.run({ ...extraFeeds(k), dD: dDt }, undefined, {
          checkOutputs: false,
          checkInputs: false,
        });
        for (const name of layerParamShapes(c, dim).keys()) grads.set(extraKey(k, name), out[`grad.${name}`]);
        gwMix[L * S + k] = out.gw.data[0];
      }
    }
    // AdamW on everything (the mixing logits' gradient goes through the softmax in the graph)
    const update = await this.session('update', () => buildUpdateGraph(c));
    const t = this.step + 1;
    const feeds: Feeds = { gw_mix: new Tensor(gwMix, [S * L + E]), ...adamwScalarFeeds(this.options, t) };
    const mixingNames = ['mixing_weights', 'extra_mixing_weights'];
    for (const [name, p] of params) {
      feeds[name] = p;
      feeds[`m.${name}`] = this.m.get(name)!;
      feeds[`v.${name}`] = this.v.get(name)!;
      if (!mixingNames.includes(name)) feeds[`grad.${name}`] = grads.get(name) ?? Tensor.zeros(p.shape);
    }
    if (finite) {
      const out = await this.update(update, feeds);
      for (const name of mixingNames) if (params.has(name)) grads.set(name, out[`grad.${name}`]);
      finite = [...grads.values()].every((gr) => gr.data.every(Number.isFinite));
      if (finite) {
        for (const name of params.keys()) {
          params.set(name, out[`new.${name}`]);
          this.m.set(name, out[`new_m.${name}`]);
          this.v.set(name, out[`new_v.${name}`]);
        }
        this.step = t;
      }
    }
    return { loss, grads, applied: finite };
  }

  private update(s: Session, feeds: Feeds) {
    return s.run(feeds, undefined, { checkOutputs: false, checkInputs: false });
  }

  /** Every pair fits the network; returns the training resolution. */
  private checkBatch(batch: readonly TrainingExample[], c: AggregationConfig): number {
    let R: number | undefined;
    for (const [i, ex] of batch.entries()) {
      if (!ex.source.length || ex.source.length !== ex.target.length)
        throw new ShapeError(
          `training keypoints of pair ${i}: expected equal, non-empty source and target lists, got ${ex.source.length} and ${ex.target.length}`,
        );
      let r: number;
      if (ex.features instanceof Tensor) {
        const total = c.saveTimesteps.length * c.featureDims.reduce((a, b) => a + b, 0);
        ex.features.expectShape('training features', [2, total, -1, -1]);
        assertFinite(ex.features.data, `training pair ${i}: features`);
        if (ex.features.shape[2] !== ex.features.shape[3])
          throw new ShapeError(
            `training features: expected a square grid, got ${ex.features.shape[2]}x${ex.features.shape[3]}`,
          );
        r = ex.features.shape[2];
      } else {
        if (ex.features.length !== 2)
          throw new ShapeError(`pair ${i}: expected two feature stacks, got ${ex.features.length}`);
        for (const [img, s] of ex.features.entries()) {
          checkStackFits(c, s);
          s.saveTimesteps.forEach((t, a) =>
            s.layers.forEach((l, b) =>
              assertFinite(s.maps[a][b].data, `training pair ${i}, image ${img}: map t${t}_l${l}`),
            ),
          );
        }
        r = this.resolution;
      }
      checkExtrasFit(c, 2, ex.extras);
      ex.extras?.forEach((maps, img) =>
        maps.forEach((m, k) => assertFinite(m.data, `training pair ${i}, image ${img}: extra map ${k}`)),
      );
      if (R !== undefined && r !== R)
        throw new ShapeError(`pair ${i}: features at ${r}x${r}, the batch is at ${R}x${R}`);
      R = r;
    }
    return R!;
  }

  /** x_l for the batch: [S * 2B, C_l, R, R], timestep-major, then pair, then image. */
  private layerInput(batch: readonly TrainingExample[], l: number, R: number): Tensor {
    const c = this.network.config;
    const S = c.saveTimesteps.length;
    const dim = c.featureDims[l];
    const B = batch.length;
    const plane = dim * R * R;
    const out = new Float32Array(S * 2 * B * plane);
    const sumC = c.featureDims.reduce((a, b) => a + b, 0);
    const offset = c.featureDims.slice(0, l).reduce((a, b) => a + b, 0);
    for (const [b, ex] of batch.entries()) {
      for (let s = 0; s < S; s++) {
        for (let img = 0; img < 2; img++) {
          const row = (s * 2 * B + 2 * b + img) * plane;
          if (ex.features instanceof Tensor) {
            const start = (img * S * sumC + s * sumC + offset) * R * R;
            out.set(ex.features.data.subarray(start, start + plane), row);
          } else {
            const m = ex.features[img].maps[s][l];
            const sized = resizedToSquare(m, R);
            out.set(sized.data, row);
          }
        }
      }
    }
    return new Tensor(out, [S * 2 * B, dim, R, R]);
  }

  /** The extra map k for the batch: [2B, dim, R, R], pair then image. */
  private extraInput(batch: readonly TrainingExample[], k: number, R: number): Tensor {
    const dim = extrasOf(this.network.config)[k].dim;
    const plane = dim * R * R;
    const out = new Float32Array(2 * batch.length * plane);
    for (const [b, ex] of batch.entries())
      for (let img = 0; img < 2; img++) {
        const m = ex.extras![img][k];
        const sized = resizedToSquare(m, R);
        out.set(sized.data, (2 * b + img) * plane);
      }
    return new Tensor(out, [2 * batch.length, dim, R, R]);
  }

  async dispose(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).dispose();
    this.sessions.clear();
  }
}
