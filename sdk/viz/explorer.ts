/**
 * Interactive explorers as Vega-Lite specs that need no kernel round trip: everything a click or
 * a slider can show is precomputed and embedded (heatmaps and PCA maps as small PNG data URLs),
 * and Vega-Lite params filter it. In JupyterLab the spec renders through its Vega-Lite renderer;
 * the static SVG/PNG of the same spec (initial selection) is what other viewers show.
 * - `correspondenceExplorerSpec`: click a point on the source image; for each method, the cosine
 *   similarity heatmap over the target, the predicted point and the ground truth.
 * - `layerTimestepBrowserSpec`: sliders for decoder layer and save timestep over the PCA of every
 *   raw map and its similarity heatmap for one source point.
 */
import sharp from 'sharp';
import { ShapeError } from '../core/errors.ts';
import type { RgbImage } from '../core/rgb.ts';
import type { Tensor } from '../core/tensor.ts';
import { pointIndex, unitPixels, type PointYX } from '../correspondence/match.ts';
import { VEGA_LITE_SCHEMA, mixingHeatmapSpec, type Spec } from './charts.ts';
import { VIRIDIS, colormap } from './colormap.ts';

async function dataUrl(
  rgb: RgbImage,
  width: number,
  height: number,
  format: 'jpeg' | 'png',
): Promise<string> {
  let s = sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } });
  // photos are shrunk to the panel; feature maps stay at their own size (the mark scales them)
  if (rgb.width > width) s = s.resize(width, height, { fit: 'fill', kernel: 'lanczos3' });
  const buf = format === 'jpeg' ? await s.jpeg({ quality: 85 }).toBuffer() : await s.png().toBuffer();
  return `data:image/${format};base64,${buf.toString('base64')}`;
}

/** A similarity row [h*w] as a colour-mapped PNG data URL (its own min..max), and its argmax. */
async function heatmap(sim: Float32Array, h: number, w: number): Promise<{ url: string; best: number }> {
  let [lo, hi, best] = [Infinity, -Infinity, 0];
  sim.forEach((v, i) => {
    if (v < lo) lo = v;
    if (v > hi) [hi, best] = [v, i];
  });
  const rgb = new Uint8Array(h * w * 3);
  sim.forEach((v, i) => rgb.set(colormap((v - lo) / (hi - lo || 1), VIRIDIS), i * 3));
  const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
  return { url: `data:image/png;base64,${png.toString('base64')}`, best };
}

/** Cosine similarity of one source descriptor pixel against every target pixel. */
function similarityAt(srcUnit: Float32Array, row: number, tgtUnit: Float32Array, dim: number): Float32Array {
  const n = tgtUnit.length / dim;
  const q = srcUnit.subarray(row * dim, (row + 1) * dim);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let c = 0; c < dim; c++) s += q[c] * tgtUnit[j * dim + c];
    out[j] = s;
  }
  return out;
}

/**
 * Cosine similarity of the descriptor at image point (x, y) of the source map over every target
 * pixel, at the maps' own resolution (`imageSize`: the source image the point is in).
 */
export function similarityMap(
  source: Tensor,
  target: Tensor,
  point: [number, number],
  imageSize: { width: number; height: number },
): { values: Float32Array; height: number; width: number } {
  source.expectShape('source map', [1, -1, -1, -1]);
  target.expectShape('target map', [1, source.shape[1], -1, -1]);
  const [, D, h, w] = source.shape;
  const row = pointIndex([(point[1] * h) / imageSize.height, (point[0] * w) / imageSize.width], h, w);
  return {
    values: similarityAt(unitPixels(source), row, unitPixels(target), D),
    height: target.shape[2],
    width: target.shape[3],
  };
}

export interface ExplorerMethod {
  name: string;
  /** Source and target descriptors [1, D, h, w] (any resolution; the heatmap has it). */
  descriptors: [Tensor, Tensor];
}

export interface ExplorerOptions {
  source: RgbImage;
  target: RgbImage;
  methods: ExplorerMethod[];
  /** Candidate source points (x, y) in source-image pixels; default an n x n grid (below). */
  points?: [number, number][];
  /** Ground-truth target points (x, y), one per candidate point (null where unknown). */
  truth?: ([number, number] | null)[];
  /** Grid size when no points are given (default 8: 64 candidates). */
  grid?: number;
  /** Width of each panel in screen pixels (default 240). */
  panelWidth?: number;
  title?: string;
  /** Set when the model or networks are random: the title says so. */
  randomWeights?: boolean;
}

export interface ExplorerResult {
  spec: Spec;
  /** What was adjusted (points clamped into the image), for the notebook to print. */
  notes: string[];
}

/**
 * The correspondence explorer: source image with clickable candidate points; one panel per
 * method with the target image, the similarity heatmap of the selected point, the predicted
 * point (red cross) and the ground truth (green ring) when known.
 * @throws ShapeError when a method's descriptors differ in width.
 */
export async function correspondenceExplorerSpec(o: ExplorerOptions): Promise<ExplorerResult> {
  const notes: string[] = [];
  const { source, target } = o;
  const n = o.grid ?? 8;
  const raw =
    o.points ??
    Array.from({ length: n * n }, (_, k): [number, number] => [
      ((k % n) + 0.5) * (source.width / n),
      (Math.floor(k / n) + 0.5) * (source.height / n),
    ]);
  const points = raw.map(([x, y], k): [number, number] => {
    const cx = Math.min(Math.max(x, 0), source.width - 1);
    const cy = Math.min(Math.max(y, 0), source.height - 1);
    if (cx !== x || cy !== y)
      notes.push(
        `point ${k} (${x}, ${y}) is outside the ${source.width}x${source.height} source image: clamped to (${cx}, ${cy}), as the matcher does`,
      );
    return [cx, cy];
  });
  if (o.truth && o.truth.length !== points.length)
    throw new ShapeError(`truth: expected one entry per point (${points.length}), got ${o.truth.length}`);
  const pw = o.panelWidth ?? 240;
  const size = (img: RgbImage) => ({ w: pw, h: Math.round((pw * img.height) / img.width) });
  const [ss, ts] = [size(source), size(target)];
  const [srcUrl, tgtUrl] = await Promise.all([
    dataUrl(source, ss.w, ss.h, 'jpeg'),
    dataUrl(target, ts.w, ts.h, 'jpeg'),
  ]);
  // image coordinates on pixel ranges: [0, extent] on y too puts y = 0 at the top, as in images
  const axis = (domain: number, extent: number) => ({
    type: 'quantitative',
    scale: { domain: [0, domain], range: [0, extent], nice: false, zero: false },
    axis: null,
  });
  const xy = (img: RgbImage, dims: { w: number; h: number }) => ({
    x: { field: 'x', ...axis(img.width, dims.w) },
    y: { field: 'y', ...axis(img.height, dims.h) },
  });
  const imageLayer = (url: string, dims: { w: number; h: number }) => ({
    data: { values: [{ url }] },
    mark: { type: 'image', width: dims.w, height: dims.h, align: 'left', baseline: 'top', aspect: false },
    encoding: { x: { value: 0 }, y: { value: 0 }, url: { field: 'url', type: 'nominal' } },
  });
  const pointRows = points.map(([x, y], pid) => ({ pid, x, y, annotated: !!o.truth?.[pid] }));
  const sourceView = {
    title: 'source: click a point',
    width: ss.w,
    height: ss.h,
    layer: [
      imageLayer(srcUrl, ss),
      {
        data: { values: pointRows },
        params: [
          {
            name: 'pt',
            select: { type: 'point', fields: ['pid'], on: 'click', clear: false, nearest: true },
            value: [{ pid: 0 }],
          },
        ],
        mark: { type: 'point', filled: true, size: 70, stroke: 'black', strokeWidth: 1, cursor: 'pointer' },
        encoding: {
          ...xy(source, ss),
          color: { condition: { param: 'pt', empty: false, value: '#e41a1c' }, value: 'white' },
          shape: { field: 'annotated', type: 'nominal', legend: null },
          tooltip: [
            { field: 'pid', title: 'point' },
            { field: 'x', format: '.0f' },
            { field: 'y', format: '.0f' },
          ],
        },
      },
    ],
  };
  const views: unknown[] = [sourceView];
  for (const m of o.methods) {
    const [a, b] = m.descriptors;
    a.expectShape(`${m.name} source descriptors`, [1, -1, -1, -1]);
    b.expectShape(`${m.name} target descriptors`, [1, a.shape[1], -1, -1]);
    const [, D, h, w] = a.shape;
    const [, , h2, w2] = b.shape;
    const [su, tu] = [unitPixels(a), unitPixels(b)];
    const heat: { pid: number; url: string }[] = [];
    const pred: { pid: number; x: number; y: number; score: number }[] = [];
    for (const [pid, [x, y]] of points.entries()) {
      const row = pointIndex([(y * h) / source.height, (x * w) / source.width] as PointYX, h, w);
      const sim = similarityAt(su, row, tu, D);
      const { url, best } = await heatmap(sim, h2, w2);
      heat.push({ pid, url });
      // the centre of the best cell, in target-image pixels
      pred.push({
        pid,
        x: ((best % w2) + 0.5) * (target.width / w2),
        y: (Math.floor(best / w2) + 0.5) * (target.height / h2),
        score: sim[best],
      });
    }
    const truth = (o.truth ?? []).flatMap((t, pid) => (t ? [{ pid, x: t[0], y: t[1] }] : []));
    views.push({
      title: m.name,
      width: ts.w,
      height: ts.h,
      layer: [
        imageLayer(tgtUrl, ts),
        {
          data: { values: heat },
          transform: [{ filter: { param: 'pt', empty: false } }],
          mark: {
            type: 'image',
            width: ts.w,
            height: ts.h,
            align: 'left',
            baseline: 'top',
            aspect: false,
            opacity: 0.55,
          },
          encoding: { x: { value: 0 }, y: { value: 0 }, url: { field: 'url', type: 'nominal' } },
        },
        {
          data: { values: truth },
          transform: [{ filter: { param: 'pt', empty: false } }],
          mark: { type: 'point', size: 160, strokeWidth: 3, color: '#4daf4a' },
          encoding: { ...xy(target, ts), tooltip: [{ field: 'pid', title: 'ground truth of point' }] },
        },
        {
          data: { values: pred },
          transform: [{ filter: { param: 'pt', empty: false } }],
          mark: { type: 'point', shape: 'cross', filled: true, size: 160, color: '#e41a1c', stroke: 'white' },
          encoding: {
            ...xy(target, ts),
            tooltip: [
              { field: 'pid', title: 'prediction for point' },
              { field: 'score', title: 'cosine', format: '.3f' },
            ],
          },
        },
      ],
    });
  }
  const title = o.title ?? 'Correspondence explorer';
  return {
    spec: {
      $schema: VEGA_LITE_SCHEMA,
      title: {
        text: o.randomWeights
          ? `${title} (RANDOM WEIGHTS: pictures show the pipeline, not the method)`
          : title,
        subtitle:
          'heatmap: cosine similarity of the selected source point over the target; red cross: prediction; green ring: ground truth',
      },
      config: { font: 'DejaVu Sans', view: { stroke: null } },
      hconcat: views,
    },
    notes,
  };
}

export interface BrowserMap {
  layer: number;
  saveTimestep: number;
  /** Label of the timestep (e.g. the diffusion timestep t of the UNet call). */
  label: string;
  sourcePca: RgbImage;
  targetPca: RgbImage;
  /** Similarity of the chosen source point over the target [h*w], with its grid size. */
  similarity: { values: Float32Array; height: number; width: number };
}

/**
 * Sliders for decoder layer and save timestep over every raw map: the PCA of the source and
 * target maps (shared basis) and the similarity heatmap of one source point.
 */
export async function layerTimestepBrowserSpec(
  maps: readonly BrowserMap[],
  o: { title?: string; randomWeights?: boolean; panelWidth?: number } = {},
): Promise<Spec> {
  if (!maps.length) throw new ShapeError('layerTimestepBrowserSpec: no maps given');
  const pw = o.panelWidth ?? 200;
  const rows = await Promise.all(
    maps.map(async (m) => ({
      layer: m.layer,
      timestep: m.saveTimestep,
      label: m.label,
      source: await dataUrl(m.sourcePca, pw, pw, 'png'),
      target: await dataUrl(m.targetPca, pw, pw, 'png'),
      heat: (await heatmap(m.similarity.values, m.similarity.height, m.similarity.width)).url,
    })),
  );
  const layers = [...new Set(maps.map((m) => m.layer))].sort((a, b) => a - b);
  const steps = [...new Set(maps.map((m) => m.saveTimestep))].sort((a, b) => b - a);
  const labels = steps.map((s) => maps.find((m) => m.saveTimestep === s)!.label);
  const panel = (field: string, title: string) => ({
    title,
    width: pw,
    height: pw,
    data: { values: rows },
    transform: [{ filter: 'datum.layer == layer && datum.timestep == timestep' }],
    mark: { type: 'image', width: pw, height: pw, align: 'left', baseline: 'top', aspect: false },
    encoding: { x: { value: 0 }, y: { value: 0 }, url: { field, type: 'nominal' } },
  });
  const title = o.title ?? 'Every decoder layer at every save timestep';
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: {
      text: o.randomWeights ? `${title} (RANDOM WEIGHTS)` : title,
      subtitle: `save timesteps ${steps.join(', ')} = ${labels.join(', ')}`,
    },
    config: { font: 'DejaVu Sans', view: { stroke: null } },
    params: [
      {
        name: 'layer',
        value: layers[0],
        bind: { input: 'range', min: layers[0], max: layers.at(-1), step: 1, name: 'decoder layer ' },
      },
      {
        name: 'timestep',
        value: steps[0],
        bind: { input: 'select', options: steps, labels, name: 'save timestep ' },
      },
    ],
    hconcat: [
      panel('source', 'source PCA'),
      panel('target', 'target PCA'),
      panel('heat', 'similarity of the source point'),
    ],
  };
}

export interface MapDetail {
  layer: number;
  saveTimestep: number;
  sourcePca: RgbImage;
  targetPca: RgbImage;
  /** PCK@0.1 of this raw map alone on the pairs evaluated (0..1), if computed. */
  pck?: number;
}

/**
 * The mixing-weight heatmap (paper layout, diverging around the uniform weight) where clicking a
 * cell shows that map's PCA on a pair and its PCK alone.
 */
export async function mixingWeightsExplorerSpec(
  weights: readonly { saveTimestep: number; layer: number; weight: number }[],
  details: readonly MapDetail[],
  o: { steps?: number; title?: string; randomWeights?: boolean; panelWidth?: number } = {},
): Promise<Spec> {
  const pw = o.panelWidth ?? 160;
  const heat = mixingHeatmapSpec(weights, '', { steps: o.steps, selectable: true });
  delete (heat as Record<string, unknown>).$schema;
  delete (heat as Record<string, unknown>).config;
  delete (heat as Record<string, unknown>).title;
  const rows = await Promise.all(
    details.map(async (d) => ({
      layer: d.layer,
      saveTimestep: d.saveTimestep,
      source: await dataUrl(d.sourcePca, pw, pw, 'png'),
      target: await dataUrl(d.targetPca, pw, pw, 'png'),
      pck:
        d.pck === undefined ? 'PCK not computed' : `PCK@0.1 of this map alone: ${(100 * d.pck).toFixed(1)}%`,
    })),
  );
  const panel = (field: string, title: string) => ({
    title,
    width: pw,
    height: pw,
    data: { values: rows },
    transform: [{ filter: { param: 'cell', empty: false } }],
    layer: [
      {
        mark: { type: 'image', width: pw, height: pw, align: 'left', baseline: 'top', aspect: false },
        encoding: { x: { value: 0 }, y: { value: 0 }, url: { field, type: 'nominal' } },
      },
      ...(field === 'source'
        ? [
            {
              mark: { type: 'text', align: 'left', baseline: 'top', dy: 6, fontSize: 12 },
              encoding: { x: { value: 0 }, y: { value: pw }, text: { field: 'pck' } },
            },
          ]
        : []),
    ],
  });
  const title = o.title ?? 'Mixing weights: click a cell for its map';
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: o.randomWeights ? `${title} (RANDOM WEIGHTS)` : title,
    config: { font: 'DejaVu Sans', view: { stroke: null } },
    hconcat: [heat, { vconcat: [panel('source', 'PCA, source'), panel('target', 'PCA, target')] }],
  };
}
