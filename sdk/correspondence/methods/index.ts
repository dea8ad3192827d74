/**
 * The registry of evaluation methods, in the order `eval` runs and lists them. To add a row:
 * write its module (methods/method.ts says what it provides) and add it here.
 */
import { dift } from './dift.ts';
import { dino } from './dino.ts';
import { dinov2 } from './dinov2.ts';
import { sdDino } from './sd-dino.ts';
import { oursDinov2 } from './ours-dinov2.ts';
import type { EvalMethod } from './method.ts';
import { oneStep } from './one-step.ts';
import { ours } from './ours.ts';
import { oursPruned } from './ours-pruned.ts';
import { sdConcatAll } from './sd-concat-all.ts';
import { sdLayer4 } from './sd-layer-4.ts';
import { sdLayerPruned } from './sd-layer-pruned.ts';

export const METHODS = [
  ours,
  oneStep,
  sdLayer4,
  sdConcatAll,
  sdLayerPruned,
  oursPruned,
  dift,
  dino,
  dinov2,
  sdDino,
  oursDinov2,
] as const;
export type Table1Method = (typeof METHODS)[number]['key'];
export const TABLE1_METHODS: readonly Table1Method[] = METHODS.map((m) => m.key);
/** What `eval` runs without --methods: the paper's diffusion rows (the others need their own models / time). */
export const DEFAULT_METHODS: Table1Method[] = METHODS.filter((m) => m.byDefault).map((m) => m.key);

export function methodOf(key: Table1Method): EvalMethod {
  return METHODS.find((m) => m.key === key)!;
}

export { PAPER_ROWS, PAPER_TABLE1, type PaperRow } from './paper.ts';
export { diftSettings } from './dift-settings.ts';
export { PairFeatures, type EvalMethod, type RunContext } from './method.ts';
