/**
 * The generalized DDIM loop of the original code, in both directions, capturing decoder
 * taps at the planned steps (DESIGN.md semantics 2-3, 10):
 * - inversion: t runs -1, 0, 20, ..., 960 -> t_next 0, 20, ..., 980; the UNet IS called at
 *   t = -1 first; step i is save timestep steps-1-i.
 * - generation: t runs 980, ..., 0 -> t_next 960, ..., 0, -1; step i is save timestep i;
 *   with guidance eps_u + s (eps_c - eps_u), and the taps of the conditional half.
 */
import { ConfigError, ShapeError } from '../core/errors.ts';
import { Tensor, concat } from '../core/tensor.ts';
import { DdimScheduler } from './scheduler.ts';
import type { CapturePlan } from './plan.ts';
import { runDeviceLoop } from './device-loop.ts';
import { UNet } from '../model/unet/index.ts';

/** What the loop needs of a UNet (the real one, or a dummy in tests). */
export interface NoiseModel {
  run(input: {
    sample: Tensor;
    timestep: number;
    encoderHiddenStates: Tensor;
    tapLayers?: number[];
  }): Promise<{ noisePred: Tensor; taps: Tensor[] }>;
}

export const DIFFUSION_MODES = ['inversion', 'generation'] as const;
export type DiffusionMode = (typeof DIFFUSION_MODES)[number];

export interface DiffusionOptions {
  mode: DiffusionMode;
  steps: number;
  plan: CapturePlan;
  /** [B or 1, S, D] */
  cond: Tensor;
  /** Classifier-free guidance (generation): scale and the unconditional embedding. */
  guidance?: { scale: number; uncond: Tensor };
  scheduler?: DdimScheduler;
  onStep?: (done: number, total: number) => void;
  /**
   * On a GPU, whether x0 is read back after every step (default true: the whole trajectory);
   * false keeps the loop on the device and x0Preds holds the input latent and the last x0.
   */
  trajectory?: boolean;
  /** On a GPU, keep the latent and noise prediction on the device between steps (default true). */
  resident?: boolean;
}

export interface DiffusionResult {
  /** captures[s][l]: tap of plan.layers[l] at plan.saveTimesteps[s], [B, C, h, w]. */
  captures: Tensor[][];
  /** The input latent, then x0 after every step (what the original returns). */
  x0Preds: Tensor[];
  /** The last x_t. */
  finalLatent: Tensor;
}

/** The (t, t_next, save index) of each step, in run order. */
export function stepSchedule(
  mode: DiffusionMode,
  steps: number,
  scheduler: DdimScheduler,
): { t: number; tNext: number; save: number }[] {
  const asc = [...scheduler.setTimesteps(steps)].reverse(); // 0, 20, ..., 980
  const prev = [-1, ...asc.slice(0, -1)];
  if (mode === 'inversion') return asc.map((tNext, i) => ({ t: prev[i], tNext, save: steps - 1 - i }));
  return asc.map((_, i) => ({ t: asc[steps - 1 - i], tNext: prev[steps - 1 - i], save: i }));
}

/**
 * The diffusion timestep of the UNet call behind a save timestep, for labels: inversion with 50
 * steps gives 49 -> t = -1 (the first call, on the clean latent), 45 -> 60, ..., 0 -> 960.
 * @throws ConfigError when `save` is not a step of the schedule.
 */
export function unetTimestepOf(mode: DiffusionMode, steps: number, save: number): number {
  const step = stepSchedule(mode, steps, new DdimScheduler()).find((s) => s.save === save);
  if (!step)
    throw new ConfigError(`save timestep ${save} is not a step of a ${steps}-step ${mode} (0..${steps - 1})`);
  return step.t;
}

function expandBatch(x: Tensor, batch: number, what: string): Tensor {
  if (x.shape[0] === batch) return x;
  if (x.shape[0] !== 1)
    throw new ShapeError(`${what}: batch ${x.shape[0]} does not match the latents' ${batch}`);
  return concat(Array(batch).fill(x), 0);
}

export async function runDiffusion(
  model: NoiseModel,
  latent: Tensor,
  o: DiffusionOptions,
): Promise<DiffusionResult> {
  latent.expectShape('latent', [-1, -1, -1, -1]);
  const batch = latent.shape[0];
  const scheduler = o.scheduler ?? new DdimScheduler();
  const cond = expandBatch(o.cond, batch, 'cond');
  const guided = o.guidance !== undefined && o.mode === 'generation';
  const context = guided ? concat([expandBatch(o.guidance!.uncond, batch, 'uncond'), cond], 0) : cond;
  const schedule = stepSchedule(o.mode, o.steps, scheduler);
  // on a GPU the unguided loop keeps its state on the device (guidance mixes on the host)
  if (model instanceof UNet && model.device !== 'cpu' && !guided)
    return runDeviceLoop(model, latent, {
      steps: schedule,
      plan: o.plan,
      cond,
      scheduler,
      trajectory: o.trajectory !== false,
      resident: o.resident,
      onStep: o.onStep,
    });
  const saveIndex = new Map(o.plan.saveTimesteps.map((s, i) => [s, i]));
  const captures: Tensor[][] = o.plan.saveTimesteps.map(() => []);
  const x0Preds = [latent];
  let x = latent;
  for (const [i, { t, tNext, save }] of schedule.entries()) {
    const slot = saveIndex.get(save);
    const sample = guided ? concat([x, x], 0) : x;
    const out = await model.run({
      sample,
      timestep: t,
      encoderHiddenStates: context,
      tapLayers: slot === undefined ? [] : o.plan.layers,
    });
    let eps = out.noisePred;
    if (guided) {
      const s = o.guidance!.scale;
      const half = eps.size / 2;
      eps = new Tensor(
        eps.data.slice(half).map((c, k) => eps.data[k] + s * (c - eps.data[k])),
        latent.shape,
      );
    }
    if (slot !== undefined)
      captures[slot] = out.taps.map((tap) => (guided ? tap.sliceFirst(batch, 2 * batch) : tap));
    const { prevSample, predOriginalSample } = scheduler.step(eps.data, t, tNext, x.data);
    x0Preds.push(new Tensor(predOriginalSample, latent.shape));
    x = new Tensor(prevSample, latent.shape);
    o.onStep?.(i + 1, schedule.length);
  }
  return { captures, x0Preds, finalLatent: x };
}
