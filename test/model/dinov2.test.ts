/**
 * The DINOv2 graph (transformers Dinov2Model and Dinov2WithRegistersModel) against an
 * independent float64 DINOv2 written here from the definitions: patch embedding at patch 14,
 * CLS + position table resized the three ways the checkpoints' code does (facebookresearch/
 * dinov2's "+0.1" scale factor, a plain size, torch's antialiased bicubic), registers after
 * CLS, pre-LN blocks with LayerScale, the GELU MLP or SwiGLU, the final LayerNorm. Tiny random
 * checkpoints from make-tiny --style dinov2, at non-square inputs; a deliberately wrong detail
 * (no offset, torch's non-antialiased kernel, no LayerScale) must fail the comparison.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Dinov2Model } from '../../sdk/model/dinov2/index.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { interpolatePositions } from '../../sdk/model/dino/positions.ts';
import { orderedDict, torchSave, torchTensor } from '../../sdk/aggregation/torch-save.ts';
import { FIXTURES, rejectsWith, runCli, tempDir, ON_DEVICE } from '../helpers.ts';
import { dense, erf, keys, layerNorm, selfAttention, worstRelative } from './float64.ts';

type W = Map<string, Float64Array>;
type Interp = 'offset' | 'size' | 'antialias';
interface Variant {
  registers: number;
  swiglu: boolean;
  /** Deliberate mistakes, to show the comparison catches them. */
  wrong?: { noLayerScale?: boolean; interp?: Interp | 'antialias-a075' };
}
const D = 32;
const HEADS = 2;
const LAYERS = 3;
const P = 14;
const EPS = 1e-6;

/** Weights over source rows 0..n-1 for output o of n -> g, per interpolation. */
function axisWeights(n: number, g: number, o: number, how: Interp | 'antialias-a075'): number[] {
  const w = new Array<number>(n).fill(0);
  if (how === 'antialias' || how === 'antialias-a075') {
    // torch antialias=True: the filter stretched by in/out when shrinking, renormalised
    const scale = n / g;
    const stretch = Math.max(scale, 1);
    const center = scale * (o + 0.5);
    for (let j = 0; j < n; j++) w[j] = keys((j + 0.5 - center) / stretch, how === 'antialias' ? -0.5 : -0.75);
    const z = w.reduce((s, v) => s + v, 0);
    return w.map((v) => v / z);
  }
  // torch bicubic, align_corners=False: border taps clamped onto the edge row
  const src = (o + 0.5) * (how === 'offset' ? n / (g + 0.1) : n / g) - 0.5;
  for (let j = Math.floor(src) - 1; j <= Math.floor(src) + 2; j++)
    w[Math.min(Math.max(j, 0), n - 1)] += keys(src - j, -0.75);
  return w;
}

/** DINOv2's forward in float64: the named tensors of the last block, every token. */
function dinov2x64(w: W, v: Variant, pixels: Tensor, interp: Interp) {
  const [, , H, Wd] = pixels.shape;
  const [gh, gw] = [Math.floor(H / P), Math.floor(Wd / P)];
  const pw = w.get('embeddings.patch_embeddings.projection.weight')!;
  const pb = w.get('embeddings.patch_embeddings.projection.bias')!;
  const pos = w.get('embeddings.position_embeddings')!;
  const n = Math.round(Math.sqrt(pos.length / D - 1));
  const how = v.wrong?.interp ?? interp;
  const identity = gh === n && gw === n && H === Wd;
  const tokens: number[][] = [Array.from(w.get('embeddings.cls_token')!, (c, o) => c + pos[o])];
  for (let y = 0; y < gh; y++)
    for (let x = 0; x < gw; x++) {
      const [wy, wx] = [axisWeights(n, gh, y, how), axisWeights(n, gw, x, how)];
      tokens.push(
        Array.from({ length: D }, (_, o) => {
          let s = pb[o];
          for (let ch = 0; ch < 3; ch++)
            for (let i = 0; i < P; i++)
              for (let j = 0; j < P; j++)
                s += pw[((o * 3 + ch) * P + i) * P + j] * pixels.data[(ch * H + y * P + i) * Wd + x * P + j];
          if (identity) return s + pos[(1 + y * n + x) * D + o];
          for (let a = 0; a < n; a++)
            for (let b = 0; b < n; b++) s += wy[a] * wx[b] * pos[(1 + a * n + b) * D + o];
          return s;
        }),
      );
    }
  if (v.registers) {
    const regs = w.get('embeddings.register_tokens')!;
    const r = Array.from({ length: v.registers }, (_, k) => Array.from(regs.subarray(k * D, (k + 1) * D)));
    tokens.splice(1, 0, ...r);
  }
  let h = tokens;
  const out: Record<string, number[][]> = {};
  for (let l = 0; l < LAYERS; l++) {
    const p = (s: string) => w.get(`encoder.layer.${l}.${s}`)!;
    const ls = (k: number, x: number[]) =>
      v.wrong?.noLayerScale ? x : x.map((t, i) => t * p(`layer_scale${k}.lambda1`)[i]);
    const normed = h.map((t) => layerNorm(t, p('norm1.weight'), p('norm1.bias'), EPS));
    const [q, k, val] = ['query', 'key', 'value'].map((f) =>
      normed.map((t) => dense(t, p(`attention.attention.${f}.weight`), p(`attention.attention.${f}.bias`))),
    );
    const att = selfAttention(q, k, val, HEADS);
    h = h.map((t, i) =>
      ls(1, dense(att[i], p('attention.output.dense.weight'), p('attention.output.dense.bias'))).map(
        (a, o) => a + t[o],
      ),
    );
    h = h.map((t) => {
      const m = layerNorm(t, p('norm2.weight'), p('norm2.bias'), EPS);
      let f: number[];
      if (v.swiglu) {
        const both = dense(m, p('mlp.weights_in.weight'), p('mlp.weights_in.bias'));
        const half = both.length / 2;
        const gated = both.slice(0, half).map((x1, i) => (x1 / (1 + Math.exp(-x1))) * both[half + i]);
        f = dense(gated, p('mlp.weights_out.weight'), p('mlp.weights_out.bias'));
      } else {
        const up = dense(m, p('mlp.fc1.weight'), p('mlp.fc1.bias')).map(
          (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
        );
        f = dense(up, p('mlp.fc2.weight'), p('mlp.fc2.bias'));
      }
      return ls(2, f).map((a, o) => a + t[o]);
    });
    if (l === LAYERS - 1) Object.assign(out, { query: q, key: k, value: val, tokens: h });
  }
  out.last_hidden_state = h.map((t) =>
    layerNorm(t, w.get('layernorm.weight')!, w.get('layernorm.bias')!, EPS),
  );
  return { out, gh, gw };
}

const NAMES = ['query', 'key', 'value', 'tokens', 'last_hidden_state'];
const TOL = 2e-5;

async function tiny(args: string[]): Promise<{ dir: string; weights: W }> {
  const dir = join(tempDir(), 'tiny-dinov2');
  const r = await runCli(['make-tiny', dir, '--style', 'dinov2', '--seed', '5', ...args]);
  assert.equal(r.code, 0, r.err);
  const { tensors } = await readAllSafetensors(join(dir, 'model.safetensors'));
  return { dir, weights: new Map([...tensors].map(([k, t]) => [k, Float64Array.from(t.data)])) };
}

describe('DINOv2 (transformers Dinov2Model / Dinov2WithRegistersModel) graph', function () {
  this.timeout(300_000);
  const pixels = (h: number, w: number) => new Tensor(new Rng(11).normalArray(3 * h * w), [1, 3, h, w]);

  const models = [
    {
      name: 'Dinov2Model (GELU MLP)',
      args: [],
      v: { registers: 0, swiglu: false },
      interps: ['offset', 'size'] as Interp[],
    },
    {
      name: 'Dinov2WithRegistersModel with the SwiGLU feed-forward',
      args: ['--registers', '--swiglu'],
      v: { registers: 4, swiglu: true },
      interps: ['antialias', 'offset'] as Interp[],
    },
  ];
  for (const m of models)
    describe(m.name, () => {
      let ckpt: { dir: string; weights: W };
      before(async () => {
        ckpt = await tiny(m.args);
      });
      const sizes = [
        { h: 42, w: 70, what: 'non-square 42x70 (3x5 grid from a 4x4 table: shrink and grow)' },
        { h: 56, w: 56, what: 'the table own 56x56 (4x4) grid, unchanged' },
        { h: 98, w: 84, what: 'non-square 98x84 with pixels past the last patch (7x6 grid)' },
      ];
      for (const interp of m.interps)
        for (const s of sizes.slice(0, interp === m.interps[0] ? 3 : 1))
          it(`matches float64 at ${s.what}, positions "${interp}"`, async () => {
            const model = await Dinov2Model.load(ckpt.dir, { positions: interp, ...ON_DEVICE });
            assert.equal(model.positions, interp);
            const x = pixels(s.h + (s.h === 98 ? 5 : 0), s.w + (s.h === 98 ? 9 : 0));
            const got = await model.run(x);
            const want = dinov2x64(ckpt.weights, m.v, x, interp);
            for (const n of NAMES) {
              const err = worstRelative(got[n], want.out[n]);
              assert.ok(err < TOL, `${n}: worst error ${err.toExponential(2)} of the largest value`);
            }
            assert.equal(got.tokens.shape[1], 1 + m.v.registers + want.gh * want.gw);
            await model.dispose();
          });

      it('fails the comparison when a detail is wrong (the test can tell)', async () => {
        const model = await Dinov2Model.load(ckpt.dir, ON_DEVICE);
        const x = pixels(42, 70);
        const got = await model.run(x);
        const wrongs: Variant['wrong'][] = [
          { noLayerScale: true },
          { interp: m.v.registers ? 'antialias-a075' : 'size' },
        ];
        for (const wrong of wrongs) {
          const want = dinov2x64(ckpt.weights, { ...m.v, wrong }, x, model.positions);
          const err = worstRelative(got.tokens, want.out.tokens);
          assert.ok(err > 100 * TOL, `${JSON.stringify(wrong)} went unnoticed: ${err.toExponential(2)}`);
        }
        await model.dispose();
      });
    });

  it('resizes position tables as torch does (known by construction)', () => {
    const n = 6;
    const ramp = new Float32Array(1 + n * n);
    for (let i = 0; i < n * n; i++) ramp[1 + i] = Math.floor(i / n); // each entry: its row
    const table = new Tensor(ramp, [1, 1 + n * n, 1]);
    const rows = (t: Tensor, g: number) => Array.from({ length: g }, (_, o) => t.data[1 + o * g]);
    // 6 -> 2 by size: source rows (o + 0.5) * 3 - 0.5 = 1 and 4 exactly, where cubic convolution
    // interpolates (returns the grid value); the +0.1 offset moves them off those rows
    assert.deepEqual(rows(interpolatePositions(table, 2, 2, 'size'), 2), [1, 4]);
    const off = rows(interpolatePositions(table, 2, 2, 'offset'), 2);
    assert.ok(Math.abs(off[0] - 1) > 0.05 && Math.abs(off[1] - 4) > 0.05, `offset: ${off}`);
    // antialias (a = -0.5) reproduces a ramp away from the border: the source coordinate
    const aa = rows(interpolatePositions(table, 9, 9, 'antialias'), 9);
    for (let o = 2; o < 7; o++)
      assert.ok(Math.abs(aa[o] - (((o + 0.5) * n) / 9 - 0.5)) < 1e-5, `antialias row ${o}: ${aa[o]}`);
    // every variant keeps a constant table constant, up and down, and the CLS entry as is
    const flat = new Tensor(new Float32Array(1 + n * n).fill(3), [1, 1 + n * n, 1]);
    for (const mode of ['size', 'offset', 'antialias'] as const)
      for (const [gh, gw] of [
        [9, 4],
        [3, 8],
      ])
        for (const v of interpolatePositions(flat, gh, gw, mode).data)
          assert.ok(Math.abs(v - 3) < 1e-5, mode);
    // the table's own grid: unchanged for a square input; "offset" still resizes a non-square one
    assert.equal(interpolatePositions(table, n, n, 'offset'), table);
    assert.notDeepEqual(
      Array.from(interpolatePositions(table, n, n, 'offset', false).data),
      Array.from(ramp),
    );
  });

  it('reads a checkpoint saved under a head (dinov2. prefix) as pytorch_model.bin the same, and describes images', async () => {
    const { dir } = await tiny(['--registers']);
    const img = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');
    const model = await Dinov2Model.load(dir, { layer: 1, facet: 'key' });
    const map = await model.describeImage(img, { loadSize: 56 });
    assert.deepEqual(map.shape, [1, 32, 4, 4]);
    assert.match(model.describe(), /4 registers.*key facet of block 1 \(0-based\) of 3.*antialias/);
    const binDir = join(tempDir(), 'bin-dinov2');
    mkdirSync(binDir);
    copyFileSync(join(dir, 'config.json'), join(binDir, 'config.json'));
    const { tensors } = await readAllSafetensors(join(dir, 'model.safetensors'));
    await torchSave(
      join(binDir, 'pytorch_model.bin'),
      orderedDict([...tensors].map(([k, t]) => [`dinov2_with_registers.${k}`, torchTensor(t)])),
    );
    const fromBin = await Dinov2Model.load(binDir, { layer: 1, facet: 'key', cacheDir: tempDir() });
    assert.deepEqual(
      Array.from((await fromBin.describeImage(img, { loadSize: 56 })).data),
      Array.from(map.data),
    );
    await Promise.all([model.dispose(), fromBin.dispose()]);
  });

  it('caches descriptor maps by config, weights, pixels and settings', async () => {
    const cacheDir = tempDir();
    const { dir } = await tiny([]);
    const other = join(tempDir(), 'other');
    assert.equal((await runCli(['make-tiny', other, '--style', 'dinov2', '--seed', '9'])).code, 0);
    const x = pixels(42, 56);
    const a = await Dinov2Model.load(dir, { featureCache: cacheDir });
    const first = await a.describePixels(x);
    assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.safetensors')).length, 1);
    assert.deepEqual(Array.from((await a.describePixels(x)).data), Array.from(first.data));
    assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.safetensors')).length, 1);
    // other weights, another facet: new entries, never the first one's values
    const b = await Dinov2Model.load(other, { featureCache: cacheDir });
    assert.notDeepEqual(Array.from((await b.describePixels(x)).data), Array.from(first.data));
    const c = await Dinov2Model.load(dir, { featureCache: cacheDir, facet: 'key' });
    await c.describePixels(x);
    assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.safetensors')).length, 3);
    await Promise.all([a, b, c].map((m) => m.dispose()));
  });

  it('rejects unsupported configs naming the field, and sizes off the patch grid saying the nearest', async () => {
    const { dir } = await tiny([]);
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const bad = tempDir();
    copyFileSync(join(dir, 'model.safetensors'), join(bad, 'model.safetensors'));
    writeFileSync(
      join(bad, 'config.json'),
      JSON.stringify({ ...raw, hidden_act: 'relu', model_type: 'vit' }),
    );
    let e = await rejectsWith(Dinov2Model.load(bad, { cacheDir: tempDir() }), ConfigError);
    assert.match(e.message, /"hidden_act" is "relu"/);
    assert.match(e.message, /"model_type" is "vit"/);
    e = await rejectsWith(makeTinyCheckpoint(tempDir(), { style: 'dinov2', variant: 'giant' }), ConfigError);
    assert.match(e.message, /--variant giant .* applies to --size full/);
    e = await rejectsWith(makeTinyCheckpoint(tempDir(), { style: 'sd15', registers: true }), ConfigError);
    assert.match(e.message, /options of the dinov2 style, not sd15/);
    e = await rejectsWith(Dinov2Model.load(dir, { layer: 3 }), ConfigError);
    assert.match(e.message, /layer.*0\.\.2/);
    e = await rejectsWith(Dinov2Model.load(dir, { positions: 'bilinear' as never }), ConfigError);
    assert.match(e.message, /size \| offset \| antialias/);
    const model = await Dinov2Model.load(dir);
    const img = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');
    e = await rejectsWith(model.describeImage(img, { loadSize: 100 }), ConfigError);
    assert.match(e.message, /multiple of the patch size 14 \(nearest: 98\)/);
    e = await rejectsWith(model.describePixels(pixels(50, 56)), ConfigError);
    assert.match(e.message, /nearest: 56x56/);
    await assert.rejects(model.run(pixels(10, 56)), /smaller than one 14x14 patch/);
    await model.dispose();
  });
});
