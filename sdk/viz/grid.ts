/**
 * Labelled image grids (PCA maps beside their photos, correspondence sheets): each cell is
 * scaled to a square of `cell` pixels (nearest for small feature maps, so pixels stay
 * visible), with column titles and row labels rendered as SVG text by sharp.
 */
import sharp from 'sharp';
import type { RgbImage } from '../core/rgb.ts';
import { ShapeError } from '../core/errors.ts';

export interface GridOptions {
  cell?: number;
  gap?: number;
  columnTitles?: string[];
  rowLabels?: string[];
  title?: string;
}

const escapeXml = (s: string) =>
  s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** PNG bytes of the grid. @throws ShapeError for ragged rows. */
export async function imageGridPng(rows: RgbImage[][], o: GridOptions = {}): Promise<Buffer> {
  const cols = rows[0]?.length ?? 0;
  if (!cols || rows.some((r) => r.length !== cols))
    throw new ShapeError('imageGrid: every row needs the same number of images');
  const cell = o.cell ?? 192;
  const gap = o.gap ?? 6;
  const left = o.rowLabels ? 130 : gap;
  const top = (o.title ? 34 : 0) + (o.columnTitles ? 28 : gap);
  const width = left + cols * (cell + gap);
  const height = top + rows.length * (cell + gap);
  const tiles = await Promise.all(
    rows.flatMap((row, r) =>
      row.map(async (img, c) => ({
        input: await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
          .resize(cell, cell, { kernel: img.width < cell / 2 ? 'nearest' : 'lanczos3', fit: 'fill' })
          .png()
          .toBuffer(),
        left: left + c * (cell + gap),
        top: top + r * (cell + gap),
      })),
    ),
  );
  const text: string[] = [];
  if (o.title)
    text.push(
      `<text x="${width / 2}" y="24" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(o.title)}</text>`,
    );
  o.columnTitles?.forEach((t, c) =>
    text.push(
      `<text x="${left + c * (cell + gap) + cell / 2}" y="${top - 9}" text-anchor="middle" font-size="14">${escapeXml(t)}</text>`,
    ),
  );
  o.rowLabels?.forEach((t, r) =>
    text.push(
      `<text x="8" y="${top + r * (cell + gap) + cell / 2 + 5}" font-size="14">${escapeXml(t)}</text>`,
    ),
  );
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" fill="#222">${text.join('')}</svg>`;
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite([...tiles, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer();
}
