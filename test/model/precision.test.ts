/**
 * Half precision (sdk/model/onnx/precision.ts): the pass's plan checked on small graphs by
 * construction, the real fp16 graphs of the reference checkpoints checked for what stays float32
 * and loaded by onnxruntime, and "fp16-emulated" held to the reference on every model case with
 * a stated tolerance: it must land near the reference, and measurably off it (the rounding is real);
 * DINO and DINOv2 against their own fp32 graphs (which their float64 parity tests hold to 2e-5).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, type DataType } from '../../sdk/model/onnx/graph.ts';
import { toHalfPrecision } from '../../sdk/model/onnx/precision.ts';
import { layerNorm } from '../../sdk/model/onnx/nn.ts';
import { Session } from '../../sdk/model/runtime.ts';
import { UNet, buildUNetGraph, parseUNetConfig, timestepProjection } from '../../sdk/model/unet/index.ts';
import { Vae } from '../../sdk/model/vae/index.ts';
import { TextEncoder } from '../../sdk/model/clip/index.ts';
import { WeightStore } from '../../sdk/model/weights.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from '../../sdk/model/vae/build.ts';
import { parseVaeConfig } from '../../sdk/model/vae/config.ts';
import { buildClipTextGraph } from '../../sdk/model/clip/build.ts';
import { parseClipTextConfig } from '../../sdk/model/clip/config.ts';
import { buildVitGraph } from '../../sdk/model/dino/build.ts';
import { parseVitConfig } from '../../sdk/model/dino/config.ts';
import { buildDinov2Graph } from '../../sdk/model/dinov2/build.ts';
import { parseDinov2Config } from '../../sdk/model/dinov2/config.ts';
import { DinoModel } from '../../sdk/model/dino/index.ts';
import { Dinov2Model } from '../../sdk/model/dinov2/index.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { loadStableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { invertLatents } from '../../sdk/diffusion/extract.ts';
import { SafetensorsReader, readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { floatToHalf, halfToFloat } from '../../sdk/core/half.ts';
import { ConfigError } from '../../sdk/core/errors.ts';
import { FIXTURES, REFERENCE, assertClose, rejectsWith, runCli, tempDir } from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const LOTUS = join(REFERENCE, 'lotus/tiny-lotus-g');
const caseFile = (name: string) => join(REFERENCE, 'cases', `${name}.safetensors`);

/**
 * How far fp16-emulated may land from the float64 reference: half's unit roundoff is 4.9e-4,
 * and a value passes some 30-60 rounded ops on the way through these models (measured: 0.9e-3
 * text encoder, 2.0-3.5e-3 UNet noise and taps, 1.2-3.6e-3 VAE); 1e-2 leaves room for other
 * inputs. The floor says the rounding happened: fp32 lands within 2e-6 of the same values.
 */
const HALF_TOLERANCE = 1e-2;
const HALF_FLOOR = 1e-4;

function assertHalfClose(got: Tensor, want: Tensor, what: string): void {
  const rel = assertClose(got, want, HALF_TOLERANCE, what);
  assert.ok(rel > HALF_FLOOR, `${what}: ${rel.toExponential(2)} from the reference: not rounded to half`);
}

/** Every value's type in a graph, from its inputs, initializers and each node's output. */
function valueTypes(g: GraphBuilder): Map<string, DataType> {
  const types = new Map<string, DataType>();
  for (const v of g.inputs) types.set(v.name, v.dtype);
  for (const i of g.initializers) types.set(i.name, i.dtype);
  const codes = new Map<number, DataType>([
    [1, 'float'],
    [10, 'float16'],
    [7, 'int64'],
  ]);
  for (const n of g.nodes) {
    let t: DataType | undefined;
    if (n.op === 'Cast') t = codes.get(n.attrs.to as number);
    else if (n.op === 'Shape') t = 'int64';
    else t = n.inputs.map((v) => types.get(v)).find((x) => x !== undefined);
    for (const o of n.outputs) if (t) types.set(o, t);
  }
  return types;
}

describe('half precision: the pass', () => {
  it('fp16-emulated rounds every value exactly as half does (range included) and keeps float32 edges', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [8]);
    g.output('y', g.op('Mul', [x, g.constFloat([1], [])]), [8]);
    toHalfPrecision(g, 'fp16-emulated');
    const s = await Session.create(await g.serialize());
    const values = [1.0001, Math.PI, 1000.3, 65519, 65520, 1e-8, -3e-5, 2049];
    const feeds = { x: new Tensor(Float32Array.from(values), [8]) };
    const y = (await s.run(feeds, undefined, { checkOutputs: false })).y.data;
    const want = values.map((v) => halfToFloat(floatToHalf(v)));
    assert.deepEqual(Array.from(y), Array.from(Float32Array.from(want)));
    // by construction: 65519 rounds to half's largest, 65520 overflows, 2049 is a tie to even
    assert.deepEqual([y[3], y[4], y[7]], [65504, Infinity, 2048]);
    await s.dispose();
  });

  it('keeps softmax, the normalisations, marked nodes and Resize scales in float32; weights in half', async () => {
    const g = new GraphBuilder();
    const w = {
      has: () => true,
      param: (gb: GraphBuilder, name: string, dims: readonly number[]) =>
        gb.constFloat(
          Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => 1 + 0.01 * i),
          [...dims],
          name,
        ),
    };
    const x = g.input('x', [1, 2, 4, 4]);
    const scaled = g.op('Mul', [x, g.constFloat([0.5, 2], [1, 2, 1, 1])]);
    const up = g.op('Resize', [scaled, '', g.constFloat([1, 1, 2, 2], [4])], { mode: 'nearest' });
    const tokens = g.op('Reshape', [up, g.constInt64([1, 2, 64])]);
    const normed = layerNorm({ g, w }, 'ln', tokens, 64, 1e-5);
    const stat = g.float32(() => g.op('ReduceMean', [normed], { axes: [2] }));
    const probs = g.op('Softmax', [g.op('Sub', [normed, stat])], { axis: -1 });
    g.output('y', probs, [1, 2, 64]);
    toHalfPrecision(g, 'fp16');
    const types = valueTypes(g);
    const node = (op: string) => g.nodes.find((n) => n.op === op)!;
    assert.equal(types.get(node('Mul').inputs[1]), 'float16', 'a weight in half');
    assert.equal(types.get(node('Mul').outputs[0]), 'float16', 'activations in half');
    assert.equal(types.get(node('Resize').inputs[2]), 'float', 'Resize scales stay float32');
    assert.equal(types.get(node('LayerNormalization').inputs[0]), 'float');
    assert.equal(types.get(node('LayerNormalization').inputs[1]), 'float', 'its scale too');
    assert.equal(types.get(node('ReduceMean').inputs[0]), 'float', 'a g.float32() node');
    assert.equal(types.get(node('Softmax').inputs[0]), 'float');
    assert.equal(types.get(node('Sub').inputs[0]), 'float16', 'unmarked ops in half');
    assert.equal(types.get('y'), 'float', 'outputs float32');
    // onnxruntime accepts the typed graph (on the CPU it computes in fp32 between its own casts)
    const s = await Session.create(await g.serialize());
    const out = await s.run({
      x: new Tensor(
        Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)),
        [1, 2, 4, 4],
      ),
    });
    const sums = [0, 1].map((r) => out.y.data.slice(64 * r, 64 * (r + 1)).reduce((a, b) => a + b, 0));
    for (const sum of sums) assert.ok(Math.abs(sum - 1) < 2e-6, `softmax rows sum to 1 in float32 (${sum})`);
    await s.dispose();
  });
});

describe('half precision: the models', function () {
  this.timeout(600_000);

  it('fp16 UNet graph: weights in half (half the bytes), norms and softmax in float32, float32 edges, loads in onnxruntime', async () => {
    const dir = join(TINY, 'unet');
    const cfg = parseUNetConfig(dir, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const build = async () => {
      const w = await WeightStore.open([join(dir, 'diffusion_pytorch_model.safetensors')]);
      return { g: buildUNetGraph(cfg, w, { taps: true }), w };
    };
    const plain = await build();
    const half = await build();
    toHalfPrecision(half.g, 'fp16');
    const bytes = (g: GraphBuilder, t: DataType) =>
      g.initializers.filter((i) => i.dtype === t).reduce((a, i) => a + i.byteLength, 0);
    const fp32Bytes = bytes(plain.g, 'float');
    assert.ok(bytes(half.g, 'float16') > 0.48 * fp32Bytes, 'nearly every weight in half');
    assert.ok(bytes(half.g, 'float') < 0.02 * fp32Bytes, 'only norm affines and constants stay float32');
    const types = valueTypes(half.g);
    for (const n of half.g.nodes) {
      if (['Softmax', 'InstanceNormalization', 'LayerNormalization'].includes(n.op))
        assert.equal(types.get(n.inputs[0]), 'float', `${n.outputs[0]} runs in float32`);
      if (n.op === 'Conv' || n.op === 'MatMul')
        assert.equal(types.get(n.inputs[0]), 'float16', `${n.outputs[0]} runs in half`);
    }
    for (const o of half.g.outputs) assert.equal(types.get(o.name), 'float', `output ${o.name}`);
    const s = await Session.create(await half.g.serialize());
    const { tensors: t } = await readAllSafetensors(caseFile('unet_t261'));
    const out = await s.run({
      sample: t.get('sample')!,
      time_proj: timestepProjection([261, 261], cfg.blockOutChannels[0], cfg.flipSinToCos, cfg.freqShift),
      encoder_hidden_states: t.get('encoder_hidden_states')!,
    });
    assertClose(out.noise_pred, t.get('noise_pred')!, HALF_TOLERANCE, 'fp16 graph on the CPU: noise_pred');
    await Promise.all([s.dispose(), plain.w.close(), half.w.close()]);
  });

  it("every other model's fp16 graph is typed right: onnxruntime loads it; norms and softmax float32, convs and matmuls half", async () => {
    const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
    const v1 = join(tempDir(), 'dino');
    const v2 = join(tempDir(), 'dinov2');
    await makeTinyCheckpoint(v1, { style: 'dino', seed: 4 });
    await makeTinyCheckpoint(v2, { style: 'dinov2', registers: true, swiglu: true, seed: 4 });
    const vae = parseVaeConfig('vae', json(join(TINY, 'vae/config.json')));
    const lotus = parseUNetConfig('unet', json(join(LOTUS, 'unet/config.json')));
    const cases: [string, string, (w: WeightStore) => GraphBuilder][] = [
      [
        'vae encoder',
        join(TINY, 'vae/diffusion_pytorch_model.safetensors'),
        (w) => buildVaeEncoderGraph(vae, w),
      ],
      [
        'vae decoder',
        join(TINY, 'vae/diffusion_pytorch_model.safetensors'),
        (w) => buildVaeDecoderGraph(vae, w),
      ],
      [
        'text encoder',
        join(TINY, 'text_encoder/model.safetensors'),
        (w) =>
          buildClipTextGraph(parseClipTextConfig('clip', json(join(TINY, 'text_encoder/config.json'))), w),
      ],
      [
        'Lotus UNet (task switcher)',
        join(LOTUS, 'unet/diffusion_pytorch_model.safetensors'),
        (w) => buildUNetGraph(lotus, w, { taps: false, twoPassNorm: true, deviceNoise: true }),
      ],
      [
        'DINO',
        join(v1, 'model.safetensors'),
        (w) =>
          buildVitGraph(parseVitConfig('dino', json(join(v1, 'config.json'))), w, { layer: 1, stride: 8 }),
      ],
      [
        'DINOv2',
        join(v2, 'model.safetensors'),
        (w) => buildDinov2Graph(parseDinov2Config('dinov2', json(join(v2, 'config.json'))), w, { layer: 2 }),
      ],
    ];
    for (const [what, file, build] of cases) {
      const w = await WeightStore.open([file]);
      const g = toHalfPrecision(build(w), 'fp16');
      const types = valueTypes(g);
      let half = 0;
      for (const n of g.nodes) {
        if (['Softmax', 'InstanceNormalization', 'LayerNormalization', 'ReduceMean'].includes(n.op))
          assert.equal(types.get(n.inputs[0]), 'float', `${what}: ${n.outputs[0]} in float32`);
        if (n.op === 'Conv' || n.op === 'MatMul') {
          assert.ok(types.get(n.inputs[0]) === 'float16' || n.float32, `${what}: ${n.outputs[0]} in half`);
          half++;
        }
      }
      assert.ok(half > 0, `${what}: convolutions or matmuls in half`);
      for (const o of g.outputs) assert.equal(types.get(o.name), 'float', `${what}: output ${o.name}`);
      // onnxruntime infers every node's types when it loads a graph: a mismatch fails here
      await (await Session.create(await g.serialize())).dispose();
      await w.close();
    }
  });

  it("SD-2's upcast_attention keeps the attention scores' matmul in float32", async () => {
    const dir = join(LOTUS, 'unet');
    const cfg = parseUNetConfig(dir, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const scoreTypes = async (upcast: boolean) => {
      const w = await WeightStore.open([join(dir, 'diffusion_pytorch_model.safetensors')]);
      const c = upcast ? { ...cfg, upcastAttention: true as const } : cfg;
      const g = toHalfPrecision(buildUNetGraph(c, w, { taps: false }), 'fp16');
      await w.close();
      const types = valueTypes(g);
      const byOutput = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
      // the matmul whose scores reach a softmax (through its Cast when the scores are half)
      return g.nodes
        .filter((n) => n.op === 'Softmax')
        .map((sm) => {
          let n = byOutput.get(sm.inputs[0])!;
          while (n.op !== 'MatMul') n = byOutput.get(n.inputs[0])!;
          return types.get(n.inputs[0]);
        });
    };
    const plain = await scoreTypes(false);
    const upcast = await scoreTypes(true);
    assert.ok(plain.length > 0 && plain.every((t) => t === 'float16'));
    assert.ok(upcast.length === plain.length && upcast.every((t) => t === 'float'));
  });

  it('fp16-emulated UNet: noise and all 12 taps at every reference timestep within the stated tolerance', async () => {
    const unet = await UNet.load(TINY, { precision: 'fp16-emulated' });
    for (const c of ['unet_t-1', 'unet_t0', 'unet_t261', 'unet_t980', 'unet_nonsquare_t500']) {
      const { tensors: t } = await readAllSafetensors(caseFile(c));
      const out = await unet.run({
        sample: t.get('sample')!,
        timestep: [...t.get('timestep')!.data],
        encoderHiddenStates: t.get('encoder_hidden_states')!,
      });
      assertHalfClose(out.noisePred, t.get('noise_pred')!, `${c} noise_pred`);
      out.taps.forEach((tap, k) => assertHalfClose(tap, t.get(`tap_l${k + 1}`)!, `${c} tap_l${k + 1}`));
    }
    await unet.dispose();
  });

  it('fp16-emulated VAE and text encoder within the stated tolerance', async () => {
    const vae = await Vae.load(TINY, { precision: 'fp16-emulated' });
    const { tensors: t } = await readAllSafetensors(caseFile('vae'));
    const p = await vae.encode(t.get('image')!);
    assertHalfClose(p.mean, t.get('posterior_mean')!, 'posterior_mean');
    assertHalfClose(p.std, t.get('posterior_std')!, 'posterior_std');
    assertHalfClose(await vae.decode(t.get('latent')!), t.get('decoded')!, 'decoded');
    await vae.dispose();
    const te = await TextEncoder.load(TINY, { precision: 'fp16-emulated' });
    const r = await SafetensorsReader.open(caseFile('text_encoder'));
    const ids = await r.readInt64('input_ids');
    const rows = Array.from({ length: ids.shape[0] }, (_, i) =>
      Array.from(ids.data.slice(i * 77, (i + 1) * 77), Number),
    );
    assertHalfClose(await te.encodeIds(rows), await r.read('last_hidden_state'), 'last_hidden_state');
    await Promise.all([r.close(), te.dispose()]);
  });

  it('fp16-emulated one-step inversion: every tap within the stated tolerance; its own feature-cache key', async () => {
    const sd = await loadStableDiffusion(TINY, { precision: 'fp16-emulated' });
    const { tensors: t } = await readAllSafetensors(caseFile('inversion_1'));
    const layers = Array.from({ length: 12 }, (_, i) => i + 1);
    const [stack] = await invertLatents(sd, t.get('latent')!, t.get('cond')!, {
      steps: 1,
      saveTimesteps: [0],
      layers,
    });
    for (const l of layers) assertHalfClose(stack.map(0, l), t.get(`t0_l${l}`)!, `inversion_1 t0_l${l}`);
    const fp32 = await loadStableDiffusion(TINY);
    assert.notEqual(sd.modelHash, fp32.modelHash, 'features of the two precisions never share cache entries');
    await Promise.all([sd.dispose(), fp32.dispose()]);
  });

  it('fp16-emulated DINO and DINOv2 (registers, SwiGLU): within the stated tolerance of their fp32 graphs; descriptors cached apart', async () => {
    const v1 = join(tempDir(), 'dino');
    const v2 = join(tempDir(), 'dinov2');
    await makeTinyCheckpoint(v1, { style: 'dino', seed: 4 });
    await makeTinyCheckpoint(v2, { style: 'dinov2', registers: true, swiglu: true, seed: 4 });
    const rng = new Rng(9);
    const pixels = new Tensor(rng.normalArray(3 * 56 * 56), [1, 3, 56, 56]);
    const cache = tempDir();
    const out: Record<string, Record<string, Tensor>> = {};
    const maps: Tensor[] = [];
    for (const precision of ['fp32', 'fp16-emulated'] as const) {
      const dino = await DinoModel.load(v1, { precision, layer: 1, stride: 8 });
      out[`dino-${precision}`] = await dino.run(pixels);
      await dino.dispose();
      const dinov2 = await Dinov2Model.load(v2, { precision, featureCache: cache });
      out[`dinov2-${precision}`] = await dinov2.run(pixels);
      maps.push(await dinov2.describePixels(pixels));
      await dinov2.dispose();
    }
    for (const model of ['dino', 'dinov2'])
      for (const [name, t] of Object.entries(out[`${model}-fp32`]))
        assertHalfClose(out[`${model}-fp16-emulated`][name], t, `${model} ${name}`);
    assert.equal(readdirSync(cache).length, 2, 'one descriptor entry per precision');
    assertHalfClose(maps[1], maps[0], 'dinov2 descriptor map');
  });

  it('refuses fp16 on the CPU (it is for GPUs) and unknown precisions, before building anything', async () => {
    const cpu = await rejectsWith(() => UNet.load(TINY, { precision: 'fp16' }), ConfigError);
    assert.match(cpu.message, /"fp16" is for GPUs.*fp16-emulated/);
    const bad = await rejectsWith(() => Vae.load(TINY, { precision: 'fp8' as 'fp16' }), ConfigError);
    assert.match(bad.message, /precision.*fp32 \| fp16 \| fp16-emulated.*fp8/);
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--precision',
      'fp16',
      '--out',
      tempDir(),
      '--images',
      join(FIXTURES, 'photos/chelsea.png'),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.err, /"fp16" is for GPUs/);
  });
});
