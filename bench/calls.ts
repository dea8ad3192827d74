/**
 * Shared by the per-process bench cases: the UNet's input, a timed load, timing a first call and
 * `calls` warm ones, and the JSON line each case prints.
 */
import { performance } from 'node:perf_hooks';
import { Rng } from '../sdk/core/rng.ts';
import { defaultThreads } from '../sdk/model/runtime.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import type { UNetConfig } from '../sdk/model/unet/config.ts';
import type { UNetInput } from '../sdk/model/unet/index.ts';

/** A seeded [1, C, size, size] latent at t = 500 with a 77-token context (and Lotus' class label). */
export function benchInput(c: UNetConfig, size: number): UNetInput {
  const rng = new Rng(0);
  return {
    sample: new Tensor(rng.normalArray(c.inChannels * size * size), [1, c.inChannels, size, size]),
    timestep: 500,
    encoderHiddenStates: new Tensor(rng.normalArray(77 * c.crossAttentionDim), [1, 77, c.crossAttentionDim]),
    classLabels: c.classEmbedType ? Tensor.from([Math.sin(1), 0, Math.cos(1), 1], [1, 4]) : undefined,
  };
}

/** The upper middle value (the one reported as a median throughout the bench). */
export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

export async function timeCalls(
  run: () => Promise<unknown>,
  calls: number,
): Promise<{ firstCallMs: number; msPerCall: number; minMsPerCall: number }> {
  const times: number[] = [];
  for (let i = 0; i < calls + 1; i++) {
    const s = performance.now();
    await run();
    times.push(performance.now() - s);
  }
  const warm = times.slice(1);
  return { firstCallMs: times[0], msPerCall: median(warm), minMsPerCall: Math.min(...warm) };
}

const rssMiB = () => process.resourceUsage().maxRSS / 1024;

/** Load something, with the seconds it took and the peak RSS the process had reached by then. */
export async function timedLoad<T>(
  load: () => Promise<T>,
): Promise<{ value: T; loadSeconds: number; loadPeakRssMiB: number }> {
  const t0 = performance.now();
  const value = await load();
  return { value, loadSeconds: (performance.now() - t0) / 1000, loadPeakRssMiB: rssMiB() };
}

/** Print a case's one JSON line: the session threads, its fields, and the process's peak RSS. */
export function printCase(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ threads: defaultThreads(), ...fields, peakRssMiB: rssMiB() }));
}
