/**
 * PCA of feature maps as RGB, the paper's Figure-2 view: the top three principal
 * components of the per-pixel features, with ONE basis shared by all maps (so the same
 * colour means the same feature direction across images), each component scaled to
 * [0, 255] by its 1st-99th percentile range over all maps.
 */
import { ShapeError } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import type { Tensor } from '../core/tensor.ts';
import type { RgbImage } from '../core/rgb.ts';

export interface PcaBasis {
  mean: Float64Array; // [C]
  components: Float64Array[]; // k x [C], orthonormal, by decreasing variance
}

/** Top-k principal directions of the pixels of `maps` ([1, C, h, w] each) by subspace iteration. */
export function pcaBasis(maps: readonly Tensor[], k = 3, iterations = 30): PcaBasis {
  if (!maps.length) throw new ShapeError('pca: expected at least one feature map');
  const C = maps[0].shape[1];
  for (const m of maps) m.expectShape('pca map', [1, C, -1, -1]);
  const mean = new Float64Array(C);
  let n = 0;
  for (const m of maps) {
    const hw = m.shape[2] * m.shape[3];
    for (let c = 0; c < C; c++) for (let p = 0; p < hw; p++) mean[c] += m.data[c * hw + p];
    n += hw;
  }
  mean.forEach((v, c) => (mean[c] = v / n));
  const kk = Math.min(k, C);
  const rng = new Rng(0);
  let q: Float64Array[] = Array.from({ length: kk }, () =>
    Float64Array.from({ length: C }, () => rng.normal()),
  );
  orthonormalize(q);
  for (let it = 0; it < iterations; it++) {
    q = covarianceTimes(maps, mean, q);
    orthonormalize(q);
  }
  // order by variance (Rayleigh quotient) and fix signs for reproducible colours
  const variances = covarianceTimes(maps, mean, q).map((z, j) => dot(z, q[j]));
  const order = variances.map((_, j) => j).sort((a, b) => variances[b] - variances[a]);
  const components = order.map((j) => {
    const v = q[j];
    const big = v.reduce((bi, x, i) => (Math.abs(x) > Math.abs(v[bi]) ? i : bi), 0);
    return v[big] < 0 ? v.map((x) => -x) : v;
  });
  return { mean, components };
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function orthonormalize(q: Float64Array[]): void {
  for (let j = 0; j < q.length; j++) {
    for (let i = 0; i < j; i++) {
      const d = dot(q[j], q[i]);
      for (let c = 0; c < q[j].length; c++) q[j][c] -= d * q[i][c];
    }
    const norm = Math.sqrt(dot(q[j], q[j])) || 1;
    for (let c = 0; c < q[j].length; c++) q[j][c] /= norm;
  }
}

/** X^T X q for centered pixels X, without forming the covariance. */
function covarianceTimes(maps: readonly Tensor[], mean: Float64Array, q: Float64Array[]): Float64Array[] {
  const C = mean.length;
  const out = q.map(() => new Float64Array(C));
  for (const m of maps) {
    const proj = project(m, mean, q);
    const hw = m.shape[2] * m.shape[3];
    for (let c = 0; c < C; c++) {
      const row = c * hw;
      for (let j = 0; j < q.length; j++) {
        let s = 0;
        const pj = proj[j];
        for (let p = 0; p < hw; p++) s += (m.data[row + p] - mean[c]) * pj[p];
        out[j][c] += s;
      }
    }
  }
  return out;
}

/** Coordinates of each pixel of `m` along each direction: k x [h*w]. */
export function project(m: Tensor, mean: Float64Array, dirs: Float64Array[]): Float64Array[] {
  const hw = m.shape[2] * m.shape[3];
  const out = dirs.map(() => new Float64Array(hw));
  for (let c = 0; c < mean.length; c++) {
    const row = c * hw;
    for (let j = 0; j < dirs.length; j++) {
      const w = dirs[j][c];
      if (w === 0) continue;
      const o = out[j];
      for (let p = 0; p < hw; p++) o[p] += (m.data[row + p] - mean[c]) * w;
    }
  }
  return out;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

/** RGB images (one per map, at the map's resolution) from a basis shared by all maps. */
export function pcaRgb(maps: readonly Tensor[]): RgbImage[] {
  const basis = pcaBasis(maps, 3);
  const projections = maps.map((m) => project(m, basis.mean, basis.components));
  const ranges = basis.components.map((_, j) => {
    const all = Float64Array.from(projections.flatMap((p) => Array.from(p[j]))).sort();
    return [percentile(all, 0.01), percentile(all, 0.99)] as const;
  });
  return maps.map((m, i) => {
    const hw = m.shape[2] * m.shape[3];
    const data = new Uint8Array(hw * 3);
    for (let p = 0; p < hw; p++) {
      for (let j = 0; j < 3; j++) {
        const [lo, hi] = ranges[j] ?? [0, 1];
        const v = j < projections[i].length ? (projections[i][j][p] - lo) / (hi - lo || 1) : 0;
        data[p * 3 + j] = Math.round(255 * Math.min(1, Math.max(0, v)));
      }
    }
    return { data, width: m.shape[3], height: m.shape[2] };
  });
}
