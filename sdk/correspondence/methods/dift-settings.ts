/** DIFT's settings for SPair (its prompt names the category), with the options given. */
import { DIFT_DEFAULTS } from '../../diffusion/noised.ts';
import type { DiftOptions } from '../evaluate.ts';

export function diftSettings(o: DiftOptions = {}): Required<DiftOptions> {
  const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return { ...DIFT_DEFAULTS, prompt: 'a photo of a {category}', ...given };
}
