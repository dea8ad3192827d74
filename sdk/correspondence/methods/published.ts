/**
 * Published SPair-71k numbers of methods after the paper (PCK@0.1 by box, per keypoint, as the
 * authors report them): printed beside a run's rows for context, never as its results.
 */
export interface PublishedResult {
  method: string;
  setting: 'zero-shot' | 'supervised';
  /** PCK@0.1 (bbox) on SPair-71k test, in percent. */
  spairBbox: number;
  source: string;
}

export const PUBLISHED_SPAIR: PublishedResult[] = [
  {
    method: 'DINOv2 ViT-B/14 alone',
    setting: 'zero-shot',
    spairBbox: 55.6,
    source: 'Zhang et al., A Tale of Two Features, NeurIPS 2023 (arXiv:2305.15347)',
  },
  {
    method: 'SD-DINO (SD + DINOv2 fusion)',
    setting: 'zero-shot',
    spairBbox: 64.0,
    source: 'Zhang et al., A Tale of Two Features, NeurIPS 2023 (arXiv:2305.15347)',
  },
  {
    method: 'SD-DINO (SD + DINOv2 fusion)',
    setting: 'supervised',
    spairBbox: 74.6,
    source: 'Zhang et al., A Tale of Two Features, NeurIPS 2023 (arXiv:2305.15347)',
  },
  {
    method: 'GeoAware-SC',
    setting: 'zero-shot',
    spairBbox: 65.4,
    source: 'Zhang et al., Telling Left from Right, CVPR 2024 (arXiv:2311.17034)',
  },
  {
    method: 'GeoAware-SC',
    setting: 'supervised',
    spairBbox: 85.6,
    source: 'Zhang et al., Telling Left from Right, CVPR 2024 (arXiv:2311.17034)',
  },
  { method: 'MARCO (DINOv2-based)', setting: 'supervised', spairBbox: 87.3, source: 'MARCO, CVPR 2026' },
];

/** The published numbers as markdown lines (for SPair runs). */
export function publishedMarkdown(): string[] {
  return [
    '',
    'Published SPair-71k results of later methods (PCK@0.1 bbox as their authors report them on the full test set; not computed by this run, and not comparable with a subset):',
    '',
    '| method | setting | PCK@0.1 bbox | source |',
    '| --- | --- | ---: | --- |',
    ...PUBLISHED_SPAIR.map((p) => `| ${p.method} | ${p.setting} | ${p.spairBbox.toFixed(1)} | ${p.source} |`),
  ];
}
