/**
 * Keypoint pair datasets: SPair-71k (official layout and the paper's pair lists), CUB-200-2011,
 * PF-PASCAL and a documented custom JSON. All loaders return the same `KeypointPair`, with
 * points [x, y] in original image pixels, and check every referenced image up front,
 * reporting all missing files at once.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../core/errors.ts';
import { readInputFile } from '../core/fs.ts';
import { Rng } from '../core/rng.ts';
import { imageSize } from './image.ts';
import { assetPath } from '../core/package-root.ts';

export type PointXY = [number, number];

export interface KeypointPair {
  source: string;
  target: string;
  sourcePoints: PointXY[];
  targetPoints: PointXY[];
  category: string;
  /** [left, top, right, bottom] of the target object, for PCK by bbox. */
  targetBbox?: [number, number, number, number];
  sourceBbox?: [number, number, number, number];
}

export const DATASETS = ['spair', 'cub', 'pfpascal', 'custom'] as const;
export type DatasetName = (typeof DATASETS)[number];

function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readInputFile(path, 'utf8'));
  } catch (e) {
    throw new DataError(`${path}: cannot read JSON (${(e as Error).message})`, { cause: e });
  }
}

/** @throws DataError listing every missing image. */
export function checkImagesExist(pairs: readonly KeypointPair[], what: string): void {
  const missing = [...new Set(pairs.flatMap((p) => [p.source, p.target]).filter((f) => !existsSync(f)))];
  if (missing.length) {
    throw new DataError(
      `${what}: ${missing.length} image(s) missing:\n  ${missing.slice(0, 20).join('\n  ')}${missing.length > 20 ? `\n  ... and ${missing.length - 20} more` : ''}`,
    );
  }
}

const isPoint = (v: unknown) =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x));

function checkPoints(p: KeypointPair, where: string): KeypointPair {
  for (const [key, list] of [
    ['source points', p.sourcePoints],
    ['target points', p.targetPoints],
  ] as const) {
    if (!Array.isArray(list))
      throw new DataError(
        `${where}: ${key}: expected a list of [x, y] numbers, got ${JSON.stringify(list)?.slice(0, 60)}`,
      );
    const bad = list.findIndex((v) => !isPoint(v));
    if (bad >= 0)
      throw new DataError(
        `${where}: ${key}[${bad}]: expected [x, y] with two finite numbers, got ${JSON.stringify(list[bad])?.slice(0, 60)}`,
      );
  }
  for (const [key, box] of [
    ['target bbox', p.targetBbox],
    ['source bbox', p.sourceBbox],
  ] as const) {
    if (box === undefined || box === null) continue;
    if (
      !Array.isArray(box) ||
      box.length !== 4 ||
      !box.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
      box[2] <= box[0] ||
      box[3] <= box[1]
    )
      throw new DataError(
        `${where}: ${key}: expected [left, top, right, bottom] with right > left and bottom > top, got ${JSON.stringify(box)?.slice(0, 60)}`,
      );
  }
  if (!p.sourcePoints.length || p.sourcePoints.length !== p.targetPoints.length) {
    throw new DataError(
      `${where}: expected equal, non-empty source and target point lists, got ${p.sourcePoints.length} and ${p.targetPoints.length}`,
    );
  }
  return p;
}

function checkNotEmpty(list: unknown[], where: string): void {
  if (!list.length) throw new DataError(`${where}: the pair list is empty; nothing to evaluate`);
}

/**
 * Every keypoint lies inside its image (0 <= x <= width, 0 <= y <= height, as the matcher
 * accepts). Image sizes are read from the file headers. @throws DataError listing the first problems.
 */
export async function checkPointsInImages(pairs: readonly KeypointPair[]): Promise<void> {
  const sizes = new Map<string, { width: number; height: number }>();
  const problems: string[] = [];
  for (const [i, p] of pairs.entries()) {
    for (const [path, points, which] of [
      [p.source, p.sourcePoints, 'source'],
      [p.target, p.targetPoints, 'target'],
    ] as const) {
      if (!sizes.has(path)) sizes.set(path, await imageSize(path));
      const { width, height } = sizes.get(path)!;
      points.forEach(([x, y], k) => {
        if (!(x >= 0 && y >= 0 && x <= width && y <= height))
          problems.push(
            `pair ${i} ${which} point ${k} [${x}, ${y}] is outside the ${width}x${height} image ${path}`,
          );
      });
    }
  }
  if (problems.length)
    throw new DataError(
      `${problems.length} keypoint(s) outside their images (wrong units or swapped x/y?):\n  ${problems.slice(0, 10).join('\n  ')}${problems.length > 10 ? '\n  ...' : ''}`,
    );
}

/**
 * The paper's SPair pair lists: `spair_71k_test-360.json` name images "category/file.jpg",
 * `spair_71k_test-6.json` names "file.jpg" with a `category` field; both resolve under
 * `<root>/JPEGImages/`.
 */
export function loadSpairPairList(listPath: string, root: string): KeypointPair[] {
  const list = readJsonFile(listPath);
  if (!Array.isArray(list)) throw new DataError(`${listPath}: expected a JSON list of pairs`);
  checkNotEmpty(list, listPath);
  const resolve = (name: string, category: string) =>
    join(root, 'JPEGImages', name.includes('/') ? name : `${category}/${name}`);
  const pairs = list.map((a: Record<string, unknown>, i) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a))
      throw new DataError(
        `${listPath} pair ${i}: expected an object, got ${JSON.stringify(a)?.slice(0, 60)}`,
      );
    const category = String(a.category ?? String(a.source_path).split('/')[0]);
    return checkPoints(
      {
        source: resolve(String(a.source_path), category),
        target: resolve(String(a.target_path), category),
        sourcePoints: a.source_points as PointXY[],
        targetPoints: a.target_points as PointXY[],
        category,
        targetBbox: a.target_bounding_box as KeypointPair['targetBbox'],
        sourceBbox: a.source_bounding_box as KeypointPair['sourceBbox'],
      },
      `${listPath} pair ${i}`,
    );
  });
  checkImagesExist(pairs, listPath);
  return pairs;
}

/** SPair-71k's own `PairAnnotation/<split>/*.json` files. */
export function loadSpairOfficial(root: string, split: 'trn' | 'val' | 'test'): KeypointPair[] {
  const dir = join(root, 'PairAnnotation', split);
  if (!existsSync(dir))
    throw new DataError(
      `${dir}: SPair-71k pair annotations not found (expected <root>/PairAnnotation/${split}/)`,
    );
  const pairs = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const a = readJsonFile(join(dir, f)) as Record<string, unknown>;
      const category = String(a.category);
      return checkPoints(
        {
          source: join(root, 'JPEGImages', category, String(a.src_imname)),
          target: join(root, 'JPEGImages', category, String(a.trg_imname)),
          sourcePoints: a.src_kps as PointXY[],
          targetPoints: a.trg_kps as PointXY[],
          category,
          targetBbox: a.trg_bndbox as KeypointPair['targetBbox'],
          sourceBbox: a.src_bndbox as KeypointPair['sourceBbox'],
        },
        join(dir, f),
      );
    });
  checkImagesExist(pairs, dir);
  return pairs;
}

/** PF-PASCAL `test_pairs.csv`: image paths relative to `root`, keypoints as `;`-separated XA, YA, XB, YB. */
export function loadPfPascal(csvPath: string, root: string): KeypointPair[] {
  let text: string;
  try {
    text = readInputFile(csvPath, 'utf8');
  } catch (e) {
    throw new DataError(`${csvPath}: cannot read (${(e as Error).message})`, { cause: e });
  }
  const [header, ...rows] = text.trim().split(/\r?\n/);
  const cols = header.split(',');
  const at = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new DataError(`${csvPath}: missing column "${name}" (header: ${header})`);
    return i;
  };
  const [sa, ta, cl, xa, ya, xb, yb] = ['source_image', 'target_image', 'class', 'XA', 'YA', 'XB', 'YB'].map(
    at,
  );
  const nums = (s: string) => s.split(';').map(Number);
  const zip = (xs: number[], ys: number[]) => xs.map((x, i): PointXY => [x, ys[i]]);
  const pairs = rows.map((r, i) => {
    const c = r.split(',');
    return checkPoints(
      {
        source: join(root, c[sa]),
        target: join(root, c[ta]),
        sourcePoints: zip(nums(c[xa]), nums(c[ya])),
        targetPoints: zip(nums(c[xb]), nums(c[yb])),
        category: `class-${c[cl]}`,
      },
      `${csvPath} row ${i + 2}`,
    );
  });
  checkImagesExist(pairs, csvPath);
  return pairs;
}

/**
 * CUB-200-2011 (`images.txt`, `parts/part_locs.txt`, `bounding_boxes.txt`): `count` pairs of
 * different images of the same species drawn with a seeded RNG, keeping the parts visible in
 * both (at least `minParts`).
 */
export function loadCub(
  root: string,
  options: { count?: number; seed?: number; minParts?: number } = {},
): KeypointPair[] {
  const lines = (rel: string) => {
    const p = join(root, rel);
    if (!existsSync(p)) throw new DataError(`${p}: CUB-200-2011 file not found`);
    return readInputFile(p, 'utf8')
      .trim()
      .split(/\r?\n/)
      .map((l) => l.trim().split(/\s+/));
  };
  const images = new Map(lines('images.txt').map(([id, path]) => [id, path]));
  const parts = new Map<string, Map<string, PointXY>>();
  for (const [img, part, x, y, visible] of lines('parts/part_locs.txt')) {
    if (visible !== '1') continue;
    if (!parts.has(img)) parts.set(img, new Map());
    parts.get(img)!.set(part, [Number(x), Number(y)]);
  }
  const boxes = new Map(
    lines('bounding_boxes.txt').map(([id, x, y, w, h]) => [
      id,
      [Number(x), Number(y), Number(x) + Number(w), Number(y) + Number(h)] as [
        number,
        number,
        number,
        number,
      ],
    ]),
  );
  const byClass = new Map<string, string[]>();
  for (const [id, path] of images) {
    if (!parts.has(id)) continue;
    const cls = path.split('/')[0];
    byClass.set(cls, [...(byClass.get(cls) ?? []), id]);
  }
  const classes = [...byClass.keys()].filter((c) => byClass.get(c)!.length > 1).sort();
  if (!classes.length) throw new DataError(`${root}: no species with two annotated images`);
  const rng = new Rng(options.seed ?? 0);
  const count = options.count ?? 360;
  const pairs: KeypointPair[] = [];
  for (let tries = 0; pairs.length < count && tries < count * 50; tries++) {
    const cls = classes[rng.int(classes.length)];
    const ids = byClass.get(cls)!;
    const a = ids[rng.int(ids.length)];
    const b = ids[rng.int(ids.length)];
    if (a === b) continue;
    const shared = [...parts.get(a)!.keys()]
      .filter((k) => parts.get(b)!.has(k))
      .sort((x, y) => Number(x) - Number(y));
    if (shared.length < (options.minParts ?? 3)) continue;
    pairs.push({
      source: join(root, 'images', images.get(a)!),
      target: join(root, 'images', images.get(b)!),
      sourcePoints: shared.map((k) => parts.get(a)!.get(k)!),
      targetPoints: shared.map((k) => parts.get(b)!.get(k)!),
      category: cls.replace(/^\d+\./, ''),
      targetBbox: boxes.get(b),
      sourceBbox: boxes.get(a),
    });
  }
  checkImagesExist(pairs, join(root, 'images'));
  return pairs;
}

/**
 * Custom pairs: a JSON list of {"source": path, "target": path, "source_points": [[x, y], ...],
 * "target_points": [[x, y], ...], "category"?: string, "target_bbox"?: [l, t, r, b]}; paths
 * are relative to the list's folder (or `root`).
 */
export function loadCustomPairs(listPath: string, root?: string): KeypointPair[] {
  const list = readJsonFile(listPath);
  if (!Array.isArray(list)) throw new DataError(`${listPath}: expected a JSON list of pairs`);
  checkNotEmpty(list, listPath);
  const base = root ?? join(listPath, '..');
  const pairs = list.map((a: Record<string, unknown>, i) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a))
      throw new DataError(
        `${listPath} pair ${i}: expected an object, got ${JSON.stringify(a)?.slice(0, 60)}`,
      );
    for (const k of ['source', 'target', 'source_points', 'target_points']) {
      if (!(k in a)) throw new DataError(`${listPath} pair ${i}: missing "${k}"`);
    }
    return checkPoints(
      {
        source: join(base, String(a.source)),
        target: join(base, String(a.target)),
        sourcePoints: a.source_points as PointXY[],
        targetPoints: a.target_points as PointXY[],
        category: String(a.category ?? 'all'),
        targetBbox: a.target_bbox as KeypointPair['targetBbox'],
      },
      `${listPath} pair ${i}`,
    );
  });
  checkImagesExist(pairs, listPath);
  return pairs;
}

/**
 * SPair-71k splits: the paper's 360-pair lists (`test-360` for Table 1, `val-360` for validation
 * during training; shipped with the package, resolved against `root`), or the dataset's own
 * `PairAnnotation/<trn|val|test>`.
 */
export const SPAIR_SPLITS = ['test-360', 'val-360', 'trn', 'val', 'test'] as const;
export type SpairSplit = (typeof SPAIR_SPLITS)[number];

export function loadSpairSplit(root: string, split: SpairSplit): KeypointPair[] {
  if (!SPAIR_SPLITS.includes(split))
    throw new ConfigError(`unknown SPair-71k split "${split}"; valid: ${SPAIR_SPLITS.join(', ')}`);
  return split.endsWith('-360')
    ? loadSpairPairList(assetPath('pairs', `spair_71k_${split}.json`), root)
    : loadSpairOfficial(root, split as 'trn' | 'val' | 'test');
}

/** Dispatch by dataset name (CLI); SPair without a list reads `split` (default the paper's test-360). */
export function loadPairs(dataset: string, root: string, pairs?: string, split?: string): KeypointPair[] {
  if (split !== undefined && dataset !== 'spair')
    throw new ConfigError(`--split applies to SPair-71k; ${dataset} is read from its own files or --pairs`);
  if (split !== undefined && pairs) throw new ConfigError('give either --split or --pairs, not both');
  switch (dataset) {
    case 'spair':
      return pairs
        ? loadSpairPairList(pairs, root)
        : loadSpairSplit(root, (split ?? 'test-360') as SpairSplit);
    case 'cub':
      return loadCub(root);
    case 'pfpascal':
      return loadPfPascal(pairs ?? join(root, 'test_pairs.csv'), root);
    case 'custom':
      if (!pairs) throw new ConfigError('custom dataset: --pairs <list.json> is required');
      return loadCustomPairs(pairs, root);
    default:
      throw new ConfigError(`unknown dataset "${dataset}"; valid: ${DATASETS.join(', ')}`);
  }
}
