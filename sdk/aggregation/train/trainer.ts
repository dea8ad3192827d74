/**
 * One AdamW training step at a time on the onnxruntime training-step graph: holds the
 * optimizer state (m, v, step) beside the network's parameters, converts keypoints to grid
 * indices as the original code does, and refuses to apply a non-finite step.
 */
import { ConfigError, ShapeError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { Tensor } from '../../core/tensor.ts';
import { roundHalfEven } from '../../core/validate.ts';
import { Session } from '../../model/runtime.ts';
import type { AggregationNetwork } from '../network.ts';
import { buildTrainStepGraph } from './graph.ts';
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

export interface StepResult {
  loss: number;
  grads: Map<string, Tensor>;
  /** False when the loss or a gradient was not finite: the parameters were left unchanged. */
  applied: boolean;
}

export class Trainer {
  readonly network: AggregationNetwork;
  readonly options: Required<AdamWOptions>;
  step = 0;
  private m = new Map<string, Tensor>();
  private v = new Map<string, Tensor>();
  private session?: Session;

  constructor(network: AggregationNetwork, options: AdamWOptions = {}) {
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
    for (const [name, p] of network.params) {
      this.m.set(name, Tensor.zeros(p.shape));
      this.v.set(name, Tensor.zeros(p.shape));
    }
  }

  /**
   * Loss and gradients of a pair, then one AdamW update (unless non-finite).
   * @param features [2, S*sum(C), R, R]: the two images' stacked features
   * @param sourcePoints (y, x) in the R x R grid of image 0; targetPoints in image 1
   */
  async trainStep(
    features: Tensor,
    sourcePoints: [number, number][],
    targetPoints: [number, number][],
  ): Promise<StepResult> {
    features.expectShape('training features', [2, -1, -1, -1]);
    if (!sourcePoints.length || sourcePoints.length !== targetPoints.length) {
      throw new ShapeError(
        `training keypoints: expected equal, non-empty source and target lists, got ${sourcePoints.length} and ${targetPoints.length}`,
      );
    }
    const [, , H, W] = features.shape;
    const idx = (pts: [number, number][]) => ({
      int64: BigInt64Array.from(pointsToIndices(pts, H, W).map(BigInt)),
      shape: [pts.length],
    });
    // 'basic': full optimisation of this ~10k-node graph takes minutes and gains little
    this.session ??= await Session.create(await buildTrainStepGraph(this.network.config).serialize(), {
      optimization: 'basic',
      memoryArena: false,
    });
    const o = this.options;
    const t = this.step + 1;
    const feeds: Record<string, Tensor | { int64: BigInt64Array; shape: number[] }> = {
      features,
      source_idx: idx(sourcePoints),
      target_idx: idx(targetPoints),
      ...adamwScalarFeeds(o, t),
    };
    for (const [name, p] of this.network.params) {
      feeds[name] = p;
      feeds[`m.${name}`] = this.m.get(name)!;
      feeds[`v.${name}`] = this.v.get(name)!;
    }
    // inputs are checked; a non-finite loss or gradient is this loop's to handle (stop, keep the last good step)
    const out = await this.session.run(feeds, undefined, { checkOutputs: false });
    const loss = out.loss.data[0];
    const grads = new Map([...this.network.params.keys()].map((n) => [n, out[`grad.${n}`]]));
    const finite = Number.isFinite(loss) && [...grads.values()].every((gr) => gr.data.every(Number.isFinite));
    if (finite) {
      for (const name of this.network.params.keys()) {
        this.network.params.set(name, out[`new.${name}`]);
        this.m.set(name, out[`new_m.${name}`]);
        this.v.set(name, out[`new_v.${name}`]);
      }
      this.step = t;
    }
    return { loss, grads, applied: finite };
  }

  async dispose(): Promise<void> {
    await this.session?.dispose();
  }
}
