/**
 * The on-disk state of an `eval` run, so a killed run resumes and shards merge: `run.json`
 * (the settings that decide the numbers, written before any work) and `pairs.jsonl` (one line
 * per pair and method, appended pair by pair). Results are recomputed from the records, so a
 * resumed run and merged shards give exactly the table of one uninterrupted run.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { realPath } from '../core/outputs.ts';
import { ConfigError, DataError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';
import type { PairRecord, Table1Method, MethodDefinition } from '../correspondence/evaluate.ts';
import { shardIndices } from './shard.ts';

export const RUN_FILE = 'run.json';
export const RECORDS_FILE = 'pairs.jsonl';

/** Everything that decides the numbers; two runs with equal settings produce equal records. */
export interface RunSettings {
  dataset: string;
  model: string;
  /** Model family for the paper comparison (sd15, sd21) or null. */
  family: string | null;
  /** sha256 of the ordered pair ids and points: the list every shard must share. */
  pairList: string;
  pairCount: number;
  methods: Table1Method[];
  options: Record<string, unknown>;
  /** sha256 of each network / model file that changes results. */
  weights: Record<string, string | null>;
}

export interface RunFile extends RunSettings {
  shard: { k: number; n: number } | null;
  definitions: Record<string, MethodDefinition>;
  started: string;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function sha256Json(x: unknown): string {
  return createHash('sha256').update(JSON.stringify(x)).digest('hex');
}

/** The settings that differ between two runs, as "name: a vs b" lines. */
export function settingsDiff(a: RunSettings, b: RunSettings): string[] {
  const keys: (keyof RunSettings)[] = [
    'dataset',
    'model',
    'pairList',
    'pairCount',
    'methods',
    'options',
    'weights',
  ];
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
}

export function readRunFile(dir: string): RunFile {
  const path = join(dir, RUN_FILE);
  if (!existsSync(path)) throw new DataError(`${dir}: no ${RUN_FILE} (not an eval output folder)`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunFile;
  } catch (e) {
    throw new DataError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

export async function writeRunFile(dir: string, run: RunFile): Promise<void> {
  await writeFileAtomic(join(dir, RUN_FILE), Buffer.from(JSON.stringify(run, null, 2) + '\n'));
}

/**
 * The complete records of a pairs.jsonl. A last line cut short by a kill is dropped and cut
 * from the file (`repair`), so appends continue on a clean line; a bad line elsewhere is an error.
 */
export function readRecords<T = PairRecord>(path: string, repair = false): T[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const out: T[] = [];
  let good = 0;
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) {
      good += line.length + 1;
      continue;
    }
    const last = i === lines.length - 1; // no newline after it: the write was cut short
    try {
      if (last) throw new Error('no newline');
      out.push(JSON.parse(line) as T);
      good += line.length + 1;
    } catch (e) {
      if (last) {
        if (repair) truncateSync(path, Buffer.byteLength(text.slice(0, good)));
        break;
      }
      throw new DataError(`${path}: line ${i + 1} is not a JSON record (${(e as Error).message})`, {
        cause: e,
      });
    }
  }
  return out;
}

/**
 * Where a run's records go, and the records to reuse: a fresh folder, a resumed run (same
 * settings, or an error naming what differs: `differs` compares the folder's run.json with this
 * run), or a refusal to overwrite finished work. Shared by `eval` and `lotus-eval`.
 */
export function openRunFolder<T>(
  dir: string,
  o: {
    records: string;
    resume: boolean;
    overwrite: boolean;
    differs: (previous: unknown) => string[];
    /** "an eval run of pair records", for messages: [article + command, record noun]. */
    what: [string, string];
    /** The command writing: a folder holding another command's run is refused, even with --overwrite. */
    kind?: RunKind;
  },
): T[] {
  const jsonl = join(dir, o.records);
  const runFile = join(dir, RUN_FILE);
  if (o.kind) checkRunKind(dir, o.kind, o.overwrite, o.kind);
  const hasRun = existsSync(runFile);
  if (o.resume && hasRun) {
    let previous: unknown;
    try {
      previous = JSON.parse(readFileSync(runFile, 'utf8'));
    } catch (e) {
      previous = e;
    }
    if (
      previous instanceof Error ||
      typeof previous !== 'object' ||
      previous === null ||
      Array.isArray(previous)
    )
      throw new DataError(
        `--resume: ${runFile} is damaged (${previous instanceof Error ? previous.message : `holds ${JSON.stringify(previous)}`}), so what the run was cannot be known; --overwrite starts it again`,
      );
    const diff = o.differs(previous);
    if (diff.length)
      throw new ConfigError(
        `--resume: ${dir} holds a run with other settings:\n  ${diff.join('\n  ')}\nuse another --out, or --overwrite to start again`,
      );
    return readRecords<T>(jsonl, true);
  }
  const hasRecords = existsSync(jsonl) && statSync(jsonl).size > 0;
  if ((hasRun || hasRecords) && !o.overwrite && !o.resume)
    throw new ConfigError(
      `${dir} already holds ${o.what[0]} run (${readRecords(jsonl).length} ${o.what[1]}); pass --resume to continue it, --overwrite to start again, or another --out`,
    );
  mkdirSync(dir, { recursive: true });
  writeFileSync(jsonl, '');
  return [];
}

export type RunKind = 'eval' | 'lotus-eval';

/** Which command's run a folder holds: by its run.json's shape, else its record and table files. */
export function runKindOf(dir: string): RunKind | 'unknown' | undefined {
  const file = join(dir, RUN_FILE);
  if (existsSync(file)) {
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      if (typeof r.pairList === 'string') return 'eval';
      if (r.settings && typeof r.settings === 'object') return 'lotus-eval';
    } catch {
      // a damaged run.json: by its files below
    }
  }
  if (['pairs.jsonl', 'table1.md'].some((f) => existsSync(join(dir, f)))) return 'eval';
  if (['images.jsonl', 'table.md'].some((f) => existsSync(join(dir, f)))) return 'lotus-eval';
  return existsSync(file) ? 'unknown' : undefined;
}

const within = (child: string, parent: string) => {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

/**
 * Where a merge may write: never into or inside one of the folders it reads (a shard, or a
 * folder given to --merge), never over another command's run, and over a finished run of its
 * own only with --overwrite.
 * @throws ConfigError naming the folder and what it holds; nothing is written.
 */
export function checkMergeOutput(
  out: string,
  inputs: { args: readonly string[]; folders: readonly string[] },
  o: { kind: RunKind; overwrite: boolean },
): void {
  const target = realPath(out);
  // a shard folder, or anything inside one; a parent folder given to --merge itself (a run there
  // would become a shard of the next merge), though a new folder inside it is fine
  for (const f of [...inputs.folders, ...inputs.args])
    if (inputs.folders.includes(f) ? within(target, realPath(f)) : target === realPath(f))
      throw new ConfigError(
        `--merge: --out ${out} is ${realPath(f) === target ? '' : 'inside '}${f}, one of the folders this merge reads; its files would be replaced. Use another --out`,
      );
  checkRunKind(out, o.kind, o.overwrite, '--merge');
}

/** A folder that holds another command's run is never written; one of ours only with --overwrite (merges). */
function checkRunKind(dir: string, kind: RunKind, overwrite: boolean, what: string): void {
  const found = existsSync(dir) ? runKindOf(dir) : undefined;
  if (found === undefined) return;
  if (found !== kind)
    throw new ConfigError(
      `${what}: ${dir} holds ${found === 'unknown' ? 'a run.json of another program' : `${found === 'eval' ? 'an' : 'a'} ${found} run`}, not ${kind === 'eval' ? 'an' : 'a'} ${kind} one; it is left as it is. Use another --out`,
    );
  if (what === '--merge' && !overwrite)
    throw new ConfigError(
      `--merge: ${dir} already holds ${kind === 'eval' ? 'an' : 'a'} ${kind} run; pass --overwrite to replace it, or another --out`,
    );
}

/** The shard folders under each argument (a shard folder itself, or a folder holding shard-* folders). */
export function shardFolders(dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    if (!existsSync(d) || !statSync(d).isDirectory()) throw new ConfigError(`--merge: ${d} is not a folder`);
    if (existsSync(join(d, RUN_FILE))) {
      out.push(d);
      continue;
    }
    const subs = readdirSync(d)
      .filter((f) => existsSync(join(d, f, RUN_FILE)))
      .sort()
      .map((f) => join(d, f));
    if (!subs.length)
      throw new ConfigError(`--merge: ${d} holds no ${RUN_FILE} and no shard folders with one`);
    out.push(...subs);
  }
  return [...new Set(out)];
}

/**
 * The shards of one run, one per folder, must be 1..n of the same n, each once.
 * @returns n. @throws ConfigError naming the odd folder or the missing shards.
 */
export function checkShardSet(
  folders: readonly string[],
  shards: readonly ({ k: number; n: number } | null)[],
): number {
  const n = shards[0]?.n ?? 1;
  const seen = new Map<number, string>();
  for (const [i, shard] of shards.entries()) {
    const k = shard?.k ?? 1;
    if ((shard?.n ?? 1) !== n)
      throw new ConfigError(`--merge: ${folders[i]} is shard ${k}/${shard?.n ?? 1}, others are of ${n}`);
    if (seen.has(k))
      throw new ConfigError(`--merge: shard ${k}/${n} appears twice (${seen.get(k)}, ${folders[i]})`);
    seen.set(k, folders[i]);
  }
  const missing = Array.from({ length: n }, (_, i) => i + 1).filter((k) => !seen.has(k));
  if (missing.length)
    throw new ConfigError(`--merge: shard(s) ${missing.map((k) => `${k}/${n}`).join(', ')} missing`);
  return n;
}

/**
 * Records of all shards of one run, checked: same settings, shards 1..n each once, every pair
 * of every shard complete for every method.
 * @throws ConfigError naming what is missing or inconsistent.
 */
export function mergeShards(dirs: readonly string[]): { run: RunFile; records: PairRecord[] } {
  const folders = shardFolders(dirs);
  const runs = folders.map(readRunFile);
  const first = runs[0];
  for (const [i, r] of runs.entries()) {
    const diff = settingsDiff(first, r);
    if (diff.length)
      throw new ConfigError(
        `--merge: ${folders[i]} is another run than ${folders[0]}:\n  ${diff.join('\n  ')}`,
      );
  }
  const n = checkShardSet(
    folders,
    runs.map((r) => r.shard),
  );
  const records: PairRecord[] = [];
  for (const [i, r] of runs.entries()) {
    const recs = readRecords(join(folders[i], RECORDS_FILE));
    const expected = shardIndices(first.pairCount, r.shard ?? undefined);
    const have = new Set(recs.map((x) => `${x.index}:${x.method}`));
    const incomplete = expected.filter((idx) => first.methods.some((m) => !have.has(`${idx}:${m}`)));
    if (incomplete.length)
      throw new ConfigError(
        `--merge: ${folders[i]} (shard ${r.shard?.k ?? 1}/${n}) has not finished ${incomplete.length} of its ${expected.length} pairs; run it again with --resume`,
      );
    const wanted = new Set(expected);
    // a pair recomputed after a kill cut its lines short is recorded twice: the last one counts
    const latest = new Map<string, PairRecord>();
    for (const x of recs)
      if (wanted.has(x.index) && first.methods.includes(x.method)) latest.set(`${x.index}:${x.method}`, x);
    records.push(...latest.values());
  }
  return { run: first, records };
}
