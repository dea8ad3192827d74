/**
 * Work split over array jobs: `--shard k/n` (1-based k), or read from the scheduler's
 * environment when not given: Slurm job arrays (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT,
 * SLURM_ARRAY_TASK_MIN) and Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX, with the
 * completions count from --shard-count or HYPERFEATURES_SHARD_COUNT: Kubernetes does not
 * export it). Shard k of n takes the items at positions i with i mod n = k - 1, so every
 * shard gets every category of a sorted pair list.
 */
import { ConfigError } from '../core/errors.ts';

export interface Shard {
  /** 1-based. */
  k: number;
  n: number;
  /** Where it came from, for the log. */
  source: string;
}

/** "k/n" (1-based k) -> [k, n]. @throws ConfigError */
export function parseShard(spec: string): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const [k, n] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!m || n < 1 || k < 1 || k > n)
    throw new ConfigError(`option --shard: expected k/n with 1 <= k <= n (e.g. 2/8), got "${spec}"`);
  return [k, n];
}

const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name}="${v}" is not a non-negative integer`);
  return n;
};

/**
 * The shard to run: the flag, else the environment, else none (the whole list).
 * @throws ConfigError for inconsistent values (an index outside the count, an Indexed Job without a count).
 */
export function resolveShard(
  flag: string | undefined,
  shardCount: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Shard | undefined {
  if (flag) {
    const [k, n] = parseShard(flag);
    return { k, n, source: '--shard' };
  }
  const slurmId = int('SLURM_ARRAY_TASK_ID', env.SLURM_ARRAY_TASK_ID);
  let slurmCount = int('SLURM_ARRAY_TASK_COUNT', env.SLURM_ARRAY_TASK_COUNT);
  if (slurmId !== undefined && slurmCount === undefined) {
    // Slurm before 18.08 exports no count: the span of consecutive ids gives it, else refuse
    const max = int('SLURM_ARRAY_TASK_MAX', env.SLURM_ARRAY_TASK_MAX);
    const step = int('SLURM_ARRAY_TASK_STEP', env.SLURM_ARRAY_TASK_STEP) ?? 1;
    if (max === undefined || step !== 1)
      throw new ConfigError(
        `SLURM_ARRAY_TASK_ID ${slurmId} is set but not the array's size (no SLURM_ARRAY_TASK_COUNT${max === undefined ? ' or SLURM_ARRAY_TASK_MAX' : `, step ${step}`}): pass --shard k/n, or the whole list would run in every task`,
      );
    slurmCount = max - (int('SLURM_ARRAY_TASK_MIN', env.SLURM_ARRAY_TASK_MIN) ?? 0) + 1;
  }
  if (slurmCount !== undefined && slurmId !== undefined) {
    const k = slurmId - (int('SLURM_ARRAY_TASK_MIN', env.SLURM_ARRAY_TASK_MIN) ?? 0) + 1;
    if (k < 1 || k > slurmCount)
      throw new ConfigError(
        `SLURM_ARRAY_TASK_ID ${slurmId} is not within ${slurmCount} consecutive tasks from SLURM_ARRAY_TASK_MIN; use --array=0-${slurmCount - 1} (no step), or pass --shard k/n`,
      );
    return { k, n: slurmCount, source: 'Slurm array' };
  }
  const index = int('JOB_COMPLETION_INDEX', env.JOB_COMPLETION_INDEX);
  if (index !== undefined) {
    const n =
      int('--shard-count', shardCount) ?? int('HYPERFEATURES_SHARD_COUNT', env.HYPERFEATURES_SHARD_COUNT);
    if (!n)
      throw new ConfigError(
        'JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the number of completions is not: pass --shard-count <completions> or set HYPERFEATURES_SHARD_COUNT',
      );
    if (index >= n) throw new ConfigError(`JOB_COMPLETION_INDEX ${index} is not below the shard count ${n}`);
    return { k: index + 1, n, source: 'Kubernetes Indexed Job' };
  }
  if (shardCount)
    throw new ConfigError(
      '--shard-count applies to Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX is not set)',
    );
  return undefined;
}

/** The positions of shard k of n in a list of `length` items. */
export function shardIndices(length: number, shard?: Pick<Shard, 'k' | 'n'>): number[] {
  return Array.from({ length }, (_, i) => i).filter((i) => !shard || i % shard.n === shard.k - 1);
}
