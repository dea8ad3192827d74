/**
 * DDIM (Song et al., ICLR 2021) as the original hyperfeatures code builds it: its own
 * scheduler with diffusers' defaults (steps_offset 0, so 50 steps are 980, 960, ..., 0),
 * whatever the checkpoint's scheduler_config says. `step()` is pure and deterministic
 * (eta 0).
 */
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';

export const BETA_SCHEDULES = ['scaled_linear', 'linear'] as const;
export type BetaSchedule = (typeof BETA_SCHEDULES)[number];

export interface DdimConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  stepsOffset: number;
}

/** The scheduler of the paper's code (DESIGN.md semantics 1). */
export const HYPERFEATURES_DDIM: Readonly<DdimConfig> = Object.freeze({
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: 'scaled_linear',
  stepsOffset: 0,
});

export interface StepResult {
  /** x at the next timestep. */
  prevSample: Float32Array;
  /** The model's estimate of the clean sample x0. */
  predOriginalSample: Float32Array;
}

export class DdimScheduler {
  readonly config: DdimConfig;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** Descending, e.g. [980, 960, ..., 0] after setTimesteps(50). */
  timesteps: number[] = [];

  constructor(config: DdimConfig = HYPERFEATURES_DDIM) {
    this.config = { ...config };
    const n = config.numTrainTimesteps;
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(messages.invalidOption('numTrainTimesteps', 'a positive integer', n));
    if (!BETA_SCHEDULES.includes(config.betaSchedule)) {
      throw new ConfigError(
        messages.invalidOption('betaSchedule', BETA_SCHEDULES.join(' | '), config.betaSchedule),
      );
    }
    // diffusers computes betas in float32; round each to float32 the same way
    const f32 = (v: number) => Math.fround(v);
    this.betas = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const frac = n === 1 ? 0 : i / (n - 1);
      if (config.betaSchedule === 'scaled_linear') {
        const s = f32(
          f32(Math.sqrt(config.betaStart)) +
            frac * (f32(Math.sqrt(config.betaEnd)) - f32(Math.sqrt(config.betaStart))),
        );
        this.betas[i] = f32(s * s);
      } else {
        this.betas[i] = f32(config.betaStart + frac * (config.betaEnd - config.betaStart));
      }
    }
    this.alphasCumprod = new Float64Array(n);
    let prod = 1;
    for (let i = 0; i < n; i++) this.alphasCumprod[i] = prod *= 1 - this.betas[i];
  }

  /** diffusers' "leading" spacing: (0..n-1) * floor(T / n), descending, + steps_offset. */
  setTimesteps(numSteps: number): number[] {
    const T = this.config.numTrainTimesteps;
    if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > T) {
      throw new ConfigError(messages.invalidOption('steps', `an integer in 1..${T}`, numSteps));
    }
    const ratio = Math.floor(T / numSteps);
    this.timesteps = Array.from(
      { length: numSteps },
      (_, i) => (numSteps - 1 - i) * ratio + this.config.stepsOffset,
    );
    return this.timesteps;
  }

  /** alpha_bar(t), with alpha_bar(-1) = 1 (the clean end of inversion and generation). */
  alpha(t: number): number {
    if (t === -1) return 1;
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new ConfigError(
        messages.invalidOption('timestep', `-1 or an integer in 0..${this.alphasCumprod.length - 1}`, t),
      );
    }
    return this.alphasCumprod[t];
  }

  /**
   * One deterministic DDIM move from t to tNext (either direction): x0 = (x - sqrt(1-a) eps) / sqrt(a),
   * x' = sqrt(a') x0 + sqrt(1-a') eps (Song et al. eq. 12 with sigma = 0).
   */
  step(eps: Float32Array, t: number, tNext: number, sample: Float32Array): StepResult {
    const a = this.alpha(t);
    const aNext = this.alpha(tNext);
    const sa = Math.sqrt(a);
    const s1a = Math.sqrt(1 - a);
    const saN = Math.sqrt(aNext);
    const s1aN = Math.sqrt(1 - aNext);
    const x0 = new Float32Array(sample.length);
    const next = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      x0[i] = (sample[i] - s1a * eps[i]) / sa;
      next[i] = saN * x0[i] + s1aN * eps[i];
    }
    return { prevSample: next, predOriginalSample: x0 };
  }
}
