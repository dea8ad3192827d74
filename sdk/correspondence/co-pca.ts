/**
 * SD-DINO's co-PCA (Zhang et al. 2023, utils_correspondence.co_pca): the tokens of BOTH images
 * of a pair, centred by their joint mean and projected onto their top-k principal directions,
 * so the two images share one basis. Only distances between projected tokens matter to the
 * method, so any orthonormal basis of the top-k subspace gives the same matches: we compute the
 * subspace by subspace iteration on the covariance (the original: torch.pca_lowrank, randomized
 * with 2 power iterations, so its subspace differs from run to run at the margin). With k >= C
 * the projection is a rotation and the centred tokens are returned as they are.
 */
import { ShapeError } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { Tensor } from '../core/tensor.ts';
import { GraphBuilder } from '../model/onnx/graph.ts';
import { lazySession } from './similarity.ts';

const gramSession = lazySession(() => {
  const g = new GraphBuilder();
  const a = g.input('x', ['n', 'c']);
  g.output('gram', g.op('MatMul', [g.op('Transpose', [a], { perm: [1, 0] }), a]), ['c', 'c']);
  return g;
});
const productSession = lazySession(() => {
  const g = new GraphBuilder();
  g.output('y', g.op('MatMul', [g.input('a', ['m', 'n']), g.input('b', ['n', 'k'])]), ['m', 'k']);
  return g;
});

/** X^T X of rows [N, C] (onnxruntime: the covariance of SD's 60 x 60 maps is 1e10 multiply-adds). */
async function gramOf(x: Float32Array, n: number, c: number): Promise<Float32Array> {
  return (await (await gramSession()).run({ x: new Tensor(x, [n, c]) })).gram.data;
}

/** A [M, N] times B [N, K], in onnxruntime. */
async function times(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
): Promise<Float32Array> {
  return (await (await productSession()).run({ a: new Tensor(a, [m, n]), b: new Tensor(b, [n, k]) })).y.data;
}

/** Modified Gram-Schmidt on the k columns of Q [C, k], in float64. */
function orthonormalColumns(q: Float64Array, c: number, k: number): void {
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < j; i++) {
      let d = 0;
      for (let r = 0; r < c; r++) d += q[r * k + i] * q[r * k + j];
      for (let r = 0; r < c; r++) q[r * k + j] -= d * q[r * k + i];
    }
    let norm = 0;
    for (let r = 0; r < c; r++) norm += q[r * k + j] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let r = 0; r < c; r++) q[r * k + j] /= norm;
  }
}

export interface CoPcaOptions {
  /** Subspace iterations (default 12). */
  iterations?: number;
  seed?: number;
}

/**
 * Co-PCA of one feature stage of a pair: maps a [1, C, h1, w1] and b [1, C, h2, w2] to
 * [1, k', h, w] each, k' = min(k, C), in one basis fitted to both.
 */
export async function coPca(
  a: Tensor,
  b: Tensor,
  k: number,
  o: CoPcaOptions = {},
): Promise<[Tensor, Tensor]> {
  a.expectShape('co-PCA map', [1, -1, -1, -1]);
  const c = a.shape[1];
  b.expectShape('co-PCA map', [1, c, -1, -1]);
  if (!Number.isInteger(k) || k < 1) throw new ShapeError(`co-PCA: k must be a positive integer, got ${k}`);
  const [n1, n2] = [a.shape[2] * a.shape[3], b.shape[2] * b.shape[3]];
  const n = n1 + n2;
  // tokens [N, C], centred by the joint mean
  const mean = new Float64Array(c);
  for (const [t, m] of [
    [a, n1],
    [b, n2],
  ] as const)
    for (let ch = 0; ch < c; ch++) for (let p = 0; p < m; p++) mean[ch] += t.data[ch * m + p];
  for (let ch = 0; ch < c; ch++) mean[ch] /= n;
  const x = new Float32Array(n * c);
  for (const [t, m, off] of [
    [a, n1, 0],
    [b, n2, n1],
  ] as const)
    for (let p = 0; p < m; p++)
      for (let ch = 0; ch < c; ch++) x[(off + p) * c + ch] = t.data[ch * m + p] - mean[ch];
  const kk = Math.min(k, c);
  let proj: Float32Array;
  if (kk === c) proj = x;
  else {
    const cov = await gramOf(x, n, c);
    const rng = new Rng(o.seed ?? 0);
    let q = Float64Array.from({ length: c * kk }, () => rng.normal());
    orthonormalColumns(q, c, kk);
    for (let it = 0; it < (o.iterations ?? 12); it++) {
      q = Float64Array.from(await times(cov, Float32Array.from(q), c, c, kk));
      orthonormalColumns(q, c, kk);
    }
    proj = await times(x, Float32Array.from(q), n, c, kk);
  }
  const back = (m: number, off: number, h: number, w: number) => {
    const out = new Float32Array(kk * m);
    for (let p = 0; p < m; p++) for (let j = 0; j < kk; j++) out[j * m + p] = proj[(off + p) * kk + j];
    return new Tensor(out, [1, kk, h, w]);
  };
  return [back(n1, 0, a.shape[2], a.shape[3]), back(n2, n1, b.shape[2], b.shape[3])];
}
