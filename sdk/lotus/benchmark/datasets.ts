/**
 * The zero-shot benchmark datasets as the public Marigold / Lotus evaluation code reads them:
 * each dataset's split list (shipped in assets/lotus-eval), its ground-truth decoding (units),
 * valid-depth range, crops (Eigen for NYUv2, KITTI benchmark crop + Eigen mask) and processing
 * resolution; normals from DSINE's evaluation set. A dataset is read from its evaluation archive
 * (the .tar those codes download) or from the extracted folder, and a custom folder layout
 * (images/ + depth/ or normal/ + optional mask/) serves users' own data.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { ConfigError, DataError } from '../../core/errors.ts';
import { assetPath } from '../../core/package-root.ts';
import type { RgbImage } from '../../core/rgb.ts';
import { decodeImage } from '../../data/image.ts';
import { readExr } from '../../data/exr.ts';
import { readNpy } from '../../data/npy.ts';
import { TarArchive } from '../../data/tar.ts';
import { unpickle, NumpyArray } from '../../aggregation/torch-load.ts';
import { readDepthPng } from '../outputs.ts';

export const DEPTH_DATASETS = ['nyuv2', 'kitti', 'eth3d', 'scannet', 'diode'] as const;
export const NORMAL_DATASETS = ['nyuv2', 'scannet', 'ibims', 'sintel', 'oasis'] as const;
export const BENCHMARK_DATASETS = [
  'nyuv2',
  'kitti',
  'eth3d',
  'scannet',
  'diode',
  'ibims',
  'sintel',
  'oasis',
  'custom',
] as const;
export type BenchmarkDataset = (typeof BENCHMARK_DATASETS)[number];

/** Files of a dataset: an extracted folder or an evaluation archive. */
export interface DataSource {
  where: string;
  has(rel: string): boolean;
  read(rel: string): Buffer;
  close(): void;
}

export function folderSource(dir: string): DataSource {
  return {
    where: dir,
    has: (rel) => existsSync(join(dir, rel)),
    read: (rel) => {
      const p = join(dir, rel);
      if (!existsSync(p)) throw new DataError(`${dir}: missing ${rel}`);
      return readFileSync(p);
    },
    close: () => undefined,
  };
}

export function tarSource(path: string): DataSource {
  const tar = TarArchive.open(path);
  return { where: path, has: (rel) => tar.has(rel), read: (rel) => tar.file(rel), close: () => tar.close() };
}

/** One evaluation sample: the image and its ground truth. */
export interface Sample {
  id: string;
  rgb: RgbImage;
  /** Depth in metres [H*W] (0 = none), or unit normals [H*W*3]. */
  gt: Float32Array;
  /** Pixels that count. */
  valid: Uint8Array;
}

export interface DatasetSpec {
  name: BenchmarkDataset;
  task: 'depth' | 'normal';
  /** Lines of the split list, each one sample. */
  entries: string[];
  /** Where the archive usually is under --root, tried in order. */
  archives: string[];
  minDepth: number;
  maxDepth: number;
  /** The protocol's processing resolution (longest edge), when the dataset sets one. */
  processingRes?: number;
  /** Least-squares alignment on a copy downsampled (nearest) to this longest edge. */
  alignmentMaxRes?: number;
  /** Custom sets: images left out because they have no ground-truth file. */
  withoutGroundTruth?: string[];
  load(src: DataSource, entry: string): Promise<Sample>;
}

function splitList(task: 'depth' | 'normal', name: string): string[] {
  return readFileSync(assetPath(`lotus-eval/${task}/${name}.txt`), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** A 16-bit PNG as numbers / `divisor`, refusing 8-bit files (their units would be wrong). */
async function png16(
  buf: Buffer,
  what: string,
  unit: string,
  divisor = 1,
): Promise<{ data: Float32Array; width: number; height: number }> {
  const meta = await sharp(buf).metadata();
  if (meta.depth !== 'ushort')
    throw new DataError(
      `${what}: expected a 16-bit PNG depth map (${unit}), got ${meta.depth === 'uchar' ? '8-bit' : String(meta.depth)} ${meta.format}`,
    );
  return readDepthPng(buf, divisor, what);
}

/** An "rgb depth" split line: the image and its 16-bit PNG depth in metres (value / divisor), same size. */
async function rgbWithPngDepth(src: DataSource, entry: string, divisor: number, unit: string) {
  const [rgbPath, depthPath] = entry.split(/\s+/);
  const rgb = await rgbOf(src.read(rgbPath), `${src.where}:${rgbPath}`);
  const d = await png16(src.read(depthPath), `${src.where}:${depthPath}`, unit, divisor);
  checkSize(`${src.where}:${depthPath}`, d, rgb);
  return { rgbPath, rgb, gt: d.data };
}

async function rgbOf(buf: Buffer, what: string): Promise<RgbImage> {
  try {
    return await decodeImage(buf);
  } catch (e) {
    throw new DataError(`${what}: ${(e as Error).message}`, { cause: e });
  }
}

function checkSize(what: string, got: { width: number; height: number }, rgb: RgbImage): void {
  if (got.width !== rgb.width || got.height !== rgb.height)
    throw new DataError(
      `${what}: ground truth is ${got.width}x${got.height}, the image ${rgb.width}x${rgb.height}`,
    );
}

function rangeMask(depth: Float32Array, min: number, max: number): Uint8Array {
  return Uint8Array.from(depth, (d) => (d > min && d < max ? 1 : 0));
}

function crop<T extends { length: number } & ArrayLike<number>>(
  a: T,
  w: number,
  channels: number,
  box: { x: number; y: number; w: number; h: number },
  make: (n: number) => T & { [i: number]: number },
): T {
  const out = make(box.w * box.h * channels);
  for (let y = 0; y < box.h; y++)
    for (let x = 0; x < box.w; x++)
      for (let c = 0; c < channels; c++)
        out[(y * box.w + x) * channels + c] = a[((y + box.y) * w + x + box.x) * channels + c];
  return out;
}

/** The KITTI benchmark crop: the bottom 352 rows, 1216 columns centred. */
function kittiCrop(width: number, height: number) {
  return { x: Math.trunc((width - 1216) / 2), y: height - 352, w: 1216, h: 352 };
}

/** Eigen's evaluation mask for KITTI (fractions of the cropped size) and NYUv2 (fixed box). */
function boxMask(w: number, h: number, y0: number, y1: number, x0: number, x1: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

const and = (a: Uint8Array, b: Uint8Array) => a.map((v, i) => v & b[i]);

function depthSpecs(): Record<string, Omit<DatasetSpec, 'entries'> & { list: string }> {
  return {
    nyuv2: {
      name: 'nyuv2',
      task: 'depth',
      list: 'nyuv2',
      archives: ['nyuv2/nyu_labeled_extracted.tar', 'nyu_labeled_extracted.tar'],
      minDepth: 1e-3,
      maxDepth: 10,
      async load(src, entry) {
        const { rgbPath, rgb, gt } = await rgbWithPngDepth(src, entry, 1000, 'millimetres');
        const valid = and(
          rangeMask(gt, this.minDepth, this.maxDepth),
          boxMask(rgb.width, rgb.height, 45, 471, 41, 601),
        );
        return { id: rgbPath, rgb, gt, valid };
      },
    },
    kitti: {
      name: 'kitti',
      task: 'depth',
      list: 'kitti',
      archives: ['kitti/kitti_eigen_split_test.tar', 'kitti_eigen_split_test.tar'],
      minDepth: 1e-5,
      maxDepth: 80,
      async load(src, entry) {
        const { rgbPath, rgb: full, gt: depth } = await rgbWithPngDepth(src, entry, 256, '1/256 metres');
        if (full.width < 1216 || full.height < 352)
          throw new DataError(
            `${src.where}:${rgbPath}: ${full.width}x${full.height} is smaller than KITTI's 1216x352 benchmark crop`,
          );
        const box = kittiCrop(full.width, full.height);
        const rgb = {
          width: box.w,
          height: box.h,
          data: crop(full.data, full.width, 3, box, (n) => new Uint8Array(n)),
        };
        const gt = crop(depth, full.width, 1, box, (n) => new Float32Array(n));
        const [h, w] = [box.h, box.w];
        const eigen = boxMask(
          w,
          h,
          Math.trunc(0.3324324 * h),
          Math.trunc(0.91351351 * h),
          Math.trunc(0.0359477 * w),
          Math.trunc(0.96405229 * w),
        );
        return { id: rgbPath, rgb, gt, valid: and(rangeMask(gt, this.minDepth, this.maxDepth), eigen) };
      },
    },
    eth3d: {
      name: 'eth3d',
      task: 'depth',
      list: 'eth3d',
      archives: ['eth3d/eth3d.tar', 'eth3d.tar'],
      minDepth: 1e-5,
      maxDepth: Infinity,
      processingRes: 768,
      alignmentMaxRes: 1024,
      async load(src, entry) {
        const [rgbPath, depthPath] = entry.split(/\s+/);
        const rgb = await rgbOf(src.read(rgbPath), `${src.where}:${rgbPath}`);
        const raw = src.read(depthPath);
        // ETH3D's ground truth: raw little-endian float32, image-sized; inf = no measurement
        if (raw.length !== rgb.width * rgb.height * 4)
          throw new DataError(
            `${src.where}:${depthPath}: ${raw.length} bytes, expected ${rgb.width * rgb.height * 4} (float32 ${rgb.width}x${rgb.height} depth in metres)`,
          );
        const gt = new Float32Array(rgb.width * rgb.height);
        for (let i = 0; i < gt.length; i++) {
          const v = raw.readFloatLE(i * 4);
          gt[i] = Number.isFinite(v) ? v : 0;
        }
        return { id: rgbPath, rgb, gt, valid: rangeMask(gt, this.minDepth, this.maxDepth) };
      },
    },
    scannet: {
      name: 'scannet',
      task: 'depth',
      list: 'scannet',
      archives: ['scannet/scannet_val_sampled_800_1.tar', 'scannet_val_sampled_800_1.tar'],
      minDepth: 1e-3,
      maxDepth: 10,
      async load(src, entry) {
        const { rgbPath, rgb, gt } = await rgbWithPngDepth(src, entry, 1000, 'millimetres');
        return { id: rgbPath, rgb, gt, valid: rangeMask(gt, this.minDepth, this.maxDepth) };
      },
    },
    diode: {
      name: 'diode',
      task: 'depth',
      list: 'diode',
      archives: ['diode/diode_val.tar', 'diode_val.tar'],
      minDepth: 0.6,
      maxDepth: 350,
      processingRes: 640,
      async load(src, entry) {
        const [rgbPath, depthPath, maskPath] = entry.split(/\s+/);
        const rgb = await rgbOf(src.read(rgbPath), `${src.where}:${rgbPath}`);
        const depth = readNpy(src.read(depthPath), `${src.where}:${depthPath}`);
        const mask = readNpy(src.read(maskPath), `${src.where}:${maskPath}`);
        for (const [what, a] of [
          [depthPath, depth],
          [maskPath, mask],
        ] as const)
          if (a.data.length !== rgb.width * rgb.height)
            throw new DataError(
              `${src.where}:${what}: ${a.shape.join('x')} values, the image is ${rgb.height}x${rgb.width}`,
            );
        // DIODE's own validity mask decides, not the depth range
        return {
          id: rgbPath,
          rgb,
          gt: Float32Array.from(depth.data),
          valid: Uint8Array.from(mask.data, (v) => (v ? 1 : 0)),
        };
      },
    },
  };
}

/** DSINE's normal files: `<scene>/<name>_img.<ext>` with `_normal.png|exr|pkl` beside it. */
function normalSpec(name: (typeof NORMAL_DATASETS)[number]): Omit<DatasetSpec, 'entries'> & { list: string } {
  const ext = name === 'ibims' || name === 'sintel' ? 'exr' : name === 'oasis' ? 'pkl' : 'png';
  return {
    name,
    task: 'normal',
    list: name,
    archives: [`dsine_eval/${name}`, name],
    minDepth: 0,
    maxDepth: Infinity,
    async load(src, entry) {
      const normalPath = entry.replace(/_img(\.\w+)$/, `_normal.${ext}`);
      const rgb = await rgbOf(src.read(entry), `${src.where}:${entry}`);
      const n = rgb.width * rgb.height;
      const gt = new Float32Array(n * 3);
      const valid = new Uint8Array(n);
      const what = `${src.where}:${normalPath}`;
      const buf = src.read(normalPath);
      if (ext === 'png') {
        const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        checkSize(what, info, rgb);
        for (let i = 0; i < n; i++) {
          valid[i] = data[i * 3] + data[i * 3 + 1] + data[i * 3 + 2] > 0 ? 1 : 0;
          for (let c = 0; c < 3; c++) gt[i * 3 + c] = (data[i * 3 + c] / 255) * 2 - 1;
        }
      } else if (ext === 'exr') {
        const exr = readExr(buf, what);
        checkSize(what, exr, rgb);
        const [r, g, b] = ['R', 'G', 'B'].map((c) => exr.channels.get(c));
        if (!r || !g || !b)
          throw new DataError(
            `${what}: expected R, G and B channels, got ${[...exr.channels.keys()].join(', ')}`,
          );
        for (let i = 0; i < n; i++) {
          gt.set([r[i], g[i], b[i]], i * 3);
          valid[i] = Math.hypot(r[i], g[i], b[i]) > 0.5 ? 1 : 0;
        }
      } else {
        // OASIS: a pickled dict with the normals of a box {min_y, max_y, min_x, max_x, normal}
        const d = unpickle(buf, what, () => {
          throw new DataError(`${what}: unexpected tensor storage in a normal annotation`);
        });
        const get = (k: string) => (d instanceof Map ? d.get(k) : undefined);
        const roi = get('normal');
        const [y0, y1, x0, x1] = ['min_y', 'max_y', 'min_x', 'max_x'].map((k) => Number(get(k)));
        if (!(roi instanceof NumpyArray) || ![y0, y1, x0, x1].every(Number.isInteger))
          throw new DataError(
            `${what}: expected {min_y, max_y, min_x, max_x, normal: array} as OASIS stores it`,
          );
        const [rh, rw] = roi.shape;
        if (rh !== y1 - y0 + 1 || rw !== x1 - x0 + 1 || x1 >= rgb.width || y1 >= rgb.height)
          throw new DataError(
            `${what}: the normal box ${x0},${y0}..${x1},${y1} (${rw}x${rh}) does not fit the ${rgb.width}x${rgb.height} image`,
          );
        for (let y = 0; y < rh; y++)
          for (let x = 0; x < rw; x++) {
            const s = (y * rw + x) * 3;
            const i = (y + y0) * rgb.width + x + x0;
            const v = [roi.data[s], roi.data[s + 1], roi.data[s + 2]];
            // to the same axes as the other sets (OASIS's x and y point the other way)
            gt.set([-v[0], -v[1], v[2]], i * 3);
            valid[i] = v[0] !== 0 || v[1] !== 0 || v[2] !== 0 ? 1 : 0;
          }
      }
      return { id: entry, rgb, gt, valid };
    },
  };
}

/** The custom layout: images/<stem>.<img ext>, depth/<stem>.(png|npy) or normal/<stem>.(png|exr|npy), optional mask/<stem>.png. */
function customSpec(task: 'depth' | 'normal', root: string, depthScale?: number): DatasetSpec {
  const images = join(root, 'images');
  const gtDir = join(root, task);
  const missing = [images, gtDir].filter((d) => !existsSync(d) || !statSync(d).isDirectory());
  if (missing.length)
    throw new DataError(
      `${root}: a custom dataset needs images/ and ${task}/ folders (same file stems; optional mask/), missing ${missing.join(', ')}`,
    );
  const stems = new Map(readdirSync(gtDir).map((f) => [basename(f, extname(f)), f]));
  const all = readdirSync(images).sort();
  const entries = all.filter((f) => stems.has(basename(f, extname(f))));
  const withoutGroundTruth = all.filter((f) => !stems.has(basename(f, extname(f))));
  if (!entries.length)
    throw new DataError(`${root}: no image in images/ has a ${task}/ file with the same stem`);
  return {
    name: 'custom',
    task,
    entries,
    withoutGroundTruth,
    archives: [],
    minDepth: 1e-6,
    maxDepth: Infinity,
    async load(src, entry) {
      const stem = basename(entry, extname(entry));
      const rgb = await rgbOf(src.read(`images/${entry}`), `${root}/images/${entry}`);
      const file = stems.get(stem)!;
      const what = `${root}/${task}/${file}`;
      const n = rgb.width * rgb.height;
      let gt: Float32Array;
      let valid: Uint8Array;
      if (task === 'depth') {
        if (file.endsWith('.npy')) {
          const a = readNpy(src.read(`depth/${file}`), what);
          if (a.data.length !== n)
            throw new DataError(
              `${what}: ${a.shape.join('x')} values, the image is ${rgb.height}x${rgb.width}`,
            );
          gt = Float32Array.from(a.data);
        } else {
          if (!depthScale)
            throw new ConfigError(
              `${what}: PNG depth needs its unit: pass --depth-scale (e.g. 1000 for millimetres, 256 for KITTI-style)`,
            );
          const d = await png16(src.read(`depth/${file}`), what, `1/${depthScale} metres`, depthScale);
          checkSize(what, d, rgb);
          gt = d.data;
        }
        valid = rangeMask(gt, this.minDepth, this.maxDepth);
      } else {
        gt = new Float32Array(n * 3);
        if (file.endsWith('.npy')) {
          const a = readNpy(src.read(`normal/${file}`), what);
          if (a.data.length !== n * 3)
            throw new DataError(
              `${what}: ${a.shape.join('x')} values, expected ${rgb.height}x${rgb.width}x3`,
            );
          gt.set(a.data);
        } else if (file.endsWith('.exr')) {
          const exr = readExr(src.read(`normal/${file}`), what);
          checkSize(what, exr, rgb);
          const [r, g, b] = ['R', 'G', 'B'].map((c) => exr.channels.get(c)!);
          for (let i = 0; i < n; i++) gt.set([r[i], g[i], b[i]], i * 3);
        } else {
          const { data, info } = await sharp(src.read(`normal/${file}`))
            .removeAlpha()
            .raw()
            .toBuffer({ resolveWithObject: true });
          checkSize(what, info, rgb);
          for (let i = 0; i < n * 3; i++) gt[i] = (data[i] / 255) * 2 - 1;
        }
        valid = Uint8Array.from({ length: n }, (_, i) =>
          Math.hypot(gt[i * 3], gt[i * 3 + 1], gt[i * 3 + 2]) > 0.5 ? 1 : 0,
        );
      }
      const maskFile = ['png', 'jpg'].map((e) => `mask/${stem}.${e}`).find((m) => src.has(m));
      if (maskFile) {
        const { data, info } = await sharp(src.read(maskFile))
          .extractChannel(0)
          .raw()
          .toBuffer({ resolveWithObject: true });
        checkSize(`${root}/${maskFile}`, info, rgb);
        valid = valid.map((v, i) => (data[i] > 127 ? v : 0));
      }
      return { id: entry, rgb, gt, valid };
    },
  };
}

/**
 * The dataset spec and its files under `root` (an archive, an extracted folder, or a folder
 * holding the archive under its usual name).
 * @throws ConfigError for a dataset without that task, DataError naming the expected files.
 */
export function openDataset(
  task: 'depth' | 'normal',
  dataset: BenchmarkDataset,
  root: string,
  o: { depthScale?: number } = {},
): { spec: DatasetSpec; source: DataSource } {
  if (!existsSync(root)) throw new DataError(`--root ${root} does not exist`);
  if (dataset === 'custom') return { spec: customSpec(task, root, o.depthScale), source: folderSource(root) };
  const list =
    task === 'depth' ? (DEPTH_DATASETS as readonly string[]) : (NORMAL_DATASETS as readonly string[]);
  if (!list.includes(dataset))
    throw new ConfigError(
      `${dataset} has no ${task} benchmark; ${task} datasets: ${list.join(', ')} (or custom)`,
    );
  const base =
    task === 'depth' ? depthSpecs()[dataset] : normalSpec(dataset as (typeof NORMAL_DATASETS)[number]);
  const spec: DatasetSpec = {
    ...base,
    entries: splitList(task, base.list).filter((l) => !(dataset === 'kitti' && l.split(/\s+/)[1] === 'None')),
  };
  const first = spec.entries[0].split(/\s+/)[0];
  const candidates: string[] = [root, ...spec.archives.map((a) => join(root, a))];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const source = statSync(c).isDirectory() ? folderSource(c) : tarSource(c);
    if (source.has(first)) return { spec, source };
    source.close();
  }
  throw new DataError(
    `${root}: not a ${dataset} ${task} evaluation set: expected ${first} (the first file of its split list) in ${candidates.join(' or ')}; get the evaluation archive the Marigold / Lotus evaluation downloads${task === 'normal' ? " (DSINE's dsine_eval)" : ''} and pass it, or its extracted folder, as --root`,
  );
}
