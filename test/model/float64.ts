/**
 * Float64 building blocks of the independent ViT forwards in dino.test.ts and dinov2.test.ts:
 * written from the definitions (not from our graph builders), so a parity test against them
 * can fail.
 */
import assert from 'node:assert/strict';
import type { Tensor } from '../../sdk/core/tensor.ts';

/** erf to ~1e-15 (series for small x, continued fraction for large): float64 GELU. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f));
}

/** Keys' cubic convolution kernel (torch bicubic: a = -0.75; its antialiased resize: -0.5). */
export function keys(x: number, a = -0.75): number {
  const t = Math.abs(x);
  if (t <= 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

/** LayerNorm of one token (biased variance, as torch). */
export function layerNorm(x: number[], w: Float64Array, b: Float64Array, eps: number): number[] {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const v = x.reduce((a, t) => a + (t - mean) ** 2, 0) / x.length;
  return x.map((t, i) => ((t - mean) / Math.sqrt(v + eps)) * w[i] + b[i]);
}

/** A torch Linear on one token: w [out, in] row-major, out = b.length. */
export function dense(x: number[], w: Float64Array, b: Float64Array): number[] {
  const n = x.length;
  return Array.from({ length: b.length }, (_, o) => {
    let s = b[o];
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    return s;
  });
}

/** max |got - want| / max |want| over every token. */
export function worstRelative(got: Tensor, want: number[][]): number {
  const flat = want.flat();
  assert.equal(got.size, flat.length);
  const scale = Math.max(...flat.map(Math.abs));
  return Math.max(...flat.map((v, i) => Math.abs(got.data[i] - v))) / scale;
}

/** Multi-head softmax attention over tokens q, k, v [N][heads * hd]: [N][heads * hd]. */
export function selfAttention(q: number[][], k: number[][], v: number[][], heads: number): number[][] {
  const hd = q[0].length / heads;
  const att = q.map(() => new Array<number>(q[0].length).fill(0));
  for (let head = 0; head < heads; head++)
    for (let i = 0; i < q.length; i++) {
      const scores = k.map((_, j) => {
        let s = 0;
        for (let e = 0; e < hd; e++) s += q[i][head * hd + e] * k[j][head * hd + e];
        return s / Math.sqrt(hd);
      });
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const z = ex.reduce((a, b) => a + b, 0);
      for (let j = 0; j < k.length; j++)
        for (let e = 0; e < hd; e++) att[i][head * hd + e] += (ex[j] / z) * v[j][head * hd + e];
    }
  return att;
}
