/**
 * The fault matrix, generated: every command input that names a file, fed each kind of bad
 * file (missing, a folder, a FIFO, a dangling symlink, a symlink loop, empty, truncated, wrong
 * format), and every writing command pointed at outputs it must not use (read-only, an input,
 * another command's run). Each cell runs the real CLI in its own process (a FIFO read would block
 * this one forever) and asserts: exit code 2, one typed error line naming the path, no stack
 * trace, the inputs and earlier outputs byte-identical, no stray temp files, within a time bound.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, REFERENCE, REPO, tempDir } from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const COW = join(FIXTURES, 'spair/JPEGImages/cow/2007_005797.jpg');
const PAIRS = join(FIXTURES, 'spair/spair_71k_test-6.json');
const SECONDS = 60;

/** Every kind of bad input file, made at `path`; `good` is a valid file of the input's kind. */
const KINDS: Record<string, (path: string, good: Buffer) => void> = {
  missing: () => undefined,
  folder: (p) => mkdirSync(p),
  fifo: (p) => execFileSync('mkfifo', [p]),
  'dangling symlink': (p) => symlinkSync(`${p}.gone`, p),
  'symlink loop': (p) => {
    symlinkSync(`${p}.b`, p);
    symlinkSync(p, `${p}.b`);
  },
  empty: (p) => writeFileSync(p, ''),
  truncated: (p, good) => writeFileSync(p, good.subarray(0, Math.max(1, Math.floor(good.length / 3)))),
  'wrong format': (p) =>
    writeFileSync(p, Buffer.from('this is not the file you are looking for\n'.repeat(8))),
};

/** Each command input that names a file: a valid example, and the argv with the file at `x`. */
interface InputCase {
  name: string;
  ext: string;
  good: () => Buffer;
  argv: (x: string, out: string) => string[];
}
const NET = join(REFERENCE, 'cases', 'aggregation_network.safetensors');
const tinyNet = () => readFileSync(NET);
const INPUTS: InputCase[] = [
  {
    name: 'extract --images',
    ext: '.jpg',
    good: () => readFileSync(COW),
    argv: (x, out) => ['extract', '--model', TINY, '--images', x, '--out', out, '--steps', '1'],
  },
  {
    name: 'lotus <image>',
    ext: '.png',
    good: () => readFileSync(join(FIXTURES, 'photos/coffee.png')),
    argv: (x, out) => ['lotus', '--model', TINY, x, '--out', out],
  },
  {
    name: 'extract --latent',
    ext: '.safetensors',
    good: () => tinyNet(),
    argv: (x, out) => ['extract', '--model', TINY, '--latent', x, '--out', out, '--steps', '1'],
  },
  {
    name: 'aggregate --network',
    ext: '.safetensors',
    good: () => tinyNet(),
    argv: (x, out) => [
      'aggregate',
      '--network',
      x,
      '--features',
      features,
      '--out',
      join(out, 'a.safetensors'),
    ],
  },
  {
    name: 'eval --pairs',
    ext: '.json',
    good: () => readFileSync(PAIRS),
    argv: (x, out) => [
      'eval',
      '--model',
      TINY,
      '--dataset',
      'spair',
      '--root',
      join(FIXTURES, 'spair'),
      '--pairs',
      x,
      '--methods',
      'sd-layer-4',
      '--out',
      out,
    ],
  },
  {
    name: 'train --config',
    ext: '.json',
    good: () => Buffer.from('{"lr": 0.001, "batch_size": 2}'),
    argv: (x, out) => [
      'train',
      '--config',
      x,
      '--model',
      TINY,
      '--dataset',
      'spair',
      '--root',
      join(FIXTURES, 'spair'),
      '--out',
      out,
    ],
  },
  {
    name: 'lotus-eval --paper-numbers',
    ext: '.json',
    good: () => Buffer.from('{"nyuv2": {"abs_rel": 5.4}}'),
    argv: (x, out) => [
      'lotus-eval',
      '--model',
      TINY,
      '--task',
      'depth',
      '--dataset',
      'nyuv2',
      '--root',
      REPO,
      '--out',
      out,
      '--paper-numbers',
      x,
    ],
  },
  {
    name: 'aggregate --features',
    ext: '.safetensors',
    good: () => readFileSync(features),
    argv: (x, out) => ['aggregate', '--network', NET, '--features', x, '--out', join(out, 'a.safetensors')],
  },
  {
    name: 'match <image>',
    ext: '.jpg',
    good: () => readFileSync(COW),
    argv: (x, out) => ['match', '--model', TINY, x, COW, '--aggregator', NET, '--out', join(out, 'm.png')],
  },
  {
    name: 'kernel check <notebook>',
    ext: '.ipynb',
    good: () => Buffer.from(JSON.stringify({ nbformat: 4, metadata: {}, cells: [] })),
    argv: (x) => ['kernel', 'check', x],
  },
  {
    name: 'lotus --noise',
    ext: '.safetensors',
    good: () => tinyNet(),
    argv: (x, out) => ['lotus', '--model', TINY, COW, '--out', out, '--noise', x],
  },
];

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name);
    let st;
    try {
      st = statSync(p);
    } catch {
      out[p] = 'unreadable';
      continue;
    }
    out[p] = st.isFile()
      ? createHash('sha256').update(readFileSync(p)).digest('hex')
      : st.isFIFO()
        ? 'fifo'
        : 'dir';
  }
  return out;
}

/** The CLI in its own process (a FIFO read must not block this one), killed after SECONDS. */
function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; err: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'hyperfeatures.js'), ...argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, HYPERFEATURES_LOG_LEVEL: 'error', ...env },
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), SECONDS * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, err });
    });
  });
}

/** Run cells a few at a time (each is a process). */
async function pool<T>(items: T[], n: number, f: (x: T) => Promise<void>) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let x = queue.shift(); x !== undefined; x = queue.shift()) await f(x);
    }),
  );
}

/** A real feature file (extract's output) for the commands that read one beside the bad input. */
let features = '';

describe('fault matrix (generated): bad input files and outputs, each a typed one-line refusal', function () {
  this.timeout(15 * 60_000);

  before(async () => {
    const dir = tempDir();
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--images',
      COW,
      '--out',
      dir,
      '--steps',
      '1',
      '--save-timesteps',
      '0',
      '--image-size',
      '64',
      '--load-size',
      '64',
      '--no-cache',
    ]);
    assert.equal(r.code, 0, r.err);
    features = join(
      dir,
      readdirSync(dir).find((f) => f.endsWith('.safetensors'))!,
    );
  });

  it(`${INPUTS.length} inputs x ${Object.keys(KINDS).length} kinds of bad file`, async () => {
    const failures: string[] = [];
    const cells = INPUTS.flatMap((input) => Object.keys(KINDS).map((kind) => ({ input, kind })));
    await pool(cells, 3, async ({ input, kind }) => {
      const dir = tempDir();
      const x = join(dir, `input${input.ext}`);
      KINDS[kind](x, input.good());
      const out = join(tempDir(), 'out');
      const before = snapshot(dir);
      const r = await runCli(input.argv(x, out));
      const cell = `${input.name} / ${kind}`;
      const errors = r.err.split('\n').filter((l) => /^error \(\w+Error\)/.test(l));
      if (r.code !== 2)
        failures.push(
          `${cell}: exit code ${r.code}${r.code === null ? ` (killed after ${SECONDS} s: a hang)` : ''}: ${r.err.slice(0, 300)}`,
        );
      else if (errors.length !== 1)
        failures.push(`${cell}: expected one typed error line, got: ${r.err.slice(0, 300)}`);
      else if (!errors[0].includes('input') && !r.err.includes(x))
        failures.push(`${cell}: the error does not name the file: ${errors[0]}`);
      if (/\n\s+at .+:\d+:\d+/.test(r.err)) failures.push(`${cell}: a stack trace`);
      assert.deepEqual(snapshot(dir), before, `${cell}: the input folder changed`);
      const made = (() => {
        try {
          return readdirSync(out, { recursive: true }).map(String);
        } catch {
          return [];
        }
      })();
      if (made.some((f) => !f.startsWith('.hf-write-test')))
        failures.push(`${cell}: wrote ${made.join(', ')} to --out`);
    });
    assert.deepEqual(
      failures,
      [],
      `${failures.length} of ${cells.length} cells failed:\n${failures.join('\n')}`,
    );
  });

  it("outputs: read-only, equal to an input, another command's run", async function () {
    const ro = tempDir();
    chmodSync(ro, 0o555);
    const isRoot = process.getuid?.() === 0;
    const evalRun = tempDir();
    writeFileSync(join(evalRun, 'run.json'), JSON.stringify({ pairList: 'x', shard: null }));
    writeFileSync(join(evalRun, 'pairs.jsonl'), '{"index":0}\n');
    const lotusRun = tempDir();
    writeFileSync(join(lotusRun, 'run.json'), JSON.stringify({ settings: {}, shard: null, count: 1 }));
    writeFileSync(join(lotusRun, 'images.jsonl'), '{"index":0}\n');
    const imgDir = tempDir();
    copyFileSync(COW, join(imgDir, 'cow.jpg'));
    const cases: [string, string[], RegExp][] = [
      ...(isRoot
        ? []
        : ([
            [
              'extract into a read-only folder',
              ['extract', '--model', TINY, '--images', COW, '--out', join(ro, 'x')],
              /cannot write there|no write permission/,
            ],
          ] as [string, string[], RegExp][])),
      [
        'aggregate --out equal to its features',
        [
          'aggregate',
          '--network',
          NET,
          '--features',
          join(imgDir, 'cow.jpg'),
          '--out',
          join(imgDir, 'cow.jpg'),
        ],
        /is also an input|expected a \.safetensors|features/,
      ],
      [
        'lotus-eval into an eval run',
        [
          'lotus-eval',
          '--model',
          TINY,
          '--task',
          'depth',
          '--dataset',
          'custom',
          '--root',
          imgDir,
          '--out',
          evalRun,
          '--overwrite',
        ],
        /holds an eval run|a custom dataset needs/,
      ],
      [
        'eval into a lotus-eval run',
        [
          'eval',
          '--model',
          TINY,
          '--dataset',
          'spair',
          '--root',
          join(FIXTURES, 'spair'),
          '--pairs',
          PAIRS,
          '--methods',
          'sd-layer-4',
          '--out',
          lotusRun,
          '--overwrite',
        ],
        /holds a lotus-eval run, not an eval one/,
      ],
    ];
    const before = [evalRun, lotusRun, imgDir].map(snapshot);
    const failures: string[] = [];
    for (const [name, argv, message] of cases) {
      const r = await runCli(argv);
      if (r.code !== 2 || !message.test(r.err))
        failures.push(`${name}: exit ${r.code}: ${r.err.slice(0, 300)}`);
    }
    assert.deepEqual([evalRun, lotusRun, imgDir].map(snapshot), before);
    chmodSync(ro, 0o755);
    assert.deepEqual(failures, []);
  });

  it('a cache that cannot hold entries (a file, a full disk) warns and the work goes on; a full --out says so', async function () {
    const extract = (out: string, env: NodeJS.ProcessEnv) =>
      runCli(
        [
          'extract',
          '--model',
          TINY,
          '--images',
          COW,
          '--out',
          out,
          '--steps',
          '1',
          '--save-timesteps',
          '0',
          '--image-size',
          '64',
          '--load-size',
          '64',
        ],
        { HYPERFEATURES_LOG_LEVEL: 'warn', ...env },
      );
    // the cache folder is a file: graphs are built in a temp folder for the run, features not kept
    const notADir = join(tempDir(), 'cache-file');
    writeFileSync(notADir, 'x');
    const out = tempDir();
    const r = await extract(out, { HYPERFEATURES_CACHE: notADir });
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.err,
      /the graph cache .*cache-file.* cannot take this graph \(a file stands where a folder should be\); building it in .* for this run only/,
    );
    assert.match(r.err, /the feature cache .* cannot take more entries/);
    assert.ok(readdirSync(out).some((f) => f.endsWith('.safetensors')));
    assert.equal(readFileSync(notADir, 'utf8'), 'x');
    // a real full disk, where this machine lets us mount a small tmpfs
    const mnt = tempDir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      process.stderr.write(
        '      (no tmpfs mount here: the full-disk cells are covered by the cache-is-a-file cell above)\n',
      );
      return;
    }
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=1k', 'count=4096'], {
        stdio: 'ignore',
      }).toString();
    } catch {
      // dd stops at the full disk: that is the point
    }
    try {
      const cached = await extract(tempDir(), { HYPERFEATURES_CACHE: join(mnt, 'cache') });
      assert.equal(cached.code, 0, cached.err);
      assert.match(cached.err, /cannot take this graph \(no space left on its device\)/);
      const full = await extract(join(mnt, 'out'), { HYPERFEATURES_CACHE: tempDir() });
      assert.equal(full.code, 2, full.err);
      assert.match(
        full.err,
        /error \(DataError\): cannot write .*out\/2007_005797\.safetensors \(no space left on the device of .*: needs \d+ bytes, \d+ free\); the previous file, if any, is unchanged/,
      );
      const left = readdirSync(mnt, { recursive: true }).map(String);
      assert.ok(!left.some((f) => f.includes('.tmp-')), `no temp files: ${left.join(', ')}`);
      // a read-only mount (root ignores permission bits, not a read-only filesystem)
      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      const ro = await extract(join(mnt, 'ro-out'), { HYPERFEATURES_CACHE: tempDir() });
      assert.equal(ro.code, 2, ro.err);
      assert.match(
        ro.err,
        /error \(ConfigError\): --out .*ro-out: cannot write there \(read-only filesystem\)/,
      );
      const roCache = await extract(tempDir(), { HYPERFEATURES_CACHE: join(mnt, 'cache') });
      assert.equal(roCache.code, 0, roCache.err);
      assert.match(
        roCache.err,
        /cannot take this graph \((read-only filesystem|its folder cannot be created)\)/,
      );
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('resumable runs x damaged states (empty, garbage, truncated, other settings): refused, left as they were', async () => {
    // one real run of each kind, made small
    const evalRun = join(tempDir(), 'eval');
    const evalArgs = (out: string, extra: string[] = []) => [
      'eval',
      '--model',
      TINY,
      '--dataset',
      'spair',
      '--root',
      join(FIXTURES, 'spair'),
      '--pairs',
      PAIRS,
      '--methods',
      'sd-layer-4',
      '--limit',
      '1',
      '--load-size',
      '64',
      '--image-size',
      '64',
      '--steps',
      '1',
      '--save-timesteps',
      '0',
      '--out',
      out,
      ...extra,
    ];
    const trainRun = join(tempDir(), 'train');
    const trainArgs = (out: string, extra: string[] = []) => [
      'train',
      '--model',
      TINY,
      '--dataset',
      'spair',
      '--root',
      join(FIXTURES, 'spair'),
      '--pairs',
      PAIRS,
      '--val-every',
      '0',
      '--steps',
      '1',
      '--batch-size',
      '1',
      '--ddim-steps',
      '1',
      '--save-timesteps',
      '0',
      '--load-size',
      '64',
      '--image-size',
      '64',
      '--projection-dim',
      '128',
      '--output-resolution',
      '8',
      '--limit',
      '1',
      '--out',
      out,
      ...extra,
    ];
    for (const [args, name] of [
      [evalArgs(evalRun), 'eval'],
      [trainArgs(trainRun), 'train'],
    ] as const) {
      const r = await runCli([...args]);
      assert.equal(r.code, 0, `${name}: ${r.err}`);
    }
    const runs: {
      name: string;
      dir: string;
      state: string;
      argv: (out: string) => string[];
      other: (b: Buffer) => Buffer;
    }[] = [
      {
        name: 'eval',
        dir: evalRun,
        state: 'run.json',
        argv: (out) => evalArgs(out, ['--resume']),
        other: (b) => {
          const j = JSON.parse(b.toString());
          j.options.loadSize = 96;
          return Buffer.from(JSON.stringify(j));
        },
      },
      {
        name: 'train',
        dir: trainRun,
        state: 'train_state.safetensors',
        argv: (out) => trainArgs(out, ['--resume']),
        other: (b) => {
          // the settings kept in the header: another learning rate
          const text = b.toString('latin1');
          return Buffer.from(text.replace('\\"lr\\":0.001', '\\"lr\\":0.002'), 'latin1');
        },
      },
    ];
    const damage: Record<string, (b: Buffer) => Buffer> = {
      empty: () => Buffer.alloc(0),
      garbage: () => Buffer.from('garbage, not a state'),
      truncated: (b) => b.subarray(0, Math.floor(b.length / 2)),
    };
    const failures: string[] = [];
    for (const run of runs)
      for (const [kind, make] of [...Object.entries(damage), ['other settings', run.other] as const]) {
        const dir = tempDir();
        cpSync(run.dir, dir, { recursive: true });
        const state = join(dir, run.state);
        const changed = make(readFileSync(state));
        if (kind === 'other settings')
          assert.notDeepEqual(changed, readFileSync(state), `${run.name}: the settings edit took`);
        writeFileSync(state, changed);
        const before = snapshot(dir);
        const r = await runCli(run.argv(dir));
        const cell = `${run.name} --resume / ${kind}`;
        if (r.code !== 2) failures.push(`${cell}: exit ${r.code}: ${r.err.slice(0, 300)}`);
        else if (!/^error \(\w+Error\): .*(run\.json|train_state|other settings)/m.test(r.err))
          failures.push(`${cell}: the error does not name the state: ${r.err.slice(0, 300)}`);
        if (/\n\s+at .+:\d+:\d+/.test(r.err)) failures.push(`${cell}: a stack trace`);
        const after = snapshot(dir);
        if (JSON.stringify(after) !== JSON.stringify(before))
          failures.push(`${cell}: the run folder changed`);
      }
    assert.deepEqual(failures, [], failures.join('\n'));
  });
});
