/**
 * The WebGPU kernels our graphs use, op by op, against a float64 computation and the CPU, at
 * the shapes our models use (tiny and SD-sized). Runs in the WebGPU test mode (`npm run
 * test:webgpu`); skipped otherwise. Four tests are canaries for defects found here in
 * onnxruntime 1.30's WebGPU kernels, which the default graphs avoid (sdk/model/numerics.ts,
 * sdk/aggregation/train/ops.ts):
 * when one stops failing, the default can be reconsidered.
 */
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../sdk/model/onnx/graph.ts';
import { attention, groupNorm, layerNorm, type Ctx } from '../../sdk/model/onnx/nn.ts';
import { convBackward } from '../../sdk/aggregation/train/ops.ts';
import type { WeightSource } from '../../sdk/model/weights.ts';
import { Session, type Device } from '../../sdk/model/runtime.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { TEST_DEVICE } from '../helpers.ts';

const rng = new Rng(11);
const randn = (n: number, scale = 1, offset = 0) =>
  Float32Array.from({ length: n }, () => offset + scale * rng.normal());

/** Weights by name, for building nn.ts layers outside a checkpoint. */
function weights(values: Record<string, Float32Array>): WeightSource {
  return {
    has: (n) => n in values,
    param: (g, n, expected, o = {}) => g.constFloat(values[n], o.reshape ?? [...expected], n),
  };
}

async function runOn(device: Device, g: GraphBuilder, feeds: Record<string, Tensor>): Promise<Float32Array> {
  const s = await Session.create(await g.serialize(), { device });
  try {
    return (await s.run(feeds)).y.data;
  } finally {
    await s.dispose();
  }
}

/** Relative errors (max |a - b| / max |b|) of the GPU and the CPU against float64. */
async function errors(build: (g: GraphBuilder) => void, feeds: Record<string, Tensor>, f64: Float64Array) {
  const make = () => {
    const g = new GraphBuilder();
    build(g);
    return g;
  };
  const want = Float32Array.from(f64);
  const gpu = relativeError(await runOn('webgpu', make(), feeds), want);
  const cpu = relativeError(await runOn('cpu', make(), feeds), want);
  if (process.env.HF_PRINT_REL) console.log(`      gpu ${gpu.toExponential(2)}  cpu ${cpu.toExponential(2)}`);
  return { gpu, cpu };
}

function attention64(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  B: number,
  N: number,
  M: number,
  H: number,
  D: number,
) {
  const y = new Float64Array(B * N * H * D);
  const s = new Float64Array(M);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < N; i++) {
        let mx = -Infinity;
        for (let j = 0; j < M; j++) {
          let d = 0;
          for (let e = 0; e < D; e++)
            d += q[(b * N + i) * H * D + h * D + e] * k[(b * M + j) * H * D + h * D + e];
          s[j] = d / Math.sqrt(D);
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < M; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let e = 0; e < D; e++) {
          let o = 0;
          for (let j = 0; j < M; j++) o += s[j] * v[(b * M + j) * H * D + h * D + e];
          y[(b * N + i) * H * D + h * D + e] = o / z;
        }
      }
  return y;
}

function groupNorm64(
  x: Float32Array,
  C: number,
  HW: number,
  G: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
) {
  const y = new Float64Array(x.length);
  const n = (C / G) * HW;
  for (let g = 0; g < G; g++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[g * n + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[g * n + i] - m) ** 2;
    const r = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) {
      const c = Math.floor((g * n + i) / HW);
      y[g * n + i] = (x[g * n + i] - m) * r * gamma[c] + beta[c];
    }
  }
  return y;
}

describe('WebGPU kernels, op by op, against float64 and the CPU', function () {
  this.timeout(1_200_000);
  before(function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
  });

  // [batch, query tokens, key tokens, heads, head size]: tiny-sd15 self and cross, SD-1.5's
  // 64x64 level (cross), an SD-2 head size, and the VAE's one-head mid-block attention
  const shapes = [
    [2, 256, 256, 2, 16],
    [2, 256, 77, 2, 48],
    [1, 4096, 77, 8, 40],
    [1, 1024, 77, 5, 64],
    [1, 1024, 1024, 1, 64],
  ] as const;
  for (const [B, N, M, H, D] of shapes)
    it(`attention as our graphs build it on WebGPU (MatMul, Softmax, MatMul): B${B} N${N} M${M} H${H} D${D}`, async () => {
      const [q, k, v] = [randn(B * N * H * D), randn(B * M * H * D), randn(B * M * H * D)];
      const feeds = {
        q: new Tensor(q, [B, N, H * D]),
        k: new Tensor(k, [B, M, H * D]),
        v: new Tensor(v, [B, M, H * D]),
      };
      const e = await errors(
        (g) => {
          g.input('q', [B, N, H * D]);
          g.input('k', [B, M, H * D]);
          g.input('v', [B, M, H * D]);
          g.output('y', attention(g, 'q', 'k', 'v', H, D), [B, N, H * D]);
        },
        feeds,
        attention64(q, k, v, B, N, M, H, D),
      );
      assert.ok(e.gpu < 1e-5, `GPU ${e.gpu} (CPU ${e.cpu})`);
    });

  it("canary: onnxruntime's WebGPU MultiHeadAttention is wrong from 32 query tokens (why the default on WebGPU is exact)", async () => {
    const [B, N, M, H, D] = [1, 32, 16, 1, 16];
    const [q, k, v] = [randn(B * N * H * D), randn(B * M * H * D), randn(B * M * H * D)];
    const feeds = {
      q: new Tensor(q, [B, N, H * D]),
      k: new Tensor(k, [B, M, H * D]),
      v: new Tensor(v, [B, M, H * D]),
    };
    const e = await errors(
      (g) => {
        g.input('q', [B, N, H * D]);
        g.input('k', [B, M, H * D]);
        g.input('v', [B, M, H * D]);
        g.output('y', attention(g, 'q', 'k', 'v', H, D, undefined, true), [B, N, H * D]);
      },
      feeds,
      attention64(q, k, v, B, N, M, H, D),
    );
    assert.ok(e.cpu < 1e-5, `the CPU's MultiHeadAttention is right: ${e.cpu}`);
    assert.ok(
      e.gpu > 1e-2,
      `WebGPU's MultiHeadAttention now gives ${e.gpu}: reconsider the default in numerics.ts`,
    );
  });

  // [channels, side, groups, mean offset / spread]: tiny UNet, VAE at 256 and SD-sized VAE maps
  const norms = [
    [32, 16, 8, 0],
    [64, 128, 32, 30],
    [128, 256, 32, 8],
    [512, 64, 32, 60],
  ] as const;
  for (const [C, S, G, offset] of norms)
    it(`GroupNorm as our graphs build it on WebGPU (two reductions): [1, ${C}, ${S}, ${S}], ${G} groups, mean ${offset}x the spread`, async () => {
      const x = randn(C * S * S, 0.5, 0.5 * offset);
      const [gamma, beta] = [randn(C, 0.2, 1), randn(C, 0.1)];
      const feeds = { x: new Tensor(x, [1, C, S, S]) };
      const build = (twoPassNorm: boolean) => (g: GraphBuilder) => {
        const ctx: Ctx = { g, w: weights({ 'n.weight': gamma, 'n.bias': beta }), twoPassNorm };
        g.output('y', groupNorm(ctx, 'n', g.input('x', [1, C, S, S]), C, G, 1e-6), [1, C, S, S]);
      };
      const want = groupNorm64(x, C, S * S, G, gamma, beta, 1e-6);
      const twoPass = await errors(build(true), feeds, want);
      assert.ok(twoPass.gpu < 1e-5, `two-pass GroupNorm on WebGPU: ${twoPass.gpu}`);
      if (offset >= 30) {
        // canary: the InstanceNormalization kernel's one-pass variance cancels here
        const instance = await errors(build(false), feeds, want);
        assert.ok(
          instance.gpu > 3 * twoPass.gpu && instance.gpu > 1e-5,
          `InstanceNormalization on WebGPU: ${instance.gpu}`,
        );
      }
    });

  it('LayerNorm as our graphs build it on WebGPU (two reductions) over 768 channels, mean 100x the spread; the kernel is a canary', async () => {
    const [R, C] = [154, 768];
    const x = randn(R * C, 1, 100);
    const [gamma, beta] = [randn(C, 0.2, 1), randn(C, 0.1)];
    const want = new Float64Array(R * C);
    for (let r = 0; r < R; r++) {
      let m = 0;
      for (let c = 0; c < C; c++) m += x[r * C + c];
      m /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[r * C + c] - m) ** 2;
      const s = 1 / Math.sqrt(v / C + 1e-5);
      for (let c = 0; c < C; c++) want[r * C + c] = (x[r * C + c] - m) * s * gamma[c] + beta[c];
    }
    const build = (twoPassNorm: boolean) => (g: GraphBuilder) => {
      const ctx: Ctx = { g, w: weights({ 'n.weight': gamma, 'n.bias': beta }), twoPassNorm };
      g.output('y', layerNorm(ctx, 'n', g.input('x', [R, C]), C, 1e-5), [R, C]);
    };
    const feeds = { x: new Tensor(x, [R, C]) };
    const twoPass = await errors(build(true), feeds, want);
    assert.ok(twoPass.gpu < 1e-5, `two-pass LayerNorm on WebGPU: ${twoPass.gpu}`);
    // canary: onnxruntime's WebGPU LayerNormalization takes a one-pass variance (1.9e-3 here)
    const kernel = await errors(build(false), feeds, want);
    assert.ok(kernel.cpu < 1e-5, `the CPU's LayerNormalization: ${kernel.cpu}`);
    assert.ok(
      kernel.gpu > 1e-4,
      `WebGPU's LayerNormalization now gives ${kernel.gpu}: reconsider numerics.ts`,
    );
  });

  for (const [C, S, K] of [
    [32, 32, 3],
    [128, 64, 3],
    [320, 32, 1],
  ] as const)
    it(`Conv ${K}x${K} on [1, ${C}, ${S}, ${S}] -> ${C} channels, then nearest 2x upsampling`, async () => {
      const x = randn(C * S * S);
      const w = randn(C * C * K * K, 1 / Math.sqrt(C * K * K));
      const b = randn(C, 0.1);
      const p = (K - 1) >> 1;
      const conv = new Float64Array(C * S * S);
      for (let o = 0; o < C; o++)
        for (let i = 0; i < C; i++)
          for (let ky = 0; ky < K; ky++)
            for (let kx = 0; kx < K; kx++) {
              const wv = w[((o * C + i) * K + ky) * K + kx];
              for (let y = 0; y < S; y++) {
                const yy = y + ky - p;
                if (yy < 0 || yy >= S) continue;
                for (let xx0 = 0; xx0 < S; xx0++) {
                  const xx = xx0 + kx - p;
                  if (xx < 0 || xx >= S) continue;
                  conv[(o * S + y) * S + xx0] += wv * x[(i * S + yy) * S + xx];
                }
              }
            }
      const want = new Float64Array(C * 4 * S * S);
      for (let o = 0; o < C; o++)
        for (let y = 0; y < 2 * S; y++)
          for (let xx = 0; xx < 2 * S; xx++)
            want[(o * 2 * S + y) * 2 * S + xx] = conv[(o * S + (y >> 1)) * S + (xx >> 1)] + b[o];
      const e = await errors(
        (g) => {
          const y = g.op(
            'Conv',
            [g.input('x', [1, C, S, S]), g.constFloat(w, [C, C, K, K]), g.constFloat(b, [C])],
            {
              pads: [p, p, p, p],
            },
          );
          const up = g.op('Resize', [y, '', g.constFloat([1, 1, 2, 2], [4], 'scales')], {
            mode: 'nearest',
            coordinate_transformation_mode: 'asymmetric',
            nearest_mode: 'floor',
          });
          g.output('y', up, [1, C, 2 * S, 2 * S]);
        },
        { x: new Tensor(x, [1, C, S, S]) },
        want,
      );
      assert.ok(e.gpu < 1e-5, `Conv + Resize on WebGPU: ${e.gpu}`);
    });

  it("canary: onnxruntime's WebGPU Conv is wrong on 6 input channels with a 3x3 kernel; the training's weight gradient pads them to 8", async () => {
    // the weight gradient of a 3x3 conv is a conv whose input channels are the batch (6 = 3
    // timesteps x 2 images in the reference case): ops.ts convBackward
    const [B, Ci, Co, S] = [6, 8, 4, 8];
    const x = randn(B * Ci * S * S);
    const dy = randn(B * Co * S * S);
    const want = new Float64Array(Co * Ci * 9);
    for (let b = 0; b < B; b++)
      for (let o = 0; o < Co; o++)
        for (let i = 0; i < Ci; i++)
          for (let u = 0; u < 3; u++)
            for (let v = 0; v < 3; v++) {
              let sum = 0;
              for (let h = 0; h < S; h++)
                for (let w = 0; w < S; w++) {
                  const [hh, ww] = [h + u - 1, w + v - 1];
                  if (hh >= 0 && hh < S && ww >= 0 && ww < S)
                    sum += dy[((b * Co + o) * S + h) * S + w] * x[((b * Ci + i) * S + hh) * S + ww];
                }
              want[((o * Ci + i) * 3 + u) * 3 + v] += sum;
            }
    const feeds = { x: new Tensor(x, [B, Ci, S, S]), dy: new Tensor(dy, [B, Co, S, S]) };
    const dw = (padChannels: boolean) => (g: GraphBuilder) => {
      const w = g.constFloat(new Float32Array(Co * Ci * 9), [Co, Ci, 3, 3]);
      const r = convBackward(
        g,
        g.input('x', [B, Ci, S, S]),
        w,
        g.input('dy', [B, Co, S, S]),
        3,
        false,
        padChannels,
      );
      g.output('y', r.dw, [Co, Ci, 3, 3]);
    };
    const padded = await errors(dw(true), feeds, want);
    assert.ok(padded.gpu < 1e-5 && padded.cpu < 1e-5, `padded: ${JSON.stringify(padded)}`);
    const kernel = await errors(dw(false), feeds, want);
    assert.ok(kernel.cpu < 1e-5, `the CPU's Conv: ${kernel.cpu}`);
    assert.ok(
      kernel.gpu > 1e-2,
      `WebGPU's Conv on 6 channels now gives ${kernel.gpu}: reconsider ops.ts padChannelsTo4`,
    );
  });

  it('the task switcher: a projection class embedding (Gemm-shaped Linear, SiLU, Linear)', async () => {
    const [P, T] = [4, 128];
    const x = Float32Array.from([0, 1, 1, 0]);
    const [w1, b1, w2, b2] = [randn(P * T, 0.5), randn(T, 0.1), randn(T * T, 0.1), randn(T, 0.1)];
    const h = new Float64Array(T);
    for (let j = 0; j < T; j++) {
      let s = b1[j];
      for (let i = 0; i < P; i++) s += x[i] * w1[i * T + j];
      h[j] = s / (1 + Math.exp(-s));
    }
    const want = new Float64Array(T);
    for (let j = 0; j < T; j++) {
      let s = b2[j];
      for (let i = 0; i < T; i++) s += h[i] * w2[i * T + j];
      want[j] = s;
    }
    const e = await errors(
      (g) => {
        const a = g.op('Add', [
          g.op('MatMul', [g.input('x', [1, P]), g.constFloat(w1, [P, T])]),
          g.constFloat(b1, [T]),
        ]);
        const s = g.op('Mul', [a, g.op('Sigmoid', [a])]);
        g.output('y', g.op('Add', [g.op('MatMul', [s, g.constFloat(w2, [T, T])]), g.constFloat(b2, [T])]), [
          1,
          T,
        ]);
      },
      { x: new Tensor(x, [1, P]) },
      want,
    );
    assert.ok(e.gpu < 1e-5, `projection embedding on WebGPU: ${e.gpu}`);
  });
});
