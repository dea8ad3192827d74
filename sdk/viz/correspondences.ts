/**
 * Correspondence drawings: the two images side by side at a common height, each match a
 * coloured dot in both images joined by a line; optionally a similarity heatmap of one query.
 */
import sharp from 'sharp';
import type { RgbImage } from '../core/rgb.ts';
import { ShapeError } from '../core/errors.ts';

/** Distinct colours around the hue circle. */
export function palette(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `hsl(${Math.round((360 * i) / Math.max(n, 1))}, 90%, 50%)`);
}

export interface DrawOptions {
  height?: number;
  title?: string;
  lines?: boolean;
  /** One colour per match (e.g. green / red by the PCK threshold); default distinct hues. */
  colors?: string[];
  /** Ground-truth target points [x, y], one per match (null where unknown): drawn as rings. */
  truth?: ([number, number] | null)[];
  /** Boxes [l, t, r, b] to outline in each image (e.g. the foreground used for mutual matches). */
  boxes?: { source?: [number, number, number, number]; target?: [number, number, number, number] };
}

/**
 * Two images side by side at height `h` (each scaled to it), `gap` apart, below a `top` band:
 * the layout both drawings share. `compose(svg)` puts an SVG overlay (in canvas pixels) on them.
 */
export function sideBySide(a: RgbImage, b: RgbImage, h: number, gap: number, top: number) {
  const [sa, sb] = [h / a.height, h / b.height];
  const [wa, wb] = [Math.round(a.width * sa), Math.round(b.width * sb)];
  const width = wa + gap + wb;
  const tile = (img: RgbImage, w: number) =>
    sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(w, h, { fit: 'fill' })
      .png()
      .toBuffer();
  return {
    sa,
    sb,
    wa,
    width,
    /** x offset of the second image. */
    ox: wa + gap,
    compose: async (svg: string): Promise<Buffer> =>
      sharp({ create: { width, height: h + top, channels: 3, background: '#ffffff' } })
        .composite([
          { input: await tile(a, wa), left: 0, top },
          { input: await tile(b, wb), left: wa + gap, top },
          { input: Buffer.from(svg), left: 0, top: 0 },
        ])
        .png()
        .toBuffer(),
  };
}

/** PNG of `a` and `b` with matches (points [x, y] in each image's own pixels). */
export async function drawCorrespondences(
  a: RgbImage,
  b: RgbImage,
  matches: readonly { source: [number, number]; target: [number, number] }[],
  o: DrawOptions = {},
): Promise<Buffer> {
  const h = o.height ?? 384;
  const gap = 12;
  const top = o.title ? 30 : 0;
  const { sa, sb, wa, width, compose } = sideBySide(a, b, h, gap, top);
  if (o.colors && o.colors.length !== matches.length)
    throw new ShapeError(`colors: expected ${matches.length} (one per match), got ${o.colors.length}`);
  if (o.truth && o.truth.length !== matches.length)
    throw new ShapeError(`truth: expected ${matches.length} (one per match), got ${o.truth.length}`);
  const colors = o.colors ?? palette(matches.length);
  const r = Math.max(3, Math.round(h / 80));
  const marks = matches
    .map((m, i) => {
      for (const p of [...m.source, ...m.target])
        if (!Number.isFinite(p)) throw new ShapeError(`match ${i} has a non-finite coordinate`);
      const [x1, y1] = [m.source[0] * sa, m.source[1] * sa + top];
      const [x2, y2] = [m.target[0] * sb + wa + gap, m.target[1] * sb + top];
      const line =
        o.lines === false
          ? ''
          : `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="${colors[i]}" stroke-width="1.5" stroke-opacity="0.8"/>`;
      const dot = (x: number, y: number) =>
        `<circle cx="${x}" cy="${y}" r="${r}" fill="${colors[i]}" stroke="white" stroke-width="1.5"/>`;
      const gt = o.truth?.[i];
      const ring = gt
        ? `<circle cx="${gt[0] * sb + wa + gap}" cy="${gt[1] * sb + top}" r="${r + 3}" fill="none" stroke="${colors[i]}" stroke-width="2"/>` +
          `<line x1="${x2}" y1="${y2}" x2="${gt[0] * sb + wa + gap}" y2="${gt[1] * sb + top}" stroke="${colors[i]}" stroke-width="1" stroke-dasharray="3,2"/>`
        : '';
      return line + dot(x1, y1) + dot(x2, y2) + ring;
    })
    .join('');
  const rect = (box: readonly number[] | undefined, s: number, dx: number) =>
    box
      ? `<rect x="${box[0] * s + dx}" y="${box[1] * s + top}" width="${(box[2] - box[0]) * s}" height="${(box[3] - box[1]) * s}" fill="none" stroke="white" stroke-width="1.5" stroke-dasharray="6,4"/>`
      : '';
  const boxes = rect(o.boxes?.source, sa, 0) + rect(o.boxes?.target, sb, wa + gap);
  const title = o.title
    ? `<text x="${width / 2}" y="21" text-anchor="middle" font-size="16" font-family="DejaVu Sans, sans-serif" fill="#222">${o.title.replace(/[<&]/g, '')}</text>`
    : '';
  return compose(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h + top}">${title}${boxes}${marks}</svg>`,
  );
}

/** A similarity map [h*w] in [-1, 1] as a viridis-like heatmap image blended over `img`. */
export function similarityOverlay(img: RgbImage, sims: Float32Array, h: number, w: number): RgbImage {
  if (sims.length !== h * w)
    throw new ShapeError(`similarity map: expected ${h * w} values, got ${sims.length}`);
  const lo = Math.min(...sims);
  const hi = Math.max(...sims);
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const out = new Uint8Array(img.width * img.height * 3);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const s =
        sims[
          Math.min(h - 1, Math.floor((y * h) / img.height)) * w +
            Math.min(w - 1, Math.floor((x * w) / img.width))
        ];
      const t = ((s - lo) / (hi - lo || 1)) * (stops.length - 1);
      const k = Math.min(Math.floor(t), stops.length - 2);
      const f = t - k;
      for (let c = 0; c < 3; c++) {
        const heat = stops[k][c] * (1 - f) + stops[k + 1][c] * f;
        const i = (y * img.width + x) * 3 + c;
        out[i] = Math.round(0.45 * img.data[i] + 0.55 * heat);
      }
    }
  }
  return { data: out, width: img.width, height: img.height };
}
