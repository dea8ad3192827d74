/**
 * The peer reference: onnxruntime-node running PyTorch's own ONNX export of the same UNet
 * (../shared/perf-anchor/ort_unet_export.py writes it), through the SDK's Session so threads and
 * memory options are the same as the project's UNet. Prints one JSON line.
 * usage: tsx bench/export-case.ts <unet.onnx> <latentSize> <calls>
 */
import { Session } from '../sdk/model/runtime.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';
import { printCase, timeCalls, timedLoad } from './calls.ts';

const [file, sizeArg, callsArg] = process.argv.slice(2);
const size = Number(sizeArg);
const calls = Number(callsArg);
const { value: session, loadSeconds, loadPeakRssMiB } = await timedLoad(() => Session.create(file));
const rng = new Rng(0);
// the anchor script's input names: sample [1, 4, s, s], timestep [1], cond [1, 77, 768]
const feeds = {
  sample: new Tensor(rng.normalArray(4 * size * size), [1, 4, size, size]),
  timestep: Tensor.from([500], [1]),
  cond: new Tensor(rng.normalArray(77 * 768), [1, 77, 768]),
};
const timing = await timeCalls(() => session.run(feeds), calls);
await session.dispose();
printCase({ loadSeconds, loadPeakRssMiB, ...timing });
