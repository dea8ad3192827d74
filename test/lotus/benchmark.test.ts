/**
 * Lotus benchmarks: the protocol's metrics on constructed cases with known answers, the file
 * formats the evaluation sets use (tar archives with long names, .npy, ZIP-compressed EXR,
 * OASIS's pickled numpy normals) written here byte by byte, every dataset layout as a tiny
 * folder or archive, `lotus-eval` end to end with shards and resume, and bad input.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { encodeGray16Png } from '../../sdk/lotus/outputs.ts';
import sharp from 'sharp';
import {
  alignDepth,
  depthErrors,
  normalErrorStats,
  poolNormalStats,
} from '../../sdk/lotus/benchmark/protocol.ts';
import { openDataset } from '../../sdk/lotus/benchmark/datasets.ts';
import { evaluateBenchmark, predictPaddedNormals } from '../../sdk/lotus/benchmark/run.ts';
import { Lotus } from '../../sdk/lotus/pipeline.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { readExr } from '../../sdk/data/exr.ts';
import { readNpy } from '../../sdk/data/npy.ts';
import { TarArchive } from '../../sdk/data/tar.ts';
import { demoCheckpoint } from '../../sdk/model/tiny/index.ts';
import { ConfigError, DataError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { runCli, tempDir } from '../helpers.ts';

// ---- writers for the formats (independent of the readers under test) ----

function tar(files: Record<string, Buffer>): Buffer {
  const blocks: Buffer[] = [];
  const header = (name: string, size: number, type: string) => {
    const h = Buffer.alloc(512);
    h.write(name.slice(0, 99), 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(size.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write(type, 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    return h;
  };
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
  for (const [name, data] of Object.entries(files)) {
    if (name.length > 99) {
      // GNU long name: a "././@LongLink" member holding the name
      const long = Buffer.from(name + '\0');
      blocks.push(header('././@LongLink', long.length, 'L'), pad(long));
    }
    blocks.push(header(`./${name}`, data.length, '0'), pad(data));
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

function npy(values: ArrayLike<number>, shape: number[], dtype = '<f4', fortran = false): Buffer {
  const dict = `{'descr': '${dtype}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const head = Buffer.alloc(total - 10, 0x20);
  head.write(dict, 0, 'latin1');
  head[head.length - 1] = 0x0a;
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  pre.writeUInt16LE(head.length, 8);
  const body = Buffer.alloc(values.length * (dtype === '|b1' ? 1 : 4));
  for (let i = 0; i < values.length; i++) {
    if (dtype === '|b1') body[i] = values[i] ? 1 : 0;
    else body.writeFloatLE(values[i], i * 4);
  }
  return Buffer.concat([pre, head, body]);
}

/** A ZIP-compressed scanline EXR with FLOAT channels B, G, R (as OpenCV writes). */
function exr(width: number, height: number, planes: Record<'B' | 'G' | 'R', Float32Array>): Buffer {
  const attr = (name: string, type: string, value: Buffer) => {
    const size = Buffer.alloc(4);
    size.writeInt32LE(value.length);
    return Buffer.concat([Buffer.from(`${name}\0${type}\0`, 'latin1'), size, value]);
  };
  const chlist = Buffer.concat([
    ...['B', 'G', 'R'].map((c) => {
      const b = Buffer.alloc(c.length + 1 + 16);
      b.write(c, 0, 'latin1');
      b.writeInt32LE(2, c.length + 1); // FLOAT
      b.writeInt32LE(1, c.length + 1 + 8);
      b.writeInt32LE(1, c.length + 1 + 12);
      return b;
    }),
    Buffer.from([0]),
  ]);
  const box = Buffer.alloc(16);
  [0, 0, width - 1, height - 1].forEach((v, i) => box.writeInt32LE(v, i * 4));
  const headerBytes = Buffer.concat([
    Buffer.from([0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0]),
    attr('channels', 'chlist', chlist),
    attr('compression', 'compression', Buffer.from([3])), // ZIP: 16 lines per block
    attr('dataWindow', 'box2i', box),
    attr('displayWindow', 'box2i', box),
    attr('lineOrder', 'lineOrder', Buffer.from([0])),
    Buffer.from([0]),
  ]);
  const blocks: Buffer[] = [];
  for (let y0 = 0; y0 < height; y0 += 16) {
    const raw: number[] = [];
    for (let y = y0; y < Math.min(y0 + 16, height); y++)
      for (const c of ['B', 'G', 'R'] as const)
        for (let x = 0; x < width; x++) {
          const b = Buffer.alloc(4);
          b.writeFloatLE(planes[c][y * width + x]);
          raw.push(...b);
        }
    // interleave: even bytes first, then odd; then delta-encode
    const t = [...raw.filter((_, i) => i % 2 === 0), ...raw.filter((_, i) => i % 2 === 1)];
    const d = t.map((v, i) => (i === 0 ? v : (v - t[i - 1] + 128 + 256) & 0xff));
    const z = deflateSync(Buffer.from(d));
    const head = Buffer.alloc(8);
    head.writeInt32LE(y0);
    head.writeInt32LE(z.length, 4);
    blocks.push(Buffer.concat([head, z]));
  }
  const offsets = Buffer.alloc(8 * blocks.length);
  let at = headerBytes.length + offsets.length;
  blocks.forEach((b, i) => {
    offsets.writeBigUInt64LE(BigInt(at), i * 8);
    at += b.length;
  });
  return Buffer.concat([headerBytes, offsets, ...blocks]);
}

/** OASIS's normal file: pickle protocol 2 of {min_y, max_y, min_x, max_x, normal: float32 array}. */
function oasisPickle(box: [number, number, number, number], roi: Float32Array, h: number, w: number): Buffer {
  const op = (...b: number[]) => Buffer.from(b);
  const uni = (s: string) => Buffer.concat([op(0x8c, s.length), Buffer.from(s, 'latin1')]);
  const int = (v: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(v, 1);
    return b;
  };
  const glob = (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`, 'latin1');
  const raw = Buffer.from(roi.buffer, roi.byteOffset, roi.byteLength);
  const bytes = Buffer.concat([
    op(0x42),
    (() => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(raw.length);
      return b;
    })(),
    raw,
  ]);
  return Buffer.concat([
    op(0x80, 2, 0x7d, 0x28),
    ...(['min_y', 'max_y', 'min_x', 'max_x'] as const).flatMap((k, i) => [uni(k), int(box[i])]),
    uni('normal'),
    glob('numpy.core.multiarray', '_reconstruct'),
    glob('numpy', 'ndarray'),
    int(0),
    op(0x85),
    op(0x43, 1, 0x62),
    op(0x87, 0x52), // _reconstruct(ndarray, (0,), b'b')
    op(0x28),
    int(1),
    int(h),
    int(w),
    int(3),
    op(0x87),
    glob('numpy', 'dtype'),
    uni('f4'),
    op(0x89, 0x88, 0x87, 0x52), // dtype('f4', False, True)
    op(0x28),
    int(3),
    uni('<'),
    op(0x4e, 0x4e, 0x4e),
    int(-1),
    int(-1),
    int(0),
    op(0x74, 0x62), // dtype state, BUILD
    op(0x89),
    bytes,
    op(0x74, 0x62), // array state (1, shape, dtype, False, raw), BUILD
    op(0x75, 0x2e), // SETITEMS, STOP
  ]);
}

/** A 16-bit greyscale PNG (the SDK's encoder writes it byte by byte, not through sharp). */
const png16 = async (w: number, h: number, f: (i: number) => number) =>
  encodeGray16Png(
    Uint16Array.from({ length: w * h }, (_, i) => f(i)),
    w,
    h,
  );
const rgbPng = (w: number, h: number, seed = 1) => {
  const r = new Rng(seed);
  return sharp(Buffer.from(Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r.uniform() * 255))), {
    raw: { width: w, height: h, channels: 3 },
  })
    .png()
    .toBuffer();
};

function put(root: string, rel: string, data: Buffer) {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), data);
}

const lines = (task: string, name: string, n: number) =>
  readFileSync(join(__dirnameOf(), '..', '..', 'assets', 'lotus-eval', task, `${name}.txt`), 'utf8')
    .trim()
    .split('\n')
    .slice(0, n);
function __dirnameOf() {
  return dirname(new URL(import.meta.url).pathname);
}

describe('Lotus benchmark protocol', () => {
  it('scores a prediction equal to ground truth up to a scale and shift: AbsRel 0, delta1 1', () => {
    const gt = Float32Array.from({ length: 400 }, (_, i) => 1 + (i % 37) / 5);
    const valid = Uint8Array.from(gt, (_, i) => (i % 11 ? 1 : 0));
    const pred = gt.map((g) => (g - 0.7) / 2.5); // depth = 2.5 pred + 0.7
    const a = alignDepth(pred, gt, valid, { width: 20, height: 20, minDepth: 1e-3, maxDepth: 100 });
    assert.ok(Math.abs(a.scale - 2.5) < 1e-4 && Math.abs(a.shift - 0.7) < 1e-4);
    const m = depthErrors(a.depth, gt, valid);
    assert.ok(m.abs_rel < 1e-6 && m.rmse < 1e-5 && m.silog_rmse < 1e-3);
    assert.equal(m.delta1, 1);
    // disparity models: an affine function of 1 / depth, aligned in disparity space
    const disp = gt.map((g) => 3 / g + 0.2);
    const d = alignDepth(disp, gt, valid, {
      width: 20,
      height: 20,
      disparity: true,
      minDepth: 1e-3,
      maxDepth: 100,
    });
    assert.ok(depthErrors(d.depth, gt, valid).abs_rel < 1e-5);
    // a known miss: everything 30% too far after a forced scale -> delta1 0, AbsRel 0.3
    assert.ok(
      Math.abs(
        depthErrors(
          gt.map((g) => g * 1.3),
          gt,
          valid,
        ).abs_rel - 0.3,
      ) < 1e-6,
    );
    assert.equal(
      depthErrors(
        gt.map((g) => g * 1.3),
        gt,
        valid,
      ).delta1,
      0,
    );
  });

  it('measures a known rotation of the normals as that angle, pooled over images', () => {
    const n = 500;
    const r = new Rng(3);
    const gt = new Float32Array(n * 3);
    const pred = new Float32Array(n * 3);
    const angle = 17; // degrees, about the z axis, on normals in the x-y plane
    for (let i = 0; i < n; i++) {
      const t = r.uniform() * 2 * Math.PI;
      gt.set([Math.cos(t), Math.sin(t), 0], i * 3);
      const u = t + (angle * Math.PI) / 180;
      pred.set([Math.cos(u), Math.sin(u), 0], i * 3);
    }
    const valid = new Uint8Array(n).fill(1);
    const s = normalErrorStats(pred, gt, valid);
    const pooled = poolNormalStats([s, s]);
    assert.ok(Math.abs(pooled.mean - angle) < 1e-6 && Math.abs(pooled.rmse - angle) < 1e-6);
    assert.ok(Math.abs(pooled.median - angle) <= 5e-4 + 1e-9);
    assert.deepEqual(pooled.within, { '5': 0, '7.5': 0, '11.25': 0, '22.5': 100, '30': 100 });
    assert.equal(pooled.pixels, 2 * n);
  });

  it('pools the median as np.median over all pixels, to 1e-3 degrees, however the images are split', () => {
    // per-pixel rotations of known angles; np.median of all of them, computed here in float64
    const r = new Rng(11);
    const images = [700, 333, 1200, 1].map((n) =>
      Float64Array.from({ length: n }, () => 13.9 + r.uniform() * 0.2),
    );
    const stats = images.map((angles) => {
      const gt = new Float32Array(angles.length * 3);
      const pred = new Float32Array(angles.length * 3);
      angles.forEach((a, i) => {
        gt.set([0, 0, 1], i * 3);
        pred.set([Math.sin((a * Math.PI) / 180), 0, Math.cos((a * Math.PI) / 180)], i * 3);
      });
      return normalErrorStats(pred, gt, new Uint8Array(angles.length).fill(1));
    });
    const npMedian = (a: number[]) => {
      const s = [...a].sort((x, y) => x - y);
      return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    };
    const all = images.flatMap((a) => [...a]);
    const want = npMedian(all);
    const whole = poolNormalStats(stats);
    assert.equal(whole.medianBin, 1e-3);
    assert.ok(Math.abs(whole.median - want) <= 1e-3, `median ${whole.median} vs np.median ${want}`);
    // an even count takes the mean of the two middle values, an odd one the middle value
    const even = poolNormalStats(stats.slice(0, 2));
    assert.ok(Math.abs(even.median - npMedian([...images[0], ...images[1]])) <= 1e-3);
    assert.ok(Math.abs(poolNormalStats([stats[3]]).median - images[3][0]) <= 5e-4 + 1e-9);
    // shards pooled in any order give the same number
    assert.equal(poolNormalStats([stats[2], stats[0], stats[3], stats[1]]).median, whole.median);
    // records from before the fine histogram still pool, at their 0.1-degree resolution
    const old = { ...stats[0], fine: undefined, hist: { '139': 700 } };
    assert.equal(poolNormalStats([old, stats[1]]).medianBin, 0.1);
  });
});

describe('evaluation file formats', () => {
  it('reads tar members (GNU long names), .npy (C and Fortran order), ZIP EXR and pickled numpy normals', () => {
    const dir = tempDir();
    const long = `${'deep/'.repeat(25)}file.bin`;
    writeFileSync(
      join(dir, 'a.tar'),
      tar({ 'x/y.txt': Buffer.from('hello'), [long]: Buffer.from([1, 2, 3]) }),
    );
    const t = TarArchive.open(join(dir, 'a.tar'));
    assert.equal(t.file('x/y.txt').toString(), 'hello');
    assert.deepEqual([...t.file(long)], [1, 2, 3]);
    t.close();
    assert.deepEqual(Array.from(readNpy(npy([1, 2, 3, 4, 5, 6], [2, 3]), 'c').data), [1, 2, 3, 4, 5, 6]);
    // Fortran order: stored column by column
    assert.deepEqual(
      Array.from(readNpy(npy([1, 4, 2, 5, 3, 6], [2, 3], '<f4', true), 'f').data),
      [1, 2, 3, 4, 5, 6],
    );
    const w = 5;
    const h = 20; // two ZIP blocks (16 + 4 lines)
    const planes = { B: new Float32Array(w * h), G: new Float32Array(w * h), R: new Float32Array(w * h) };
    for (let i = 0; i < w * h; i++) [planes.R[i], planes.G[i], planes.B[i]] = [i / 100, -i / 50, 0.5];
    const img = readExr(exr(w, h, planes), 'test.exr');
    assert.deepEqual([img.width, img.height], [w, h]);
    assert.deepEqual(Array.from(img.channels.get('R')!), Array.from(planes.R));
    assert.deepEqual(Array.from(img.channels.get('G')!), Array.from(planes.G));
  });
});

describe('benchmark dataset layouts and lotus-eval', function () {
  this.timeout(600_000);
  let depthModel: string;
  let normalModel: string;
  before(async () => {
    depthModel = await demoCheckpoint('lotus-g', 'lotus-depth-g-demo');
    normalModel = await demoCheckpoint('lotus-d', 'lotus-normal-d-demo');
  });

  /** The first two NYUv2 test samples: 640x480, 16-bit millimetre depth. */
  async function nyuFiles(): Promise<Record<string, Buffer>> {
    const files: Record<string, Buffer> = {};
    for (const [k, l] of lines('depth', 'nyuv2', 2).entries()) {
      const [rgb, depth, filled] = l.split(/\s+/);
      files[rgb] = await rgbPng(640, 480, k);
      files[depth] = await png16(640, 480, (i) => 500 + (i % 640) * 10);
      files[filled] = files[depth];
    }
    return files;
  }

  it('reads NYUv2 from its archive: millimetres, the Eigen crop, the depth range', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'nyu_labeled_extracted.tar'), tar(await nyuFiles()));
    const { spec, source } = openDataset('depth', 'nyuv2', root);
    const s = await spec.load(source, spec.entries[0]);
    source.close();
    assert.equal(s.gt[0], 0.5);
    assert.equal(s.gt[639], Math.fround(6.89));
    assert.equal(s.valid[0], 0, 'outside the Eigen crop');
    assert.equal(s.valid[100 * 640 + 100], 1);
    assert.equal(
      s.valid.reduce((a, v) => a + v, 0),
      (471 - 45) * (601 - 41),
    );
  });

  it('runs lotus-eval (depth) end to end; shards merged equal one run; a killed run resumes', async () => {
    const root = tempDir();
    for (const [rel, data] of Object.entries(await nyuFiles())) put(root, rel, data);
    const base = (out: string, extra: string[] = []) => [
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'nyuv2',
      '--root',
      root,
      '--limit',
      '2',
      '--processing-res',
      '64',
      '--out',
      out,
      ...extra,
    ];
    const whole = tempDir();
    const r = await runCli(base(whole));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Lotus depth on nyuv2: 2 images/);
    assert.match(r.out, /\| AbsRel \(%\) \| [\d.]+ \| - \|/);
    const results = JSON.parse(readFileSync(join(whole, 'results.json'), 'utf8'));
    assert.equal(results.images, 2);
    assert.ok(results.depth.delta1 >= 0 && results.depth.delta1 <= 1);
    const parent = tempDir();
    for (const k of [1, 2]) assert.equal((await runCli(base(parent, ['--shard', `${k}/2`]))).code, 0);
    const merged = tempDir();
    const m = await runCli(['lotus-eval', '--merge', parent, '--out', merged]);
    assert.equal(m.code, 0, m.err);
    const strip = (p: string) => ({
      ...JSON.parse(readFileSync(join(p, 'results.json'), 'utf8')),
      shard: null,
    });
    assert.deepEqual(strip(merged), strip(whole));
    // resume: one record kept, the other recomputed
    const resumed = tempDir();
    assert.equal((await runCli(base(resumed))).code, 0);
    const first = readFileSync(join(resumed, 'images.jsonl'), 'utf8').split('\n')[0];
    writeFileSync(join(resumed, 'images.jsonl'), first + '\n{"index": 1, "id": "cut sh');
    const again = await runCli(base(resumed, ['--resume']));
    assert.equal(again.code, 0, again.err);
    assert.match(again.err, /resuming: 1 image/);
    assert.deepEqual(strip(resumed), strip(whole));
    // records of other kernels never join these: resuming with them is refused, naming them
    const mixed = await runCli(base(resumed, ['--resume', '--linear', 'int8']));
    assert.equal(mixed.code, 2);
    assert.match(
      mixed.err,
      /other settings:\n {2}unet: \{"attention":"fused"\} vs \{"attention":"fused","linear":"int8","int8WeightBits":7\}/,
    );
    const exact = await runCli(base(resumed, ['--resume', '--attention', 'exact']));
    assert.equal(exact.code, 2);
    assert.match(exact.err, /other settings:\n {2}unet: \{"attention":"fused"\} vs undefined/);
    // paper numbers given by the user fill the paper column
    const paper = join(tempDir(), 'paper.json');
    writeFileSync(paper, JSON.stringify({ nyuv2: { abs_rel: 5.4, delta1: 96.6 } }));
    const withPaper = await runCli(base(tempDir(), ['--paper-numbers', paper]));
    assert.match(withPaper.out, /\| AbsRel \(%\) \| [\d.]+ \| 5.40 \|/);
  });

  it('reads DIODE (.npy depth and mask), KITTI (benchmark crop), ETH3D (raw float32) and ScanNet layouts', async () => {
    const root = tempDir();
    const [rgb, depth, mask] = lines('depth', 'diode', 1)[0].split(/\s+/);
    put(root, rgb, await rgbPng(32, 24));
    put(
      root,
      depth,
      npy(
        Float32Array.from({ length: 32 * 24 }, (_, i) => 1 + i / 100),
        [24, 32, 1],
      ),
    );
    put(
      root,
      mask,
      npy(
        Uint8Array.from({ length: 32 * 24 }, (_, i) => (i < 100 ? 0 : 1)),
        [24, 32],
        '|b1',
      ),
    );
    let { spec, source } = openDataset('depth', 'diode', root);
    let s = await spec.load(source, spec.entries[0]);
    assert.equal(spec.processingRes, 640);
    assert.ok(Math.abs(s.gt[5] - 1.05) < 1e-6);
    assert.equal(
      s.valid.reduce((a, v) => a + v, 0),
      32 * 24 - 100,
    );

    const kroot = tempDir();
    const [krgb, kdepth] = lines('depth', 'kitti', 1)[0].split(/\s+/);
    put(kroot, krgb, await rgbPng(1242, 375));
    put(kroot, kdepth, await png16(1242, 375, (i) => (i % 1242) * 50));
    ({ spec, source } = openDataset('depth', 'kitti', kroot));
    s = await spec.load(source, spec.entries[0]);
    assert.deepEqual([s.rgb.width, s.rgb.height], [1216, 352]);
    assert.equal(s.gt[0], (13 * 50) / 256, 'left margin (1242 - 1216) / 2 = 13, KITTI units 1/256 m');
    assert.equal(s.valid[0], 0, 'outside the Eigen mask');

    const eroot = tempDir();
    const [ergb, edepth] = lines('depth', 'eth3d', 1)[0].split(/\s+/);
    put(eroot, ergb, await rgbPng(16, 12));
    const raw = Buffer.alloc(16 * 12 * 4);
    for (let i = 0; i < 16 * 12; i++) raw.writeFloatLE(i === 0 ? Infinity : 2 + i, i * 4);
    put(eroot, edepth, raw);
    ({ spec, source } = openDataset('depth', 'eth3d', eroot));
    s = await spec.load(source, spec.entries[0]);
    assert.deepEqual([s.gt[0], s.valid[0], s.gt[1], s.valid[1]], [0, 0, 3, 1]);
    assert.equal(spec.alignmentMaxRes, 1024);
  });

  it('reads DSINE normals: PNG (NYUv2), EXR (iBims) and pickled OASIS boxes; lotus-eval scores normals', async () => {
    const root = tempDir();
    const entry = lines('normal', 'ibims', 1)[0];
    put(join(root, 'dsine_eval', 'ibims'), entry, await rgbPng(24, 20));
    const planes = { B: new Float32Array(480).fill(1), G: new Float32Array(480), R: new Float32Array(480) };
    planes.B[0] = 0; // no normal: invalid
    put(join(root, 'dsine_eval', 'ibims'), entry.replace('_img.png', '_normal.exr'), exr(24, 20, planes));
    let { spec, source } = openDataset('normal', 'ibims', root);
    let s = await spec.load(source, spec.entries[0]);
    assert.deepEqual([s.gt[3], s.gt[4], s.gt[5], s.valid[0], s.valid[1]], [0, 0, 1, 0, 1]);

    const oroot = tempDir();
    const oentry = lines('normal', 'oasis', 1)[0];
    put(oroot, oentry, await rgbPng(10, 8));
    const roi = Float32Array.from({ length: 2 * 3 * 3 }, (_, i) => [0.6, 0, 0.8][i % 3]);
    put(oroot, oentry.replace('_img.png', '_normal.pkl'), oasisPickle([2, 3, 4, 6], roi, 2, 3));
    ({ spec, source } = openDataset('normal', 'oasis', oroot));
    s = await spec.load(source, spec.entries[0]);
    const i = 2 * 10 + 4; // (y 2, x 4): inside the box, x and y flipped to the other sets' axes
    assert.deepEqual(
      Array.from(s.gt.subarray(i * 3, i * 3 + 3)).map((v) => Math.round(v * 10) / 10 + 0),
      [-0.6, 0, 0.8],
    );
    assert.equal(
      s.valid.reduce((a, v) => a + v, 0),
      6,
    );

    const nroot = tempDir();
    for (const [k, l] of lines('normal', 'nyuv2', 2).entries()) {
      put(nroot, l, await rgbPng(32, 24, k));
      const n = Buffer.alloc(32 * 24 * 3, 128);
      for (let p = 0; p < 32 * 24; p++) n[p * 3 + 2] = 255;
      put(
        nroot,
        l.replace('_img.png', '_normal.png'),
        await sharp(n, { raw: { width: 32, height: 24, channels: 3 } })
          .png()
          .toBuffer(),
      );
    }
    const normalArgs = (o: string, extra: string[]) => [
      'lotus-eval',
      '--model',
      normalModel,
      '--task',
      'normal',
      '--dataset',
      'nyuv2',
      '--root',
      nroot,
      '--limit',
      '2',
      '--out',
      o,
      ...extra,
    ];
    const out = tempDir();
    const r = await runCli(normalArgs(out, []));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Lotus normal on nyuv2: 2 images/);
    assert.match(r.out, /\| median angle \(deg\) \| [\d.]+ \| - \|/);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.equal(results.normal.pixels, 2 * 32 * 24);
    // shards merged give the whole run's numbers, the pooled median included
    const parent = tempDir();
    for (const k of [1, 2]) assert.equal((await runCli(normalArgs(parent, ['--shard', `${k}/2`]))).code, 0);
    const merged = tempDir();
    assert.equal((await runCli(['lotus-eval', '--merge', parent, '--out', merged])).code, 0);
    const m = JSON.parse(readFileSync(join(merged, 'results.json'), 'utf8'));
    assert.deepEqual(m.normal, results.normal);
    assert.deepEqual(m.protocol, results.protocol);
    assert.equal(results.normal.medianBin, 1e-3);
    // merges never write into a shard, over a finished run without --overwrite, or over an eval run
    const into = await runCli(['lotus-eval', '--merge', parent, '--out', join(parent, 'shard-2-of-2')]);
    assert.equal(into.code, 2);
    assert.match(into.err, /one of the folders this merge reads/);
    const over = await runCli(['lotus-eval', '--merge', parent, '--out', merged]);
    assert.match(over.err, /already holds a lotus-eval run; pass --overwrite/);
    const evalRun = tempDir();
    writeFileSync(join(evalRun, 'run.json'), JSON.stringify({ pairList: 'x', shard: null }));
    writeFileSync(join(evalRun, 'table1.md'), 'T');
    const foreign = await runCli(['lotus-eval', '--merge', parent, '--out', evalRun, '--overwrite']);
    assert.match(foreign.err, /holds an eval run, not a lotus-eval one; it is left as it is/);
    assert.equal(readFileSync(join(evalRun, 'table1.md'), 'utf8'), 'T');
  });

  /** One sample of each layout, at a size the protocol's crops and masks accept. */
  async function layout(task: 'depth' | 'normal', dataset: string): Promise<string> {
    const root = tempDir();
    if (dataset === 'custom') {
      put(root, 'images/a.png', await rgbPng(40, 30));
      put(
        root,
        `${task}/a.npy`,
        task === 'depth'
          ? npy(
              Float32Array.from({ length: 1200 }, (_, i) => 1 + i / 500),
              [30, 40],
            )
          : npy(
              Float32Array.from({ length: 3600 }, (_, i) => [0, 0.6, 0.8][i % 3]),
              [30, 40, 3],
            ),
      );
      return root;
    }
    const line = lines(task, dataset, 1)[0];
    if (task === 'normal') {
      const [w, h] = dataset === 'oasis' ? [10, 8] : [24, 20];
      put(root, line, await rgbPng(w, h));
      if (dataset === 'oasis') {
        const roi = Float32Array.from({ length: 2 * 3 * 3 }, (_, i) => [0.6, 0, 0.8][i % 3]);
        put(root, line.replace('_img.png', '_normal.pkl'), oasisPickle([2, 3, 4, 6], roi, 2, 3));
      } else if (dataset === 'ibims' || dataset === 'sintel') {
        const planes = {
          B: new Float32Array(w * h).fill(0.8),
          G: new Float32Array(w * h).fill(0.6),
          R: new Float32Array(w * h),
        };
        put(root, line.replace('_img.png', '_normal.exr'), exr(w, h, planes));
      } else {
        const n = Buffer.alloc(w * h * 3, 128);
        for (let p = 0; p < w * h; p++) n[p * 3 + 2] = 240;
        put(
          root,
          line.replace('_img.png', '_normal.png'),
          await sharp(n, { raw: { width: w, height: h, channels: 3 } })
            .png()
            .toBuffer(),
        );
      }
      return root;
    }
    const [rgb, depth, third] = line.split(/\s+/);
    const [w, h] = {
      nyuv2: [640, 480],
      kitti: [1242, 375],
      eth3d: [16, 12],
      scannet: [40, 30],
      diode: [32, 24],
    }[dataset as 'nyuv2'];
    put(root, rgb, await rgbPng(w, h));
    if (dataset === 'eth3d') {
      const raw = Buffer.alloc(w * h * 4);
      for (let i = 0; i < w * h; i++) raw.writeFloatLE(2 + i / 10, i * 4);
      put(root, depth, raw);
    } else if (dataset === 'diode') {
      put(
        root,
        depth,
        npy(
          Float32Array.from({ length: w * h }, (_, i) => 1 + i / 100),
          [h, w, 1],
        ),
      );
      put(root, third, npy(new Uint8Array(w * h).fill(1), [h, w], '|b1'));
    } else {
      const unit = dataset === 'kitti' ? 256 : 1000;
      put(
        root,
        depth,
        await png16(w, h, (i) => Math.round(unit * (1 + (i % w) / w + Math.floor(i / w) / h))),
      );
      if (third && dataset === 'nyuv2') put(root, third, await png16(w, h, () => 1000));
    }
    return root;
  }

  it('lotus-eval without a resolution flag runs each layout as the protocol and evaluateBenchmark do', async () => {
    // the protocol's resolution: the dataset's config, else each image's own size
    const cases: [task: 'depth' | 'normal', dataset: string, res: number][] = [
      ['depth', 'nyuv2', 0],
      ['depth', 'kitti', 0],
      ['depth', 'eth3d', 768],
      ['depth', 'scannet', 0],
      ['depth', 'diode', 640],
      ['depth', 'custom', 0],
      ['normal', 'nyuv2', 0],
      ['normal', 'scannet', 0],
      ['normal', 'ibims', 0],
      ['normal', 'sintel', 0],
      ['normal', 'oasis', 0],
      ['normal', 'custom', 0],
    ];
    const models = { depth: await Lotus.fromModel(depthModel), normal: await Lotus.fromModel(normalModel) };
    try {
      for (const [task, dataset, res] of cases) {
        const root = await layout(task, dataset);
        const out = tempDir();
        const r = await runCli([
          'lotus-eval',
          '--model',
          task === 'depth' ? depthModel : normalModel,
          '--task',
          task,
          '--dataset',
          dataset,
          '--root',
          root,
          '--limit',
          '1',
          '--out',
          out,
        ]);
        assert.equal(r.code, 0, `${task} ${dataset}: ${r.err}`);
        const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
        assert.equal(results.processingRes, res, `${task} ${dataset}`);
        assert.equal(results.protocol.processingRes, res);
        assert.equal(results.protocol.processingResSource, res ? 'dataset' : 'native');
        assert.deepEqual(
          results.protocol.departures,
          dataset === 'custom' ? ['custom dataset: no published protocol'] : [],
        );
        assert.equal(results.images, 1, `${task} ${dataset}: the sample counts`);
        const { spec, source } = openDataset(task, dataset as 'nyuv2', root);
        spec.entries = spec.entries.slice(0, 1);
        const sdk = await evaluateBenchmark(models[task], spec, source, { task });
        source.close();
        assert.deepEqual(
          task === 'depth' ? results.depth : results.normal,
          task === 'depth' ? sdk.depth : sdk.normal,
          `${task} ${dataset}: the CLI's metrics are the SDK's`,
        );
        const table = readFileSync(join(out, 'table.md'), 'utf8');
        const resText = res
          ? `${res} (the dataset's, as the protocol)`
          : "native: each image's own size (the protocol's)";
        assert.ok(table.includes(`| ${dataset} | 1 | ${resText} |`), table);
        assert.match(
          table,
          task === 'depth' ? /scale and shift in (depth|disparity) space/ : /none \(angles\)/,
        );
      }
    } finally {
      await models.depth.dispose();
      await models.normal.dispose();
    }
    // an explicit resolution is an override, recorded and named as a departure; 0 and native mean native
    const root = await layout('depth', 'diode');
    for (const [flag, res] of [
      ['96', 96],
      ['0', 0],
      ['native', 0],
    ] as const) {
      const out = tempDir();
      const r = await runCli([
        'lotus-eval',
        '--model',
        depthModel,
        '--task',
        'depth',
        '--dataset',
        'diode',
        '--root',
        root,
        '--limit',
        '1',
        '--processing-res',
        flag,
        '--out',
        out,
      ]);
      assert.equal(r.code, 0, r.err);
      const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      assert.equal(results.processingRes, res);
      assert.equal(results.protocol.processingResSource, 'override');
      assert.deepEqual(results.protocol.departures, [
        `processing resolution ${res || 'native'} (protocol: 640)`,
      ]);
      assert.match(r.err, /not the protocol's run: processing resolution/);
      assert.match(readFileSync(join(out, 'table.md'), 'utf8'), /\| no: processing resolution/);
    }
    for (const bad of ['-1', '4', '1.5', 'nan', ''])
      assert.match(
        (
          await runCli([
            'lotus-eval',
            '--model',
            depthModel,
            '--task',
            'depth',
            '--dataset',
            'diode',
            '--root',
            root,
            `--processing-res=${bad}`,
            '--out',
            tempDir(),
          ])
        ).err,
        /--processing-res: expected 0 or native .* or an integer >= 8/,
      );
  });

  it('a custom folder: images/ + depth/ (.npy metres or PNG with --depth-scale) + mask/', async () => {
    const root = tempDir();
    put(root, 'images/a.png', await rgbPng(64, 64));
    put(root, 'depth/a.png', await png16(64, 64, (i) => 1000 + i));
    put(
      root,
      'mask/a.png',
      await sharp(Buffer.alloc(4096, 255), { raw: { width: 64, height: 64, channels: 1 } })
        .png()
        .toBuffer(),
    );
    const bad = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'custom',
      '--root',
      root,
      '--out',
      tempDir(),
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /PNG depth needs its unit: pass --depth-scale/);
    const ok = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'custom',
      '--root',
      root,
      '--depth-scale',
      '1000',
      '--out',
      tempDir(),
    ]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /on custom: 1 images/);
    // an image without its ground truth is named, not silently dropped
    put(root, 'images/b.png', await rgbPng(64, 64));
    const out = tempDir();
    const named = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'custom',
      '--root',
      root,
      '--depth-scale',
      '1000',
      '--processing-res',
      '32',
      '--out',
      out,
    ]);
    assert.equal(named.code, 0, named.err);
    assert.match(
      named.err,
      /1 image\(s\) in .*images have no depth\/ file with the same stem and are not evaluated: b\.png/,
    );
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).withoutGroundTruth, [
      'b.png',
    ]);
  });

  it('bad input: wrong sizes and units, empty masks, the wrong task, a wrong layout', async () => {
    const root = tempDir();
    const [rgb, depth] = lines('depth', 'scannet', 1)[0].split(/\s+/);
    put(root, rgb, await rgbPng(20, 10));
    put(root, depth, await png16(10, 10, () => 1000));
    const { spec, source } = openDataset('depth', 'scannet', root);
    await assert.rejects(
      spec.load(source, spec.entries[0]),
      (e: Error) => e instanceof DataError && /ground truth is 10x10, the image 20x10/.test(e.message),
    );
    put(
      root,
      depth,
      await sharp(Buffer.alloc(200, 9), { raw: { width: 20, height: 10, channels: 1 } })
        .png()
        .toBuffer(),
    );
    await assert.rejects(
      spec.load(source, spec.entries[0]),
      /expected a 16-bit PNG depth map \(millimetres\), got 8-bit/,
    );
    // an all-invalid image is skipped and said so, not averaged in
    put(root, depth, await png16(20, 10, () => 0));
    const out = tempDir();
    const r = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'scannet',
      '--root',
      root,
      '--limit',
      '1',
      '--processing-res',
      '32',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /0 images \(1 skipped: no valid ground truth\)/);
    // a depth checkpoint asked for normals
    const n = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'normal',
      '--dataset',
      'nyuv2',
      '--root',
      tempDir(),
      '--out',
      tempDir(),
    ]);
    assert.equal(n.code, 2);
    assert.match(n.err, /not a nyuv2 normal evaluation set|cannot be evaluated on normal/);
    // a folder in the wrong layout names the file it expected
    const w = await runCli([
      'lotus-eval',
      '--model',
      depthModel,
      '--task',
      'depth',
      '--dataset',
      'kitti',
      '--root',
      tempDir(),
      '--out',
      tempDir(),
    ]);
    assert.equal(w.code, 2);
    assert.match(
      w.err,
      /not a kitti depth evaluation set: expected 2011_09_26\/2011_09_26_drive_0002_sync\/image_02\/data\/0000000069.png/,
    );
    assert.throws(() => openDataset('normal', 'kitti', tempDir()), ConfigError);
  });

  it("predicts normals on the reference's padded input: centred to multiples of 32 with DSINE's values", async () => {
    const model = await Lotus.fromModel(normalModel);
    try {
      const [W, H] = [24, 20];
      const rgb = {
        width: W,
        height: H,
        data: Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 7) % 256),
      };
      const got = await predictPaddedNormals(model, rgb, [0]);
      assert.deepEqual(got.normal.shape, [1, H, W, 3]);
      // the same by hand: 32 x 32, image at (4, 6), ImageNet-normalised zeros around it
      const pad = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225];
      const px = new Float32Array(3 * 32 * 32).map((_, i) => pad[Math.floor(i / 1024)]);
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          for (let c = 0; c < 3; c++)
            px[c * 1024 + (y + 6) * 32 + x + 4] = rgb.data[(y * W + x) * 3 + c] / 127.5 - 1;
      const full = (
        await model.predictPixels(new Tensor(px, [1, 3, 32, 32]), { task: 'normal', processingRes: 0 })
      ).normal!;
      for (const [y, x] of [
        [0, 0],
        [19, 23],
        [7, 11],
      ])
        for (let c = 0; c < 3; c++)
          assert.equal(got.normal.data[(y * W + x) * 3 + c], full.data[((y + 6) * 32 + x + 4) * 3 + c]);
    } finally {
      await model.dispose();
    }
  });
});
