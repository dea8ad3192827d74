/**
 * The Diffusion Hyperfeatures paper's Table 1: its rows in its order (name as printed, layers
 * and timesteps columns, the method that computes each, and the SD family a row belongs to)
 * and its numbers (PCK@0.1, img / bbox).
 */
export interface PaperRow {
  key: string;
  label: string;
  layers: string;
  timesteps: string;
  /** The registered method that computes this row (none: DHPF). */
  method?: string;
  /** The row is this run's only for checkpoints of this family (Ours vs Ours-SDv2-1). */
  family?: 'sd15' | 'sd21';
}

export const PAPER_ROWS: PaperRow[] = [
  { key: 'dino', label: 'DINO', layers: '1', timesteps: '-', method: 'dino' },
  { key: 'dhpf', label: 'DHPF', layers: '34', timesteps: '-' },
  { key: 'sd-layer-4', label: 'SD-Layer-4', layers: '1', timesteps: '1', method: 'sd-layer-4' },
  { key: 'sd-concat-all', label: 'SD-Concat-All', layers: '12', timesteps: '1', method: 'sd-concat-all' },
  { key: 'ours', label: 'Ours', layers: '12', timesteps: '11', method: 'ours', family: 'sd15' },
  { key: 'one-step', label: 'Ours-One-Step', layers: '12', timesteps: '1', method: 'one-step' },
  {
    key: 'sd-layer-pruned',
    label: 'SD-Layer-Pruned',
    layers: '1',
    timesteps: '1',
    method: 'sd-layer-pruned',
  },
  { key: 'ours-pruned', label: 'Ours-Pruned', layers: '1', timesteps: '1', method: 'ours-pruned' },
  { key: 'ours-sdv2-1', label: 'Ours-SDv2-1', layers: '12', timesteps: '11', method: 'ours', family: 'sd21' },
];

export const PAPER_TABLE1: Record<string, { spair: [number, number]; cub: [number, number] }> = {
  dino: { spair: [51.68, 41.04], cub: [72.72, 55.9] },
  dhpf: { spair: [55.28, 42.63], cub: [77.3, 61.42] },
  'sd-layer-4': { spair: [58.8, 46.58], cub: [78.43, 61.22] },
  'sd-concat-all': { spair: [52.12, 41.83], cub: [70.22, 54.05] },
  ours: { spair: [72.56, 64.61], cub: [82.29, 69.42] },
  'one-step': { spair: [63.74, 54.69], cub: [76.59, 62.11] },
  'sd-layer-pruned': { spair: [57.69, 48.16], cub: [80.67, 67.21] },
  'ours-pruned': { spair: [64.02, 53.74], cub: [79.1, 63.95] },
  'ours-sdv2-1': { spair: [70.74, 64.85], cub: [80.39, 68.04] },
};
