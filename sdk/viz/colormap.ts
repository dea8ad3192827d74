/** Colour maps as anchor colours, linearly interpolated (matplotlib's, sampled). */

/** Matplotlib's "Spectral" (red -> yellow -> blue): depth, near = warm. */
export const SPECTRAL = [
  [158, 1, 66],
  [213, 62, 79],
  [244, 109, 67],
  [253, 174, 97],
  [254, 224, 139],
  [255, 255, 191],
  [230, 245, 152],
  [171, 221, 164],
  [102, 194, 165],
  [50, 136, 189],
  [94, 79, 162],
];

/** Matplotlib's "viridis" (9 anchors): similarity heatmaps. */
export const VIRIDIS = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 74, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [253, 231, 37],
];

/** The colour at v in [0, 1] (clamped) of a map given by anchor colours, rounded to bytes. */
export function colormap(v: number, stops: number[][]): number[] {
  const t = Math.min(1, Math.max(0, v)) * (stops.length - 1);
  const k = Math.min(Math.floor(t), stops.length - 2);
  const f = t - k;
  return stops[k].map((c, i) => Math.round(c * (1 - f) + stops[k + 1][i] * f));
}
