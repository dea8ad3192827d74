/**
 * One UNet benchmark case in its own process (so peak RSS is this case's): build + load
 * time and memory, then warm ms per call with taps. Prints one JSON line.
 * usage: tsx bench/unet-case.ts <modelDir> <latentSize> <calls> <cacheDir> [fused|exact]
 */
import { UNet } from '../sdk/model/unet/index.ts';
import { unetFlops } from '../sdk/model/unet/flops.ts';
import { benchInput, printCase, timeCalls, timedLoad } from './calls.ts';

const [dir, sizeArg, callsArg, cacheDir, attentionArg] = process.argv.slice(2);
const attention = (attentionArg ?? 'fused') as 'fused' | 'exact';
const size = Number(sizeArg);
const calls = Number(callsArg);
const {
  value: unet,
  loadSeconds,
  loadPeakRssMiB,
} = await timedLoad(() => UNet.load(dir, { cacheDir, attention }));
const c = unet.config;
const input = benchInput(c, size);
const timing = await timeCalls(() => unet.run(input), calls);
await unet.dispose();
printCase({
  attention,
  loadSeconds,
  loadPeakRssMiB,
  ...timing,
  gflopPerCall: unetFlops(c, size, size) / 1e9,
});
