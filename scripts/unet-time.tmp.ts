import { UNet } from '../sdk/model/unet/index.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Rng } from '../sdk/core/rng.ts';
const t0 = performance.now();
const u = await UNet.load(process.argv[2]);
const load = (performance.now() - t0) / 1000;
const h = 64;
const r = new Rng(1);
const input = { sample: new Tensor(r.normalArray(4 * h * h), [1, 4, h, h]), timestep: 500, encoderHiddenStates: new Tensor(r.normalArray(77 * 768), [1, 77, 768]) };
const times: string[] = [];
for (let k = 0; k < 3; k++) { const t = performance.now(); await u.run(input); times.push(((performance.now() - t) / 1000).toFixed(2)); }
console.log(JSON.stringify({ load: load.toFixed(1), calls: times, rssMiB: (process.resourceUsage().maxRSS / 1024) | 0 }));
await u.dispose();
