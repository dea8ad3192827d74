/**
 * `train --config`: the original code's train.yaml (or the same keys as JSON), read into the
 * train command's options. Only flat `key: value` YAML is read (scalars, [inline] and "- item"
 * lists), which is all that file uses; an unknown key is an error that names it.
 */
import { ConfigError } from '../core/errors.ts';
import { readInputFile } from '../core/fs.ts';

export interface TrainConfig {
  model?: string;
  lr?: number;
  weightDecay?: number;
  batchSize?: number;
  steps?: number;
  valEvery?: number;
  projectionDim?: number;
  resolution?: number;
  loadSize?: number;
  saveTimesteps?: number[];
  ddimSteps?: number;
  pairs?: string;
  valPairs?: string;
  seed?: number;
  alpha?: number;
  /** Keys read and deliberately not used here (logging, paths of the original's own layout). */
  ignored: string[];
}

function scalar(v: string): unknown {
  const t = v.trim();
  if (t === '' || t === '~' || t === 'null') return null;
  if (t === 'true' || t === 'True') return true;
  if (t === 'false' || t === 'False') return false;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return Number(t);
  if (/^\[.*\]$/.test(t))
    return t
      .slice(1, -1)
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
      .map(scalar);
  if (/^(['"]).*\1$/.test(t)) return t.slice(1, -1);
  return t;
}

/** Flat YAML -> object. @throws ConfigError naming the line it cannot read. */
export function parseFlatYaml(text: string, file: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let listKey: string | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '');
    if (!line.trim()) return;
    const item = /^\s+-\s*(.*)$/.exec(line) ?? /^-\s*(.*)$/.exec(line);
    if (item && listKey) {
      (out[listKey] as unknown[]).push(scalar(item[1]));
      return;
    }
    const kv = /^([A-Za-z_][\w-]*)\s*:\s*(.*)$/.exec(line);
    if (!kv || /^\s/.test(line))
      throw new ConfigError(
        `${file}:${i + 1}: expected "key: value" (nested maps are not used by train.yaml), got "${raw.trim()}"`,
      );
    if (kv[2].trim() === '') {
      out[kv[1]] = [];
      listKey = kv[1];
    } else {
      out[kv[1]] = scalar(kv[2]);
      listKey = undefined;
    }
  });
  return out;
}

const num = (file: string, k: string, v: unknown): number => {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ConfigError(`${file}: ${k}: expected a number, got ${JSON.stringify(v)}`);
  return v;
};

const USED = [
  'model_id',
  'lr',
  'weight_decay',
  'batch_size',
  'max_epochs',
  'max_steps_per_epoch',
  'val_every_n_steps',
  'projection_dim',
  'output_resolution',
  'load_resolution',
  'save_timestep',
  'num_timesteps',
  'train_path',
  'val_path',
  'seed',
  'pck_threshold',
  'diffusion_mode',
  'num_norm_groups',
];
const IGNORED = [
  'plot_every_n_steps',
  'results_folder',
  'wandb_project',
  'wandb_run',
  'device',
  'image_path',
  'weights_path',
  'idxs',
  'prompt',
  'negative_prompt',
  'guidance_scale',
  'flip_timesteps',
  'use_paper_size',
  'feature_dims',
  'dims',
];

export function readTrainConfig(file: string): TrainConfig {
  let text: string;
  try {
    text = readInputFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `--config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message.replace(`${file}: `, '')})`,
      { cause: e },
    );
  }
  let raw: Record<string, unknown>;
  if (/\.json$/i.test(file)) {
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`--config ${file}: not JSON (${(e as Error).message})`, { cause: e });
    }
  } else raw = parseFlatYaml(text, file);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError(
      `--config ${file}: expected a mapping of the original's train.yaml keys (lr: ..., batch_size: ...), got ${JSON.stringify(raw)?.slice(0, 60) ?? String(raw)}`,
    );
  const unknown = Object.keys(raw).filter((k) => !USED.includes(k) && !IGNORED.includes(k));
  if (unknown.length)
    throw new ConfigError(
      `--config ${file}: unknown key(s) ${unknown.join(', ')}; known: ${[...USED, ...IGNORED].sort().join(', ')}`,
    );
  const c: TrainConfig = { ignored: Object.keys(raw).filter((k) => IGNORED.includes(k)) };
  const r = raw as Record<string, unknown>;
  if (r.diffusion_mode !== undefined && r.diffusion_mode !== 'inversion')
    throw new ConfigError(
      `--config ${file}: diffusion_mode ${JSON.stringify(r.diffusion_mode)}: training here uses inversion features (the paper's)`,
    );
  if (r.num_norm_groups !== undefined && r.num_norm_groups !== 32)
    throw new ConfigError(
      `--config ${file}: num_norm_groups ${JSON.stringify(r.num_norm_groups)}: the network uses GroupNorm(32)`,
    );
  if (r.model_id !== undefined) c.model = String(r.model_id);
  if (r.lr !== undefined) c.lr = num(file, 'lr', r.lr);
  if (r.weight_decay !== undefined) c.weightDecay = num(file, 'weight_decay', r.weight_decay);
  if (r.batch_size !== undefined) c.batchSize = num(file, 'batch_size', r.batch_size);
  const epochs = r.max_epochs === undefined ? 1 : num(file, 'max_epochs', r.max_epochs);
  if (r.max_steps_per_epoch !== undefined)
    c.steps = epochs * num(file, 'max_steps_per_epoch', r.max_steps_per_epoch);
  if (r.val_every_n_steps !== undefined) c.valEvery = num(file, 'val_every_n_steps', r.val_every_n_steps);
  if (r.projection_dim !== undefined) c.projectionDim = num(file, 'projection_dim', r.projection_dim);
  if (r.output_resolution !== undefined) c.resolution = num(file, 'output_resolution', r.output_resolution);
  if (r.load_resolution !== undefined) c.loadSize = num(file, 'load_resolution', r.load_resolution);
  if (r.num_timesteps !== undefined) c.ddimSteps = num(file, 'num_timesteps', r.num_timesteps);
  if (r.save_timestep !== undefined) {
    if (!Array.isArray(r.save_timestep) || !r.save_timestep.every((x) => Number.isInteger(x)))
      throw new ConfigError(
        `--config ${file}: save_timestep: expected a list of integers, got ${JSON.stringify(r.save_timestep)}`,
      );
    c.saveTimesteps = r.save_timestep as number[];
  }
  if (r.train_path !== undefined) c.pairs = String(r.train_path);
  if (r.val_path !== undefined) c.valPairs = String(r.val_path);
  if (r.seed !== undefined) c.seed = num(file, 'seed', r.seed);
  if (r.pck_threshold !== undefined) c.alpha = num(file, 'pck_threshold', r.pck_threshold);
  return c;
}
