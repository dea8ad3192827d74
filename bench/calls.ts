/** Shared by the per-process UNet cases: time a first call and `calls` warm ones. */
import { performance } from 'node:perf_hooks';

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
  const warm = times.slice(1).sort((a, b) => a - b);
  return { firstCallMs: times[0], msPerCall: warm[Math.floor(warm.length / 2)], minMsPerCall: warm[0] };
}
