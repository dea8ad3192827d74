/**
 * Ours and the export in one process, calls alternated (ours, export, ours, ...): each pair runs
 * under the same machine state, so "ours <= the export" is read call by call rather than from
 * medians of separate processes. Prints one JSON line.
 * usage: tsx bench/pair-case.ts <modelDir> <unet.onnx> <latentSize> <pairs> <cacheDir> [fused|exact]
 */
import { performance } from 'node:perf_hooks';
import { Session } from '../sdk/model/runtime.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { UNet } from '../sdk/model/unet/index.ts';
import { benchInput, median, printCase } from './calls.ts';

const [dir, exportFile, sizeArg, pairsArg, cacheDir, attentionArg] = process.argv.slice(2);
const size = Number(sizeArg);
const pairs = Number(pairsArg);
const attention = (attentionArg ?? 'fused') as 'fused' | 'exact';
const unet = await UNet.load(dir, { cacheDir, attention });
const peer = await Session.create(exportFile);
const input = benchInput(unet.config, size);
// the export's input names (../shared/perf-anchor): sample, timestep, cond
const feeds = { sample: input.sample, timestep: Tensor.from([500], [1]), cond: input.encoderHiddenStates };
const timed = async (run: () => Promise<unknown>) => {
  const t = performance.now();
  await run();
  return performance.now() - t;
};
await timed(() => peer.run(feeds)); // the export's first call (ours warmed up while loading)
await timed(() => unet.run(input));
const oursMs: number[] = [];
const exportMs: number[] = [];
for (let i = 0; i < pairs; i++) {
  oursMs.push(await timed(() => unet.run(input)));
  exportMs.push(await timed(() => peer.run(feeds)));
}
await Promise.all([unet.dispose(), peer.dispose()]);
const ratios = oursMs.map((m, i) => m / exportMs[i]);
printCase({
  attention,
  oursMs,
  exportMs,
  ratios,
  medianRatio: median(ratios),
  worstRatio: Math.max(...ratios),
  oursFasterInEveryPair: ratios.every((r) => r <= 1),
});
