/**
 * What to capture during a diffusion run: save timesteps in generation numbering
 * (0 = noisiest, steps-1 = cleanest; DESIGN.md semantics 2) and decoder layers 1..L.
 */
import { ConfigError } from '../core/errors.ts';

export const PAPER_SAVE_TIMESTEPS = [49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0] as const;
export const ONE_STEP_SAVE_TIMESTEPS = [0] as const;

export interface CapturePlan {
  /** Distinct save timesteps in 0..steps-1, in the order features are stacked. */
  saveTimesteps: number[];
  /** Distinct decoder layers, 1-based, in stacking order. */
  layers: number[];
}

/**
 * Validate a plan against a step count and layer count; collects every problem.
 * @throws ConfigError
 */
export function validatePlan(plan: CapturePlan, steps: number, layerCount: number): CapturePlan {
  const problems: string[] = [];
  const ts = plan.saveTimesteps;
  if (!ts.length) problems.push('saveTimesteps is empty');
  const badT = ts.filter((t) => !Number.isInteger(t) || t < 0 || t >= steps);
  if (badT.length)
    problems.push(`save timesteps ${JSON.stringify(badT)} are outside 0..${steps - 1} for ${steps} steps`);
  const dupT = ts.filter((t, i) => ts.indexOf(t) !== i);
  if (dupT.length) problems.push(`save timesteps repeat: ${JSON.stringify([...new Set(dupT)])}`);
  if (!plan.layers.length) problems.push('layers is empty');
  const badL = plan.layers.filter((l) => !Number.isInteger(l) || l < 1 || l > layerCount);
  if (badL.length) problems.push(`layers ${JSON.stringify(badL)} are outside 1..${layerCount}`);
  const dupL = plan.layers.filter((l, i) => plan.layers.indexOf(l) !== i);
  if (dupL.length) problems.push(`layers repeat: ${JSON.stringify([...new Set(dupL)])}`);
  if (problems.length) throw new ConfigError(`invalid capture plan: ${problems.join('; ')}`);
  return { saveTimesteps: [...ts], layers: [...plan.layers] };
}

/** Parse "1-12" or "1,4,10" style lists (CLI). */
export function parseIndexList(spec: string, what: string): number[] {
  const out: number[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m)
      throw new ConfigError(
        `${what}: cannot parse "${part}" in "${spec}"; expected e.g. "1-12" or "49,45,40"`,
      );
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    const step = a <= b ? 1 : -1;
    for (let v = a; step > 0 ? v <= b : v >= b; v += step) out.push(v);
  }
  return out;
}
