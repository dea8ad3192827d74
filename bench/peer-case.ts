/**
 * The VAE or the text encoder against its peer: ours (the SDK's Vae untiled / TextEncoder) or
 * PyTorch's own ONNX export of the same architecture (bench/peers/*.py write them), both through
 * the SDK's Session (same threads and options). A first call and `calls` warm ones per graph:
 * the VAE's encoder (image -> posterior) and decoder (latent -> image) at <size> pixels, the text
 * encoder on 77 tokens. Prints one JSON line.
 * usage: tsx bench/peer-case.ts <vae|text-encoder> <ours|export> <model dir | export root (/tmp/ortspike)> <calls> [size] [cacheDir]
 */
import { join } from 'node:path';
import { Rng } from '../sdk/core/rng.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { TextEncoder } from '../sdk/model/clip/index.ts';
import { Session } from '../sdk/model/runtime.ts';
import { Vae } from '../sdk/model/vae/index.ts';
import { printCase, timeCalls, timedLoad } from './calls.ts';

const [component, who, dir, callsArg, sizeArg, cacheDir] = process.argv.slice(2);
const calls = Number(callsArg);
const size = Number(sizeArg ?? 512);
const load = cacheDir ? { cacheDir } : {};
if (who !== 'ours' && who !== 'export') throw new Error(`expected ours|export, got ${JSON.stringify(who)}`);
const rng = new Rng(0);
const open = (part: string) => Session.create(join(dir, part, 'model.onnx'));

/** Each graph of the component: a name and a call; then how to release them. */
async function graphs(): Promise<{
  calls: [string, () => Promise<unknown>][];
  dispose: () => Promise<void>;
}> {
  if (component === 'vae') {
    const image = new Tensor(rng.normalArray(3 * size * size).map(Math.tanh), [1, 3, size, size]);
    const latent = new Tensor(rng.normalArray(4 * (size / 8) ** 2), [1, 4, size / 8, size / 8]);
    if (who === 'ours') {
      const vae = await Vae.load(dir, load);
      return {
        calls: [
          ['encoder', () => vae.encode(image, { tiling: 'off' })],
          ['decoder', () => vae.decode(latent, { tiling: 'off' })],
        ],
        dispose: () => vae.dispose(),
      };
    }
    const [enc, dec] = [await open('vae/encoder'), await open('vae/decoder')];
    return {
      calls: [
        ['encoder', () => enc.run({ image })],
        ['decoder', () => dec.run({ latent })],
      ],
      dispose: async () => void (await Promise.all([enc.dispose(), dec.dispose()])),
    };
  }
  if (component === 'text-encoder') {
    const ids = Array.from({ length: 77 }, () => Math.floor(rng.uniform() * 49408));
    if (who === 'ours') {
      const te = await TextEncoder.load(dir, load);
      return { calls: [['textEncoder', () => te.encodeIds([ids])]], dispose: () => te.dispose() };
    }
    const s = await open('text_encoder');
    const feeds = { input_ids: { int64: BigInt64Array.from(ids.map(BigInt)), shape: [1, 77] } };
    return { calls: [['textEncoder', () => s.run(feeds)]], dispose: () => s.dispose() };
  }
  throw new Error(`expected vae|text-encoder, got ${JSON.stringify(component)}`);
}

const { value: g, loadSeconds, loadPeakRssMiB } = await timedLoad(graphs);
const timings: Record<string, unknown> = {};
for (const [name, run] of g.calls) timings[name] = await timeCalls(run, calls);
await g.dispose();
printCase({ component, who, size: component === 'vae' ? size : 77, loadSeconds, loadPeakRssMiB, ...timings });
