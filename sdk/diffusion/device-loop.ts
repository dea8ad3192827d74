/**
 * The DDIM loop with its state on the GPU: the UNet's noise prediction and the latent pass from
 * call to call as device tensors (onnxruntime-node's GPU-buffer outputs fed back as inputs), and
 * only the taps of save steps come back to the host, with x0 when the trajectory is asked for
 * and the final latent. The DDIM move runs as a small graph on the same device, in float32 as
 * diffusers' scheduler does. `resident: false` runs the same kernels but copies the latent and
 * the noise prediction through the host every step: the features are bit-for-bit the same.
 */
import { GraphBuilder } from '../model/onnx/graph.ts';
import { DeviceTensor, type Device, type Session } from '../model/runtime.ts';
import { boundSession } from '../model/device-ops.ts';
import { Tensor } from '../core/tensor.ts';
import type { UNet } from '../model/unet/index.ts';
import type { DdimScheduler } from './scheduler.ts';
import type { CapturePlan } from './plan.ts';

/** x0 = (x - sqrt(1-a) eps) / sqrt(a); x' = sqrt(a') x0 + sqrt(1-a') eps; coefficients as float32. */
function buildStepGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const shape = ['batch', 'channels', 'height', 'width'];
  const x = g.input('sample', shape);
  const eps = g.input('eps', shape);
  const coef = g.input('coef', [4]);
  const c = (i: number) => g.op('Slice', [coef, g.constInt64([i]), g.constInt64([i + 1])]);
  const x0 = g.op('Div', [g.op('Sub', [x, g.op('Mul', [c(1), eps])]), c(0)]);
  const next = g.op('Add', [g.op('Mul', [c(2), x0]), g.op('Mul', [c(3), eps])]);
  // the device copy first: onnxruntime-node fetches outputs as a prefix (model/runtime.ts)
  g.output('next_device', next, shape);
  g.output('x0', x0, shape);
  g.output('next', next, shape);
  return g;
}

/** The step graph's fetch lists: each (device, shape, list) is its own session (boundSession). */
const ADVANCE = ['next_device'];
const FINISH = ['next_device', 'x0', 'next'];

function stepSession(device: Device, shape: readonly number[], outputs: readonly string[]): Promise<Session> {
  return boundSession(`ddim-step ${device} ${shape} ${outputs}`, device, buildStepGraph, ['next_device']);
}

export interface DeviceLoopOptions {
  steps: { t: number; tNext: number; save: number }[];
  plan: CapturePlan;
  cond: Tensor;
  scheduler: DdimScheduler;
  /** Read x0 back after every step (default false: only the final latent comes back). */
  trajectory?: boolean;
  /** false: copy the latent and noise prediction through the host every step (for checks). */
  resident?: boolean;
  onStep?: (done: number, total: number) => void;
}

export async function runDeviceLoop(
  unet: UNet,
  latent: Tensor,
  o: DeviceLoopOptions,
): Promise<{ captures: Tensor[][]; x0Preds: Tensor[]; finalLatent: Tensor }> {
  const saveIndex = new Map(o.plan.saveTimesteps.map((s, i) => [s, i]));
  const captures: Tensor[][] = o.plan.saveTimesteps.map(() => []);
  const x0Preds = [latent];
  let x: Tensor | DeviceTensor = latent;
  let finalLatent = latent;
  const resident = o.resident !== false;
  try {
    for (const [i, { t, tNext, save }] of o.steps.entries()) {
      const slot = saveIndex.get(save);
      const tapLayers = slot === undefined ? [] : o.plan.layers;
      const input = { sample: x, timestep: t, encoderHiddenStates: o.cond, tapLayers };
      const out = resident
        ? await unet.runResident(input)
        : await unet.run({ ...input, sample: x as Tensor });
      if (slot !== undefined) captures[slot] = out.taps;
      const eps = out.noisePred;
      const a = o.scheduler.alpha(t);
      const aNext = o.scheduler.alpha(tNext);
      const coef = Tensor.from([Math.sqrt(a), Math.sqrt(1 - a), Math.sqrt(aNext), Math.sqrt(1 - aNext)], [4]);
      const last = i === o.steps.length - 1;
      const outputs = resident && !last && !o.trajectory ? ADVANCE : FINISH;
      const step = await stepSession(unet.device, latent.shape, outputs);
      const r = await step.runResident({ sample: x, eps, coef }, outputs);
      if (x instanceof DeviceTensor) x.dispose();
      if (eps instanceof DeviceTensor) eps.dispose();
      if (r.x0) x0Preds.push(r.x0 as Tensor);
      if (last) finalLatent = r.next as Tensor;
      if (resident) x = r.next_device;
      else {
        (r.next_device as DeviceTensor).dispose();
        x = r.next as Tensor;
      }
      o.onStep?.(i + 1, o.steps.length);
    }
  } finally {
    if (x instanceof DeviceTensor) x.dispose();
  }
  return { captures, x0Preds, finalLatent };
}
