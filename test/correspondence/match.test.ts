import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  matchPoints,
  matchPointsBatched,
  matchPointsChunked,
  boxMask,
  mutualNearestNeighbours,
  rescalePoints,
  pointIndex,
  similarityRows,
  unitPixels,
  type PointYX,
} from '../../sdk/correspondence/match.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { computePck, distances } from '../../sdk/correspondence/pck.ts';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { ShapeError } from '../../sdk/core/errors.ts';
import { REFERENCE } from '../helpers.ts';

interface CorrCase {
  load_size_wh: [number, number];
  target_size_wh: [number, number];
  source_points_yx: PointYX[];
  predicted_points_yx_load: PointYX[];
  predicted_points_yx_target: PointYX[];
  target_points_yx_target: PointYX[];
  distances: number[];
  pck_img: boolean[];
  pck_img_mean: number;
  bbox_ltrb: [number, number, number, number];
  pck_bbox_mean: number;
}

describe('correspondence: matching and PCK', () => {
  it('matches the original nearest neighbours, rescaling and PCK (incl. a distance exactly on the threshold)', async () => {
    const c = JSON.parse(readFileSync(join(REFERENCE, 'cases/correspondence.json'), 'utf8')) as CorrCase;
    const { tensors } = await readAllSafetensors(join(REFERENCE, 'cases/aggregation.safetensors'));
    const d = tensors.get('descriptors')!;
    const [a, b] = [d.sliceFirst(0), d.sliceFirst(1)];
    const matches = matchPoints(a, b, c.source_points_yx, { loadSize: c.load_size_wh[0] });
    assert.deepEqual(
      matches.map((m) => m.target),
      c.predicted_points_yx_load,
    );
    const [lw, lh] = c.load_size_wh;
    const [tw, th] = c.target_size_wh;
    const pred = rescalePoints(
      matches.map((m) => m.target),
      { width: lw, height: lh },
      { width: tw, height: th },
    );
    pred.forEach((p, i) =>
      p.forEach((v, k) => assert.ok(Math.abs(v - c.predicted_points_yx_target[i][k]) < 1e-9)),
    );
    const dist = distances(pred, c.target_points_yx_target);
    dist.forEach((v, i) => assert.ok(Math.abs(v - c.distances[i]) < 1e-9));
    const pair = {
      predicted: pred,
      groundTruth: c.target_points_yx_target,
      imageSize: { width: tw, height: th },
      bbox: c.bbox_ltrb,
    };
    assert.equal(computePck([pair], 0.1, 'img').perKeypoint, c.pck_img_mean);
    assert.equal(computePck([pair], 0.1, 'bbox').perKeypoint, c.pck_bbox_mean);
  });

  it('finds planted matches by construction; mutual NN keeps only consistent pairs', async () => {
    // one-hot descriptors: source pixel i carries feature i; target is the source shifted right by one column
    const H = 4;
    const W = 4;
    const P = H * W;
    const src = Tensor.zeros([1, P, H, W]).map((_, idx) =>
      Math.floor(idx / (H * W)) === idx % (H * W) ? 1 : 0,
    );
    const tgt = Tensor.zeros([1, P, H, W]).map((_, idx) => {
      const c = Math.floor(idx / (H * W));
      const pix = idx % (H * W);
      const [y, x] = [Math.floor(pix / W), pix % W];
      return x > 0 && c === y * W + (x - 1) ? 1 : 0;
    });
    const m = matchPoints(src, tgt, [
      [1, 1],
      [2, 0],
      [3, 2],
    ]);
    assert.deepEqual(
      m.map((x) => x.target),
      [
        [1, 2],
        [2, 1],
        [3, 3],
      ],
    );
    assert.ok(m.every((x) => Math.abs(x.score - 1) < 1e-6));
    const mnn = await mutualNearestNeighbours(src, tgt);
    assert.equal(mnn.length, H * (W - 1), 'every pixel but the last column has its shifted twin');
    assert.ok(mnn.every((x) => x.target[1] === x.source[1] + 1 && x.target[0] === x.source[0]));
  });

  it('mutual NN in onnxruntime equals a brute-force scan on random descriptors (ties included)', async () => {
    const rng = new Rng(7);
    const mk = (h: number, w: number) => new Tensor(rng.normalArray(24 * h * w, 0, 1), [1, 24, h, w]);
    const [a, b] = [mk(9, 7), mk(6, 8)];
    // duplicate one target pixel so two targets tie: the first index must win, as in a scan
    for (let c = 0; c < 24; c++) b.data[c * 48 + 5] = b.data[c * 48 + 4];
    const ua = unitPixels(a);
    const ub = unitPixels(b);
    const scan = (x: Float32Array, y: Float32Array) =>
      similarityRows(x, [...Array(x.length / 24).keys()], y, 24).map((row) => row.indexOf(Math.max(...row)));
    const fwd = scan(ua, ub);
    const back = scan(ub, ua);
    const want = fwd.flatMap((j, i) => (back[j] === i ? [[i, j]] : []));
    const got = await mutualNearestNeighbours(a, b);
    assert.ok(want.length > 3);
    assert.deepEqual(
      got
        .map((m) => [m.source[0] * 7 + m.source[1], m.target[0] * 8 + m.target[1]])
        .sort((x, y) => x[0] - y[0]),
      want,
    );
    for (let k = 1; k < got.length; k++) assert.ok(got[k - 1].score >= got[k].score);
  });

  it('computes PCK per keypoint, per image and per category', () => {
    const mk = (ok: number, n: number, category: string) => ({
      predicted: Array.from({ length: n }, (_, i): PointYX => [i < ok ? 0 : 50, 0]),
      groundTruth: Array.from({ length: n }, (): PointYX => [0, 0]),
      imageSize: { width: 100, height: 80 },
      category,
    });
    const r = computePck([mk(1, 1, 'cat'), mk(1, 3, 'dog')], 0.1, 'img');
    assert.equal(r.perKeypoint, 2 / 4);
    assert.equal(r.perImage, (1 + 1 / 3) / 2);
    assert.deepEqual(r.byCategory.cat, { perKeypoint: 1, perImage: 1, keypoints: 1 });
  });

  it('rounds points to pixels like points_to_idxs and rejects mismatched descriptors', () => {
    assert.equal(pointIndex([2.5, 1.5], 8, 8), 2 * 8 + 2);
    assert.equal(pointIndex([-3, 99], 8, 8), 7);
    assert.throws(
      () => matchPoints(Tensor.zeros([1, 4, 2, 2]), Tensor.zeros([1, 5, 2, 2]), [[0, 0]]),
      ShapeError,
    );
  });
});

describe('chunked similarity (SD-Concat-All width)', () => {
  it('gives the same matches as the whole upsampled map, whatever the chunk size', async () => {
    const rng = new Rng(11);
    const src = new Tensor(rng.normalArray(40 * 6 * 6), [1, 40, 6, 6]);
    const tgt = new Tensor(rng.normalArray(40 * 7 * 5), [1, 40, 7, 5]);
    const points: PointYX[] = [
      [0, 0],
      [3.4, 17.6],
      [19, 19],
      [10.5, 2.5],
    ];
    const whole = await matchPointsBatched(src, tgt, points, { loadSize: 20 });
    for (const chunk of [1, 7, 40, 64]) {
      const chunked = await matchPointsChunked(src, tgt, points, { loadSize: 20, chunk });
      assert.deepEqual(
        chunked.map((m) => m.target),
        whole.map((m) => m.target),
        `chunk ${chunk}`,
      );
      chunked.forEach((m, k) => assert.ok(Math.abs(m.score - whole[k].score) < 1e-5, `chunk ${chunk} score`));
    }
  });
});

describe('mutual nearest neighbours inside a foreground mask', () => {
  it('uses only masked pixels in both directions (brute force on the kept pixels)', async () => {
    const rng = new Rng(5);
    const a = new Tensor(rng.normalArray(8 * 6 * 6), [1, 8, 6, 6]);
    const b = new Tensor(rng.normalArray(8 * 5 * 7), [1, 8, 5, 7]);
    const sourceMask = boxMask([0, 0, 30, 40], 6, 6, { width: 60, height: 60 });
    const targetMask = boxMask([35, 10, 70, 50], 5, 7, { width: 70, height: 50 });
    const got = await mutualNearestNeighbours(a, b, { sourceMask, targetMask });
    const [ua, ub] = [unitPixels(a), unitPixels(b)];
    const dot = (i: number, j: number) => {
      let s = 0;
      for (let c = 0; c < 8; c++) s += ua[i * 8 + c] * ub[j * 8 + c];
      return s;
    };
    const ka = sourceMask.flatMap((m, i) => (m ? [i] : []));
    const kb = targetMask.flatMap((m, i) => (m ? [i] : []));
    const best = (i: number, among: number[], f: (j: number) => number) =>
      among.reduce((x, j) => (f(j) > f(x) ? j : x), among[0]);
    const want = ka
      .map((i) => [i, best(i, kb, (j) => dot(i, j))])
      .filter(([i, j]) => best(j, ka, (k) => dot(k, j)) === i)
      .map(([i, j]) => `${Math.floor(i / 6)},${i % 6}->${Math.floor(j / 7)},${j % 7}`)
      .sort();
    assert.ok(want.length > 0);
    assert.deepEqual(got.map((m) => `${m.source}->${m.target}`).sort(), want);
    for (const m of got) {
      assert.ok(sourceMask[m.source[0] * 6 + m.source[1]] && targetMask[m.target[0] * 7 + m.target[1]]);
    }
  });
});
