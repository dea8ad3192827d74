/**
 * SD-DINO's maths against float64 restatements written here: the letterbox geometry
 * (preprocess_kps_pad), co-PCA (the top-k principal subspace of both images' tokens), the
 * two-step upsampling and concatenation of the SD stages, the fusion (each part normalised and
 * weighted, L2 nearest neighbour) and the grid matching; known-by-construction cases (the fusion
 * weights 0 and 1 reproduce the single-feature predictions exactly, an image matches itself).
 */
import assert from 'node:assert/strict';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor, concat, resizeBilinear } from '../../sdk/core/tensor.ts';
import { coPca } from '../../sdk/correspondence/co-pca.ts';
import {
  checkDinoWeight,
  fromCanvas,
  fuse,
  gridMatch,
  letterbox,
  letterboxImage,
  sdDinoSdDescriptors,
  toCanvas,
  type PointXY,
} from '../../sdk/correspondence/sd-dino.ts';

const rand = (seed: number, shape: number[]) =>
  new Tensor(new Rng(seed).normalArray(shape.reduce((a, b) => a * b, 1)), shape);

/** Token j of a [1, C, h, w] map. */
const token = (t: Tensor, j: number) => {
  const n = t.shape[2] * t.shape[3];
  return Array.from({ length: t.shape[1] }, (_, c) => t.data[c * n + j]);
};

/** Symmetric eigenvectors by cyclic Jacobi (float64), sorted by decreasing eigenvalue. */
function eigenSym(a: number[][]): { values: number[]; vectors: number[][] } {
  const n = a.length;
  const m = a.map((r) => [...r]);
  const v: number[][] = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)),
  );
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p][q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(m[p][q]) < 1e-300) continue;
        const theta = (m[q][q] - m[p][p]) / (2 * m[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const [mkp, mkq] = [m[k][p], m[k][q]];
          m[k][p] = c * mkp - s * mkq;
          m[k][q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const [mpk, mqk] = [m[p][k], m[q][k]];
          m[p][k] = c * mpk - s * mqk;
          m[q][k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const [vkp, vkq] = [v[k][p], v[k][q]];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
  }
  const order = m.map((_, i) => i).sort((i, j) => m[j][j] - m[i][i]);
  return { values: order.map((i) => m[i][i]), vectors: order.map((i) => v.map((r) => r[i])) };
}

/** co_pca's projection in float64: joint mean, covariance, top-k eigenvectors. */
function coPca64(a: Tensor, b: Tensor, k: number): number[][] {
  const tokens = [a, b].flatMap((t) =>
    Array.from({ length: t.shape[2] * t.shape[3] }, (_, j) => token(t, j)),
  );
  const c = tokens[0].length;
  const mean = Array.from({ length: c }, (_, i) => tokens.reduce((s, x) => s + x[i], 0) / tokens.length);
  const centred = tokens.map((x) => x.map((v, i) => v - mean[i]));
  const cov = Array.from({ length: c }, (_, i) =>
    Array.from({ length: c }, (_, j) => centred.reduce((s, x) => s + x[i] * x[j], 0)),
  );
  const { vectors } = eigenSym(cov);
  return centred.map((x) => vectors.slice(0, k).map((e) => e.reduce((s, v, i) => s + v * x[i], 0)));
}

const dist = (x: number[], y: number[]) => Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0));

describe('SD-DINO maths (float64 restatements, known by construction)', () => {
  it('letterboxes as preprocess_kps_pad and resize(): scale by the longer side, centre, numpy rounding', () => {
    assert.deepEqual(letterbox(500, 375, 840), {
      size: 840,
      scale: 1.68,
      offsetX: 0,
      offsetY: 105,
      width: 840,
      height: 630,
    });
    assert.deepEqual(letterbox(300, 600, 840), {
      size: 840,
      scale: 1.4,
      offsetX: 210,
      offsetY: 0,
      width: 420,
      height: 840,
    });
    // 4 * 5 / 8 = 2.5: numpy rounds half to even (2), offset (4 - 2) // 2
    assert.equal(letterbox(8, 5, 4).height, 2);
    assert.equal(letterbox(8, 5, 4).offsetY, 1);
    const pts: PointXY[] = [
      [10, 20],
      [499, 374],
    ];
    const box = letterbox(500, 375, 840);
    const back = fromCanvas(toCanvas(pts, box), box);
    back.forEach((p, i) => p.forEach((v, j) => assert.ok(Math.abs(v - pts[i][j]) < 1e-9)));
  });

  it('puts the resized image on a black canvas, centred', () => {
    const img = { data: new Uint8Array(40 * 20 * 3).fill(200), width: 40, height: 20 };
    const { image, box } = letterboxImage(img, 16);
    assert.deepEqual([box.width, box.height, box.offsetY], [16, 8, 4]);
    for (let y = 0; y < 16; y++) {
      const v = image.data[(y * 16 + 8) * 3];
      assert.equal(v, y >= 4 && y < 12 ? 200 : 0, `row ${y}`);
    }
  });

  it('co-PCA spans the float64 top-k subspace of both images (pairwise distances agree), centred tokens when k >= C', async () => {
    const a = rand(1, [1, 12, 3, 4]);
    const b = rand(2, [1, 12, 2, 3]);
    // a spectrum with a clear gap, as real features have
    for (const t of [a, b])
      for (let i = 0; i < t.size; i++)
        t.data[i] *= 1 + 4 * Number(Math.floor(i / (t.shape[2] * t.shape[3])) < 3);
    const [pa, pb] = await coPca(a, b, 3, { iterations: 60 });
    assert.deepEqual(pa.shape, [1, 3, 3, 4]);
    const ours = [pa, pb].flatMap((t) =>
      Array.from({ length: t.shape[2] * t.shape[3] }, (_, j) => token(t, j)),
    );
    const want = coPca64(a, b, 3);
    for (let i = 0; i < want.length; i++)
      for (let j = 0; j < want.length; j++)
        assert.ok(Math.abs(dist(ours[i], ours[j]) - dist(want[i], want[j])) < 1e-4, `tokens ${i}, ${j}`);
    const [ca] = await coPca(a, b, 64);
    const tokens = [a, b].flatMap((t) =>
      Array.from({ length: t.shape[2] * t.shape[3] }, (_, j) => token(t, j)),
    );
    const mean0 = tokens.reduce((sum, x) => sum + x[0], 0) / tokens.length;
    assert.ok(Math.abs(ca.data[0] - (a.data[0] - mean0)) < 1e-5);
  });

  it('joins the stages as co_pca does: s3, then (s4, s5 up to s4) up to s3', async () => {
    const stage = (seed: number, c: number, s: number) => rand(seed, [1, c, s, s]);
    const [a, b] = [
      [stage(1, 5, 2), stage(2, 4, 4), stage(3, 3, 8)],
      [stage(4, 5, 2), stage(5, 4, 4), stage(6, 3, 8)],
    ];
    const [da] = await sdDinoSdDescriptors(a, b, [8, 8, 8]); // k >= C: centred stages
    const centred = async (i: number) => (await coPca(a[i], b[i], 8))[0];
    const [s5, s4, s3] = [await centred(0), await centred(1), await centred(2)];
    const want = concat([s3, resizeBilinear(concat([s4, resizeBilinear(s5, 4, 4)], 1), 8, 8)], 1);
    assert.deepEqual(da.shape, [1, 12, 8, 8]);
    assert.deepEqual(Array.from(da.data), Array.from(want.data));
  });

  it('fuses normalised parts with weights (1 - w, w): the score is (1-w)^2 cos_sd + w^2 cos_dino, and w = 0 or 1 is one feature alone', async () => {
    const [sdA, sdB, dA, dB] = [
      rand(1, [1, 6, 4, 4]),
      rand(2, [1, 6, 4, 4]),
      rand(3, [1, 5, 4, 4]),
      rand(4, [1, 5, 4, 4]),
    ];
    const cos = (x: number[], y: number[]) =>
      x.reduce((s, v, i) => s + v * y[i], 0) /
      Math.sqrt(x.reduce((s, v) => s + v * v, 0) * y.reduce((s, v) => s + v * v, 0));
    const w = 0.3;
    const fa = fuse(sdA, dA, w);
    const fb = fuse(sdB, dB, w);
    for (const [i, j] of [
      [0, 5],
      [7, 15],
      [3, 3],
    ]) {
      const dot = token(fa, i).reduce((s, v, c) => s + v * token(fb, j)[c], 0);
      const want =
        (1 - w) ** 2 * cos(token(sdA, i), token(sdB, j)) + w ** 2 * cos(token(dA, i), token(dB, j));
      assert.ok(Math.abs(dot - want) < 1e-6);
    }
    const pts: PointXY[] = [
      [1, 1],
      [10, 3],
      [15.9, 15.9],
      [7, 12],
    ];
    const o = { size: 16, patch: 4 };
    assert.deepEqual(
      await gridMatch(fuse(sdA, dA, 1), fuse(sdB, dB, 1), pts, o),
      await gridMatch(fuse(undefined, dA, 1), fuse(undefined, dB, 1), pts, o),
    );
    assert.deepEqual(
      await gridMatch(fuse(sdA, dA, 0), fuse(sdB, dB, 0), pts, o),
      await gridMatch(fuse(sdA, undefined, 0), fuse(sdB, undefined, 0), pts, o),
    );
    for (const bad of [-0.1, 1.5, Number.NaN, '0.5']) assert.throws(() => checkDinoWeight(bad), ConfigError);
  });

  it('matches on the grid like the original: keypoint patch int(g / size * x), the best patch centre p * cell + patch // 2 - 0.5; an image finds itself', async () => {
    const a = rand(9, [1, 7, 5, 5]);
    const b = rand(10, [1, 7, 5, 5]);
    const pts: PointXY[] = [
      [0, 0],
      [13.9, 2.2],
      [34.9, 34.9],
      [20, 7],
    ];
    const got = await gridMatch(fuse(a, undefined, 0), fuse(b, undefined, 0), pts, { size: 35, patch: 7 });
    const cosAt = (i: number, j: number) => {
      const [x, y] = [token(a, i), token(b, j)];
      return (
        x.reduce((s, v, c) => s + v * y[c], 0) /
        Math.sqrt(x.reduce((s, v) => s + v * v, 0) * y.reduce((s, v) => s + v * v, 0))
      );
    };
    pts.forEach(([x, y], k) => {
      const i = Math.trunc((5 / 35) * y) * 5 + Math.trunc((5 / 35) * x);
      let best = 0;
      for (let j = 1; j < 25; j++) if (cosAt(i, j) > cosAt(i, best)) best = j;
      assert.deepEqual(got[k], [(best % 5) * 7 + 3 - 0.5, Math.floor(best / 5) * 7 + 3 - 0.5]);
    });
    const self = await gridMatch(fuse(a, undefined, 0), fuse(a, undefined, 0), pts, { size: 35, patch: 7 });
    self.forEach(([x, y], k) => {
      assert.equal(Math.floor(x / 7), Math.trunc((5 / 35) * pts[k][0]));
      assert.equal(Math.floor(y / 7), Math.trunc((5 / 35) * pts[k][1]));
    });
  });
});
