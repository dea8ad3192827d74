/**
 * One evaluated pair as a picture, to look at a surprising number: the source image with its
 * numbered keypoints; the target with the true points, the threshold circle around each
 * (alpha x max side of the image or box), the box, and each prediction joined to its truth,
 * green when it is a hit and red when not.
 */
import { sideBySide } from './correspondences.ts';
import type { RgbImage } from '../core/rgb.ts';
import type { PairRecord } from '../correspondence/evaluate.ts';

const esc = (s: string) => s.replace(/[<&>"]/g, (c) => `&#${c.charCodeAt(0)};`);

export async function explainPairPng(
  source: RgbImage,
  target: RgbImage,
  r: PairRecord,
  o: { by?: 'img' | 'bbox'; height?: number } = {},
): Promise<Buffer> {
  const by = o.by ?? (r.thresholdBbox !== null ? 'bbox' : 'img');
  const threshold = by === 'bbox' ? r.thresholdBbox! : r.thresholdImg;
  const hits = by === 'bbox' ? r.hitsBbox! : r.hitsImg;
  const h = o.height ?? 420;
  const top = 48;
  const { sa, sb, ox, width, compose } = sideBySide(source, target, h, 16, top);
  const label = (x: number, y: number, text: string, colour: string) =>
    `<text x="${x + 6}" y="${y - 6}" font-size="12" font-family="DejaVu Sans, sans-serif" fill="${colour}" stroke="black" stroke-width="0.6" paint-order="stroke">${text}</text>`;
  const parts: string[] = [];
  r.sourcePoints.forEach(([x, y], i) => {
    const [px, py] = [x * sa, y * sa + top];
    parts.push(
      `<circle cx="${px}" cy="${py}" r="4" fill="#ffd400" stroke="black" stroke-width="1"/>`,
      label(px, py, String(i), '#ffd400'),
    );
  });
  if (r.targetBbox) {
    const [l, t, rr, b] = r.targetBbox;
    parts.push(
      `<rect x="${ox + l * sb}" y="${top + t * sb}" width="${(rr - l) * sb}" height="${(b - t) * sb}" fill="none" stroke="#00b7ff" stroke-width="1.5" stroke-dasharray="5,3"/>`,
    );
  }
  r.targetPoints.forEach(([x, y], i) => {
    const [tx, ty] = [ox + x * sb, top + y * sb];
    const [px, py] = [ox + r.predictedPoints[i][0] * sb, top + r.predictedPoints[i][1] * sb];
    const colour = hits[i] ? '#19c819' : '#ff2a2a';
    parts.push(
      `<circle cx="${tx}" cy="${ty}" r="${threshold * sb}" fill="none" stroke="#ffd400" stroke-width="1" stroke-opacity="0.8"/>`,
      `<line x1="${px}" y1="${py}" x2="${tx}" y2="${ty}" stroke="${colour}" stroke-width="1.5"/>`,
      `<circle cx="${tx}" cy="${ty}" r="4" fill="#ffd400" stroke="black" stroke-width="1"/>`,
      `<rect x="${px - 4}" y="${py - 4}" width="8" height="8" fill="${colour}" stroke="white" stroke-width="1"/>`,
      label(tx, ty, String(i), '#ffd400'),
    );
  });
  const n = hits.filter(Boolean).length;
  const title = `${esc(r.method)} · pair ${r.index} ${esc(r.id)} · PCK@${r.alpha} (${by}) ${n}/${hits.length}, threshold ${threshold.toFixed(1)} px`;
  const legend =
    'source keypoints (yellow, numbered) · target: truth (yellow dot, threshold circle), prediction (square: green hit, red miss)';
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h + top}">
<text x="${width / 2}" y="19" text-anchor="middle" font-size="15" font-family="DejaVu Sans, sans-serif" fill="#222">${title}</text>
<text x="${width / 2}" y="38" text-anchor="middle" font-size="11" font-family="DejaVu Sans, sans-serif" fill="#555">${legend}</text>
${parts.join('\n')}</svg>`;
  return compose(svg);
}
