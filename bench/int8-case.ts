/**
 * The opt-in int8 Linear layers against fp32 on one model: warm ms per call of each (loaded one
 * after the other, same input) and the effect on features: relative L2 error and cosine
 * similarity of noise_pred and every tap against fp32. Prints one JSON line.
 * usage: tsx bench/int8-case.ts <modelDir> <latentSize> <calls> <cacheDir>
 */
import { Tensor } from '../sdk/core/tensor.ts';
import { UNet, type UNetOutput } from '../sdk/model/unet/index.ts';
import { benchInput, timeCalls } from './calls.ts';

const [dir, sizeArg, callsArg, cacheDir] = process.argv.slice(2);
const size = Number(sizeArg);
const calls = Number(callsArg);

async function measure(linear: 'fp32' | 'int8') {
  const unet = await UNet.load(dir, { cacheDir, linear });
  const input = benchInput(unet.config, size);
  let out: UNetOutput | undefined;
  const timing = await timeCalls(async () => (out = await unet.run(input)), calls);
  await unet.dispose();
  return { timing, out: out! };
}

const relL2 = (a: Float32Array, ref: Float32Array) => {
  let n = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) [n, d] = [n + (a[i] - ref[i]) ** 2, d + ref[i] ** 2];
  return Math.sqrt(n / d);
};
const cosine = (a: Float32Array, b: Float32Array) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] ** 2, bb + b[i] ** 2];
  return ab / Math.sqrt(aa * bb);
};
const fp32 = await measure('fp32');
const int8 = await measure('int8');
const pairs: [Tensor, Tensor][] = [
  [int8.out.noisePred, fp32.out.noisePred],
  ...int8.out.taps.map((t, i) => [t, fp32.out.taps[i]] as [Tensor, Tensor]),
];
console.log(
  JSON.stringify({
    fp32: fp32.timing,
    int8: int8.timing,
    speedup: fp32.timing.msPerCall / int8.timing.msPerCall,
    noisePredRelL2: relL2(pairs[0][0].data, pairs[0][1].data),
    tapsRelL2: pairs.slice(1).map(([a, b]) => relL2(a.data, b.data)),
    tapsCosine: pairs.slice(1).map(([a, b]) => cosine(a.data, b.data)),
  }),
);
