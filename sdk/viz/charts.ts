/**
 * Vega-Lite specs for the paper's plots (mixing-weight heatmap and marginals, PCK bars,
 * training curves), rendered headless: vega View -> SVG (no canvas) -> PNG with sharp.
 */
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../core/fs.ts';
import { unetTimestepOf } from '../diffusion/loop.ts';

/**
 * Specs target Vega-Lite v5 (the version Jupyter's renderers ship; vega-lite 6 compiles them
 * too) and notebooks emit them as `application/vnd.vegalite.v5+json`.
 */
export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/**
 * A Vega-Lite spec (v5). Typed structurally so the SDK's declarations do not depend on
 * vega-lite's ESM-only types (CommonJS consumers could not resolve them).
 */
export interface Spec {
  $schema?: string;
  [key: string]: unknown;
}

const base = {
  $schema: VEGA_LITE_SCHEMA,
  config: { font: 'DejaVu Sans', title: { fontSize: 15 }, axis: { labelFontSize: 12, titleFontSize: 13 } },
} as const;

/**
 * Mixing weights as in the paper's figure: decoder layer across, save timestep down (cleanest
 * first, labelled with the diffusion timestep of its UNet call when `steps` is given), colours
 * diverging around the uniform weight 1 / (layers x timesteps) so that near-uniform weights
 * look near-uniform; values in tooltips.
 */
export function mixingHeatmapSpec(
  weights: readonly { saveTimestep: number; layer: number; weight: number }[],
  title: string | string[] = 'Mixing weights',
  o: { steps?: number; selectable?: boolean } = {},
): Spec {
  const uniform = 1 / weights.length;
  const label = (s: number) =>
    o.steps ? `${s} (t = ${unetTimestepOf('inversion', o.steps, s)})` : String(s);
  const order = [...new Set(weights.map((w) => w.saveTimestep))].sort((a, b) => b - a).map(label);
  return {
    ...base,
    title,
    data: {
      values: weights.map((w) => ({
        ...w,
        timestep: label(w.saveTimestep),
        relative: w.weight / uniform,
      })),
    },
    mark: { type: 'rect', cursor: o.selectable ? 'pointer' : 'default' },
    width: { step: 30 },
    height: { step: 22 },
    ...(o.selectable
      ? {
          params: [
            {
              name: 'cell',
              select: { type: 'point', fields: ['layer', 'saveTimestep'], on: 'click', clear: false },
              value: [{ layer: weights[0].layer, saveTimestep: weights[0].saveTimestep }],
            },
          ],
        }
      : {}),
    encoding: {
      x: { field: 'layer', type: 'ordinal', title: 'decoder layer', axis: { labelAngle: 0 } },
      y: { field: 'timestep', type: 'ordinal', title: ['save timestep', '(cleanest first)'], sort: order },
      color: {
        field: 'weight',
        type: 'quantitative',
        // anchored: 0 .. max(2 x uniform, largest) with white at uniform, so weights within a
        // few percent of uniform stay pale instead of spanning the whole palette
        scale: {
          type: 'linear',
          scheme: 'redblue',
          reverse: true,
          domain: [0, Math.max(2 * uniform, ...weights.map((w) => w.weight))],
          domainMid: uniform,
        },
        legend: { titleLimit: 400 },
        title: ['weight', `(white = uniform, ${uniform.toFixed(4)})`],
      },
      ...(o.selectable
        ? { stroke: { condition: { param: 'cell', empty: false, value: 'black' }, value: null } }
        : {}),
      strokeWidth: { value: 2 },
      tooltip: [
        { field: 'layer', title: 'decoder layer' },
        { field: 'timestep', title: 'save timestep' },
        { field: 'weight', format: '.5f' },
        { field: 'relative', title: 'x uniform', format: '.2f' },
      ],
    },
  } as Spec;
}

/** Per-layer and per-timestep sums of the mixing weights, side by side. */
export function mixingMarginalsSpec(
  weights: readonly { saveTimestep: number; layer: number; weight: number }[],
): Spec {
  const bar = (field: string, title: string) => ({
    mark: 'bar',
    width: 260,
    height: 200,
    encoding: {
      x: {
        field,
        type: 'ordinal',
        title,
        sort: field === 'saveTimestep' ? 'descending' : 'ascending',
        axis: { labelAngle: 0 },
      },
      y: { aggregate: 'sum', field: 'weight', type: 'quantitative', title: 'total weight' },
    },
  });
  return {
    ...base,
    title: 'Mixing-weight marginals',
    data: { values: weights.map((w) => ({ ...w })) },
    hconcat: [bar('layer', 'decoder layer'), bar('saveTimestep', 'save timestep')],
  } as Spec;
}

/** "dinov2:768d:block11:token:840px:<hash>" -> "DINOv2 block 11, token, 840 px". */
function sourceLabel(name: string): string {
  const m = /^dinov2:\d+d:block(\d+):(\w+):(\d+)px:/.exec(name);
  return m ? `DINOv2 block ${m[1]}, ${m[2]}, ${m[3]} px` : name;
}

/**
 * Each feature source's share of a network's mixing weights (ours+dinov2): the diffusion maps'
 * total and each extra map's weight, which sum to 1 (one joint softmax).
 */
export function mixingSharesSpec(
  net: { mixingWeights(): { weight: number }[]; extraMixingWeights(): { name: string; weight: number }[] },
  title: string | string[] = 'Mixing-weight share by feature source',
): Spec {
  const sd = net.mixingWeights().reduce((a, w) => a + w.weight, 0);
  const rows = [
    { source: 'Stable Diffusion (all layers x timesteps)', share: sd },
    ...net.extraMixingWeights().map((e) => ({
      source: sourceLabel(e.name),
      share: e.weight,
    })),
  ];
  return {
    ...base,
    title,
    data: { values: rows },
    mark: 'bar',
    width: 360,
    height: { step: 26 },
    encoding: {
      y: { field: 'source', type: 'nominal', title: null, sort: null, axis: { labelLimit: 420 } },
      x: {
        field: 'share',
        type: 'quantitative',
        title: 'share of the mixing weights',
        scale: { domain: [0, 1] },
      },
      tooltip: [{ field: 'source' }, { field: 'share', format: '.4f' }],
    },
  } as Spec;
}

/** PCK per category (and method), grouped bars. */
export function pckBarsSpec(
  rows: readonly { category: string; method: string; pck: number }[],
  title = 'PCK@0.1 per category',
): Spec {
  return {
    ...base,
    title,
    data: { values: rows.map((r) => ({ ...r, pck: 100 * r.pck })) },
    mark: 'bar',
    width: { step: 14 },
    height: 240,
    encoding: {
      x: { field: 'category', type: 'nominal', title: null, sort: null }, // in the order given
      xOffset: { field: 'method' },
      y: { field: 'pck', type: 'quantitative', title: 'PCK@0.1 (%)', scale: { domain: [0, 100] } },
      color: { field: 'method', type: 'nominal' },
    },
  } as Spec;
}

/** Training loss per step and validation PCK, two panels. */
/** Loss per step and validation PCK (curves of a run folder, or a trainNetwork history). */
export function trainingCurvesSpec(
  losses: readonly number[],
  validations: readonly { step: number; score: number }[],
  title: string | string[] = 'Aggregation network training',
): Spec {
  return {
    ...base,
    title: { text: title },
    hconcat: [
      {
        data: { values: losses.map((loss, i) => ({ step: i + 1, loss })) },
        mark: 'line',
        width: 300,
        height: 220,
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'loss', type: 'quantitative', title: 'loss' },
        },
      },
      {
        data: { values: validations.map((v) => ({ ...v, pck: 100 * v.score })) },
        mark: { type: 'line', point: true },
        width: 300,
        height: 220,
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: {
            field: 'pck',
            type: 'quantitative',
            title: 'validation PCK@0.1 (%)',
            scale: { domain: [0, 100] },
          },
        },
      },
    ],
  } as Spec;
}

/** SVG of a Vega-Lite spec, rendered headless. */
export async function renderSvg(spec: Spec): Promise<string> {
  // loaded on first use: vega is ESM with top-level await, which CommonJS hosts (the tslab
  // kernel) can only load through import()
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec as unknown as TopLevelSpec).spec), {
    renderer: 'none',
  });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** PNG of a Vega-Lite spec (SVG rasterised by sharp at `scale`). */
export async function renderPng(spec: Spec, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(await renderSvg(spec)), { density: 72 * scale })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
}

/** Write `<path>.vl.json`, `.svg` and `.png`. */
export async function writeFigure(path: string, spec: Spec): Promise<void> {
  const svg = await renderSvg(spec);
  await writeFileAtomic(`${path}.vl.json`, Buffer.from(JSON.stringify(spec, null, 2)));
  await writeFileAtomic(`${path}.svg`, Buffer.from(svg));
  await writeFileAtomic(
    `${path}.png`,
    await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toBuffer(),
  );
}
