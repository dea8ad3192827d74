/**
 * The DINO ViT graph against an independent float64 ViT written here from the definitions
 * (patch embedding, CLS + position table with bicubic interpolation, pre-LN blocks with
 * multi-head attention and exact GELU), on a tiny random checkpoint from make-tiny --style dino,
 * at the native grid and at non-square, overlapping-patch inputs.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { ConfigError } from '../../sdk/core/errors.ts';
import { DinoModel } from '../../sdk/model/dino/index.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { orderedDict, torchSave, torchTensor } from '../../sdk/aggregation/torch-save.ts';
import { FIXTURES, rejectsWith, runCli, tempDir, ON_DEVICE } from '../helpers.ts';
import { dense, erf, keys, layerNorm, selfAttention, worstRelative } from './float64.ts';

type W = Map<string, Float64Array>;
type Cfg = { d: number; heads: number; layers: number; ff: number; p: number; eps: number };

/** One output of torch's bicubic (align_corners=False) on an n x n grid, written per pixel. */
function bicubicAt(
  grid: (y: number, x: number) => number,
  n: number,
  oy: number,
  ox: number,
  H: number,
  Wd: number,
) {
  const sy = ((oy + 0.5) * n) / H - 0.5;
  const sx = ((ox + 0.5) * n) / Wd - 0.5;
  const clamp = (i: number) => Math.min(Math.max(i, 0), n - 1);
  let s = 0;
  for (let j = Math.floor(sy) - 1; j <= Math.floor(sy) + 2; j++)
    for (let i = Math.floor(sx) - 1; i <= Math.floor(sx) + 2; i++)
      s += keys(sy - j) * keys(sx - i) * grid(clamp(j), clamp(i));
  return s;
}

/** The ViT forward in float64: every token [N][D] of the named tensors at block `layer`. */
function vit64(w: W, c: Cfg, pixels: Tensor, stride: number, layer: number) {
  const [, , H, Wd] = pixels.shape;
  const gh = Math.floor((H - c.p) / stride) + 1;
  const gw = Math.floor((Wd - c.p) / stride) + 1;
  const pw = w.get('embeddings.patch_embeddings.projection.weight')!;
  const pb = w.get('embeddings.patch_embeddings.projection.bias')!;
  const tokens: number[][] = [Array.from(w.get('embeddings.cls_token')!)];
  for (let y = 0; y < gh; y++)
    for (let x = 0; x < gw; x++)
      tokens.push(
        Array.from({ length: c.d }, (_, o) => {
          let s = pb[o];
          for (let ch = 0; ch < 3; ch++)
            for (let i = 0; i < c.p; i++)
              for (let j = 0; j < c.p; j++)
                s +=
                  pw[((o * 3 + ch) * c.p + i) * c.p + j] *
                  pixels.data[(ch * H + y * stride + i) * Wd + x * stride + j];
          return s;
        }),
      );
  const pos = w.get('embeddings.position_embeddings')!;
  const n = Math.round(Math.sqrt(pos.length / c.d - 1));
  tokens.forEach((t, k) => {
    for (let o = 0; o < c.d; o++) {
      if (k === 0) t[o] += pos[o];
      else if (gh === n && gw === n) t[o] += pos[k * c.d + o];
      else {
        const [oy, ox] = [Math.floor((k - 1) / gw), (k - 1) % gw];
        t[o] += bicubicAt((yy, xx) => pos[(1 + yy * n + xx) * c.d + o], n, oy, ox, gh, gw);
      }
    }
  });
  let h = tokens;
  const out: Record<string, number[][]> = {};
  for (let l = 0; l <= layer; l++) {
    const P = (s: string) => w.get(`encoder.layer.${l}.${s}`)!;
    const normed = h.map((t) =>
      layerNorm(t, P('layernorm_before.weight'), P('layernorm_before.bias'), c.eps),
    );
    const [q, k, v] = ['query', 'key', 'value'].map((f) =>
      normed.map((t) => dense(t, P(`attention.attention.${f}.weight`), P(`attention.attention.${f}.bias`))),
    );
    const att = selfAttention(q, k, v, c.heads);
    h = h.map((t, i) =>
      dense(att[i], P('attention.output.dense.weight'), P('attention.output.dense.bias')).map(
        (a, o) => a + t[o],
      ),
    );
    h = h.map((t) => {
      const m = layerNorm(t, P('layernorm_after.weight'), P('layernorm_after.bias'), c.eps);
      const up = dense(m, P('intermediate.dense.weight'), P('intermediate.dense.bias')).map(
        (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
      );
      return dense(up, P('output.dense.weight'), P('output.dense.bias')).map((a, o) => a + t[o]);
    });
    if (l === layer) Object.assign(out, { query: q, key: k, value: v, tokens: h });
  }
  if (layer === c.layers - 1)
    out.last_hidden_state = h.map((t) =>
      layerNorm(t, w.get('layernorm.weight')!, w.get('layernorm.bias')!, c.eps),
    );
  return { out, gh, gw };
}

describe('DINO ViT (transformers ViTModel) graph', function () {
  this.timeout(300_000);
  let dir: string;
  let weights: W;
  const cfg: Cfg = { d: 32, heads: 2, layers: 3, ff: 64, p: 8, eps: 1e-12 };

  before(async () => {
    dir = join(tempDir(), 'tiny-dino');
    const r = await runCli(['make-tiny', dir, '--style', 'dino', '--seed', '3']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /transformers ViT checkpoint/);
    const { tensors } = await readAllSafetensors(join(dir, 'model.safetensors'));
    weights = new Map([...tensors].map(([k, t]) => [k, Float64Array.from(t.data)]));
  });

  const cases = [
    { name: 'native 32x32 grid, stride 8', h: 32, w: 32, stride: 8, layer: 2 },
    {
      name: 'non-square 48x40, overlapping patches (stride 4), position table interpolated',
      h: 48,
      w: 40,
      stride: 4,
      layer: 2,
    },
    { name: 'an inner block (the descriptor layer), 40x40 stride 4', h: 40, w: 40, stride: 4, layer: 1 },
  ];
  for (const c of cases)
    it(`matches a float64 ViT: ${c.name}`, async () => {
      const model = await DinoModel.load(dir, {
        layer: c.layer,
        stride: c.stride,
        facet: 'key',
        ...ON_DEVICE,
      });
      const pixels = new Tensor(new Rng(7).normalArray(3 * c.h * c.w), [1, 3, c.h, c.w]);
      const got = await model.run(pixels);
      const want = vit64(weights, cfg, pixels, c.stride, c.layer);
      const names = [
        'query',
        'key',
        'value',
        'tokens',
        ...(c.layer === cfg.layers - 1 ? ['last_hidden_state'] : []),
      ];
      for (const n of names) {
        const err = worstRelative(got[n], want.out[n]);
        assert.ok(err < 2e-5, `${n}: worst error ${err.toExponential(2)} of the largest value`);
      }
      assert.equal(got.key.shape[1], 1 + want.gh * want.gw);
      await model.dispose();
    });

  it('describes an image as a [1, D, gh, gw] facet map (CLS dropped), and reads pytorch_model.bin the same', async () => {
    const img = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');
    const model = await DinoModel.load(dir, { layer: 1, stride: 4, facet: 'value' });
    const map = await model.describeImage(img, { loadSize: 48 });
    assert.deepEqual(map.shape, [1, 32, 11, 11]);
    assert.match(model.describe(), /value facet of block 1 \(0-based\) of 3.*stride 4/);
    // the same checkpoint as a torch.save state dict only
    const binDir = join(tempDir(), 'bin-dino');
    mkdirSync(binDir);
    copyFileSync(join(dir, 'config.json'), join(binDir, 'config.json'));
    const { tensors } = await readAllSafetensors(join(dir, 'model.safetensors'));
    await torchSave(
      join(binDir, 'pytorch_model.bin'),
      orderedDict([...tensors].map(([k, t]) => [k, torchTensor(t)])),
    );
    const fromBin = await DinoModel.load(binDir, {
      layer: 1,
      stride: 4,
      facet: 'value',
      cacheDir: tempDir(),
    });
    assert.deepEqual(
      Array.from((await fromBin.describeImage(img, { loadSize: 48 })).data),
      Array.from(map.data),
    );
    await Promise.all([model.dispose(), fromBin.dispose()]);
  });

  it('rejects bad options and folders with what was expected', async () => {
    let e = await rejectsWith(DinoModel.load(dir, { layer: 3 }), ConfigError);
    assert.match(e.message, /layer.*a block index in 0\.\.2/);
    e = await rejectsWith(DinoModel.load(dir, { stride: 9 }), ConfigError);
    assert.match(e.message, /stride.*1\.\.8/);
    e = await rejectsWith(DinoModel.load(dir, { facet: 'attn' as never }), ConfigError);
    assert.match(e.message, /key \| query \| value \| token/);
    const empty = tempDir();
    await assert.rejects(DinoModel.load(empty), /no config\.json/);
    const model = await DinoModel.load(dir);
    await assert.rejects(
      model.run(new Tensor(new Float32Array(3 * 4 * 4), [1, 3, 4, 4])),
      /smaller than one 8x8 patch/,
    );
    await model.dispose();
  });
});

describe('make-tiny --style dino', () => {
  it('writes a checkpoint the loader accepts, random but seeded', async () => {
    const a = tempDir();
    const b = tempDir();
    await makeTinyCheckpoint(a, { style: 'dino', seed: 1 });
    await makeTinyCheckpoint(b, { style: 'dino', seed: 1 });
    const [x, y] = await Promise.all([a, b].map((d) => readAllSafetensors(join(d, 'model.safetensors'))));
    assert.deepEqual([...x.tensors.keys()], [...y.tensors.keys()]);
    assert.ok(x.tensors.has('embeddings.position_embeddings'));
    assert.deepEqual(x.tensors.get('embeddings.position_embeddings')!.shape, [1, 17, 32]);
  });
});
