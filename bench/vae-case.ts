/**
 * The VAE at a Lotus-sized resolution on an SD-2-sized checkpoint: encode + decode of one image,
 * untiled or tiled (`auto` follows the memory budget). Prints one JSON line with seconds and peak RSS.
 * usage: tsx bench/vae-case.ts <model dir> <size> <off|auto|tile>
 */
import { performance } from 'node:perf_hooks';
import { Rng } from '../sdk/core/rng.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { Vae, type VaeTiling } from '../sdk/model/vae/index.ts';

const [dir, sizeArg, mode] = process.argv.slice(2);
const size = Number(sizeArg);
const tiling: VaeTiling = mode === 'off' || mode === 'auto' ? mode : { tile: Number(mode) };
const vae = await Vae.load(dir);
const img = new Tensor(new Rng(0).normalArray(3 * size * size).map(Math.tanh), [1, 3, size, size]);
const t0 = performance.now();
const post = await vae.encode(img, { tiling });
const t1 = performance.now();
const out = await vae.decode(post.mean, { tiling });
const t2 = performance.now();
console.log(
  JSON.stringify({
    size,
    tiling: mode,
    tiles: vae.tilesFor(size, size, tiling) ?? null,
    encodeSeconds: (t1 - t0) / 1000,
    decodeSeconds: (t2 - t1) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    estimateGiB: vae.estimateBytes(size, size) / 2 ** 30,
    outShape: out.shape,
  }),
);
await vae.dispose();
