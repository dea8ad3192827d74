/**
 * One UNet benchmark case in its own process (so peak RSS is this case's): build + load
 * time and memory, then warm ms per call with taps. Prints one JSON line.
 * usage: tsx bench/unet-case.ts <modelDir> <latentSize> <calls> <cacheDir>
 */
import { performance } from 'node:perf_hooks';
import { UNet } from '../sdk/model/unet/index.ts';
import { defaultThreads } from '../sdk/model/runtime.ts';
import { unetFlops } from '../sdk/model/unet/flops.ts';
import { benchInput, timeCalls } from './calls.ts';

const [dir, sizeArg, callsArg, cacheDir] = process.argv.slice(2);
const size = Number(sizeArg);
const calls = Number(callsArg);
const rssMiB = () => process.resourceUsage().maxRSS / 1024;

const t0 = performance.now();
const unet = await UNet.load(dir, { cacheDir });
const loadSeconds = (performance.now() - t0) / 1000;
const loadPeakRssMiB = rssMiB();
const c = unet.config;
const input = benchInput(c, size);
const timing = await timeCalls(() => unet.run(input), calls);
await unet.dispose();
console.log(
  JSON.stringify({
    threads: defaultThreads(),
    loadSeconds,
    loadPeakRssMiB,
    ...timing,
    gflopPerCall: unetFlops(c, size, size) / 1e9,
    peakRssMiB: rssMiB(),
  }),
);
