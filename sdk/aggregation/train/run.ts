/**
 * A training run as a researcher runs it: a folder holding the network (the export), the full
 * training state (parameters, AdamW moments, step), the loss and validation curves as JSON lines
 * and CSV, all written atomically; `resume` continues from the last checkpoint with the same data
 * order (a pure function of seed and position) and optimizer state, so a run killed at any moment
 * and resumed ends where an uninterrupted run ends. A non-finite loss stops the run at the last
 * good step and says which.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/fs.ts';
import { log } from '../../core/logger.ts';
import type { Progress } from '../../core/progress.ts';
import { Rng } from '../../core/rng.ts';
import { SafetensorsReader, readAllSafetensors, writeSafetensors } from '../../core/safetensors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { AggregationNetwork } from '../network.ts';
import { Trainer, type AdamWOptions, type TrainingExample } from './trainer.ts';

export const RUN_FILES = {
  network: 'aggregation_network.safetensors',
  state: 'train_state.safetensors',
  curves: 'curves.jsonl',
  csv: 'curves.csv',
  releasePt: 'aggregation_network.pt',
} as const;

export interface CurveRow {
  step: number;
  /** Mean loss of the step's batch (null for the validation before training). */
  loss: number | null;
  val_pck_img?: number;
  val_pck_bbox?: number;
  /** Seconds since the run (or its resumption) started. */
  seconds: number;
}

export interface TrainRunOptions extends AdamWOptions {
  out: string;
  steps: number;
  batchSize: number;
  /** Validate every N steps (and before the first); 0: never. */
  valEvery: number;
  /** Write the checkpoint every N steps (default: valEvery, else only at the end), and always at the end. */
  checkpointEvery?: number;
  seed: number;
  resolution: number;
  resume: boolean;
  /** What identifies the run (model, data, recipe): a resume with other settings is refused. */
  settings: Record<string, unknown>;
  examples: { count: number; get(i: number): Promise<TrainingExample> };
  /** PCK by image (and box) at the threshold `alpha` (default 0.1). */
  validate?: (network: AggregationNetwork) => Promise<{ img: number; bbox?: number; alpha?: number }>;
  progress?: Progress;
  /** Also write aggregation_network.pt in the authors' release layout (with the AdamW state). */
  releasePt?: boolean;
}

export interface TrainRunResult {
  step: number;
  stoppedAt?: number;
  curves: CurveRow[];
}

/** Pair indices of a step's batch: epoch e visits a seeded permutation of all pairs. */
export function batchIndices(step: number, batchSize: number, count: number, seed: number): number[] {
  return Array.from({ length: batchSize }, (_, j) => {
    const p = (step - 1) * batchSize + j;
    const epoch = Math.floor(p / count);
    return new Rng(seed + 7919 * epoch).permutation(count)[p % count];
  });
}

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x,
  );

function readCurves(path: string, upTo: number): CurveRow[] {
  if (!existsSync(path)) return [];
  const rows: CurveRow[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as CurveRow;
      if (typeof r.step === 'number' && r.step <= upTo) rows.push(r);
    } catch {
      // a line cut by a kill: dropped, the step is redone
    }
  }
  return rows;
}

function csv(rows: CurveRow[]): string {
  const f = (v: number | null | undefined) => (v === undefined || v === null ? '' : String(v));
  return (
    'step,loss,val_pck_img,val_pck_bbox,seconds\n' +
    rows
      .map((r) => [r.step, f(r.loss), f(r.val_pck_img), f(r.val_pck_bbox), r.seconds.toFixed(2)].join(','))
      .join('\n') +
    '\n'
  );
}

async function saveState(o: TrainRunOptions, trainer: Trainer, rows: CurveRow[]): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  // a non-finite network is never written over a good checkpoint
  for (const [name, p] of trainer.network.params)
    if (!p.data.every(Number.isFinite))
      throw new DataError(
        `training: parameter ${name} is not finite at step ${trainer.step}; nothing was written`,
      );
  for (const [name, p] of trainer.network.params) {
    tensors[`param.${name}`] = p;
    tensors[`m.${name}`] = trainer.m.get(name)!;
    tensors[`v.${name}`] = trainer.v.get(name)!;
  }
  // the state is self-contained (resume reads only it); the network file is the export
  await writeSafetensors(join(o.out, RUN_FILES.state), tensors, {
    format: 'hyperfeatures-train-state',
    step: String(trainer.step),
    // the data order's position: pairs drawn so far; the order itself is batchIndices(seed)
    data_position: String(trainer.step * o.batchSize),
    seed: String(o.seed),
    settings: canonical(o.settings),
    config: JSON.stringify(trainer.network.config),
  });
  await trainer.network.save(join(o.out, RUN_FILES.network));
  if (o.releasePt) {
    const t = trainer.options;
    await trainer.network.saveRelease(join(o.out, RUN_FILES.releasePt), {
      optimizer: {
        m: trainer.m,
        v: trainer.v,
        step: trainer.step,
        lr: t.lr,
        betas: [t.beta1, t.beta2],
        eps: t.eps,
        weightDecay: t.weightDecay,
      },
    });
  }
  await writeFileAtomic(join(o.out, RUN_FILES.csv), Buffer.from(csv(rows)));
}

async function loadState(o: TrainRunOptions, trainer: Trainer): Promise<number> {
  const path = join(o.out, RUN_FILES.state);
  const reader = await SafetensorsReader.open(path);
  const meta = { ...reader.metadata };
  await reader.close();
  if (meta.format !== 'hyperfeatures-train-state')
    throw new ConfigError(`${path}: not a hyperfeatures training state`);
  const saved = JSON.parse(meta.settings ?? '{}') as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(o.settings)])].sort();
  const differ = keys.filter((k) => canonical(saved[k]) !== canonical(o.settings[k]));
  if (differ.length)
    throw new ConfigError(
      `--resume: ${o.out} holds a run with other settings: ${differ
        .map(
          (k) =>
            `${k} was ${canonical(saved[k])?.slice(0, 80)}, now ${canonical(o.settings[k])?.slice(0, 80)}`,
        )
        .join('; ')}. Use another --out, or the same settings`,
    );
  const step = Number(meta.step);
  if (!Number.isInteger(step) || step < 0 || step > o.steps)
    throw new DataError(
      `${path}: step ${JSON.stringify(meta.step)} is not a step of this run (0..${o.steps}); the state is damaged`,
    );
  if (meta.seed !== String(o.seed) || meta.data_position !== String(step * o.batchSize))
    throw new DataError(
      `${path}: seed ${meta.seed} / data position ${meta.data_position} do not match this run (seed ${o.seed}, ${step * o.batchSize} pairs drawn by step ${step}); the state is damaged`,
    );
  let tensors: Map<string, Tensor>;
  try {
    ({ tensors } = await readAllSafetensors(path));
  } catch (e) {
    throw new DataError(
      `${path}: the training state cannot be read (${(e as Error).message}); it is damaged`,
      { cause: e },
    );
  }
  for (const [name, current] of trainer.network.params) {
    const [p, m, v] = ['param', 'm', 'v'].map((k) => tensors.get(`${k}.${name}`));
    if (!p || !m || !v) throw new ConfigError(`${path}: no saved state for parameter ${name}`);
    for (const [what, t] of [
      ['param', p],
      ['m', m],
      ['v', v],
    ] as const) {
      if (t.shape.join('x') !== current.shape.join('x'))
        throw new DataError(
          `${path}: ${what}.${name} is ${t.shape.join('x')}, the network's is ${current.shape.join('x')}; the state is damaged`,
        );
      if (!t.data.every(Number.isFinite) || (what === 'v' && t.data.some((x) => x < 0)))
        throw new DataError(
          `${path}: ${what}.${name} holds non-finite${what === 'v' ? ' or negative' : ''} values; the state is damaged, nothing to resume from`,
        );
    }
    trainer.network.params.set(name, p);
    trainer.m.set(name, m);
    trainer.v.set(name, v);
  }
  trainer.step = step;
  return trainer.step;
}

export async function runTraining(network: AggregationNetwork, o: TrainRunOptions): Promise<TrainRunResult> {
  for (const [k, v] of [
    ['steps', o.steps],
    ['batchSize', o.batchSize],
  ] as const)
    if (!Number.isInteger(v) || v < 1)
      throw new ConfigError(`train: ${k} must be a positive integer, got ${v}`);
  if (!Number.isInteger(o.valEvery) || o.valEvery < 0)
    throw new ConfigError(`train: valEvery must be a non-negative integer, got ${o.valEvery}`);
  if (!o.examples.count) throw new ConfigError('train: no training pairs');
  mkdirSync(o.out, { recursive: true });
  const trainer = new Trainer(network, { ...o, resolution: o.resolution });
  const statePath = join(o.out, RUN_FILES.state);
  const curvesPath = join(o.out, RUN_FILES.curves);
  let start = 0;
  if (existsSync(statePath)) {
    if (!o.resume)
      throw new ConfigError(
        `${o.out} already holds a training run; pass --resume to continue it, or choose another --out`,
      );
    start = await loadState(o, trainer);
    log().info(`resuming ${o.out} at step ${start}`);
  } else if (o.resume) log().info(`--resume: no checkpoint in ${o.out} yet; starting at step 0`);
  const rows = readCurves(curvesPath, start);
  await writeFileAtomic(curvesPath, Buffer.from(rows.map((r) => JSON.stringify(r) + '\n').join('')));
  const began = Date.now();
  const seconds = () => (Date.now() - began) / 1000;
  const every = o.checkpointEvery ?? (o.valEvery || o.steps);
  let lastVal = '';
  const record = (r: CurveRow) => {
    rows.push(r);
    appendFileSync(curvesPath, JSON.stringify(r) + '\n');
  };
  const validate = async (step: number, loss: number | null) => {
    const v = await o.validate!(network);
    lastVal = `val PCK@${v.alpha ?? 0.1} ${(100 * v.img).toFixed(1)}%${v.bbox === undefined ? '' : ` (bbox ${(100 * v.bbox).toFixed(1)}%)`}`;
    log().info(`step ${step}: ${lastVal}`);
    record({
      step,
      loss,
      val_pck_img: v.img,
      ...(v.bbox === undefined ? {} : { val_pck_bbox: v.bbox }),
      seconds: seconds(),
    });
  };
  const result: TrainRunResult = { step: start, curves: rows };
  try {
    if (start === 0 && o.validate && o.valEvery) await validate(0, null);
    for (let step = start + 1; step <= o.steps; step++) {
      const batch = await Promise.all(
        batchIndices(step, o.batchSize, o.examples.count, o.seed).map((i) => o.examples.get(i)),
      );
      const r = await trainer.trainBatch(batch);
      if (!r.applied) {
        result.stoppedAt = step;
        await saveState(o, trainer, rows);
        log().error(
          `training stopped at step ${step}: non-finite loss (${r.loss}); the checkpoint in ${o.out} holds the parameters after step ${step - 1}`,
        );
        break;
      }
      result.step = step;
      const validating = o.validate && o.valEvery && step % o.valEvery === 0;
      if (validating) await validate(step, r.loss);
      else record({ step, loss: r.loss, seconds: seconds() });
      o.progress?.note(`step ${step}, loss ${r.loss.toFixed(4)}${lastVal ? `, ${lastVal}` : ''}`);
      o.progress?.update(step);
      if (step % every === 0 || step === o.steps || validating) await saveState(o, trainer, rows);
    }
    if (result.step === start && !result.stoppedAt) await saveState(o, trainer, rows);
  } finally {
    await trainer.dispose();
  }
  return result;
}
