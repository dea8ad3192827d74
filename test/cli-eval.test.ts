/**
 * `hyperfeatures eval` that survives and scales: two shards in separate processes (one told by
 * --shard, one by a Slurm array's environment) merged with --merge give exactly the table of
 * one unsharded run; a run killed with SIGKILL mid-way (plus a record cut short) and resumed
 * gives it too; finished work is never overwritten silently; shards come from the
 * environment of Slurm arrays and Kubernetes Indexed Jobs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { resolveShard, shardIndices } from '../sdk/cli/shard.ts';
import { ConfigError } from '../sdk/core/errors.ts';
import { table1Markdown } from '../sdk/correspondence/evaluate.ts';
import { writeSafetensors } from '../sdk/core/safetensors.ts';
import { Tensor } from '../sdk/core/tensor.ts';
import { SPAIR_FIXTURE_ARGS, REFERENCE, REPO, runCli, tempDir } from './helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const DIMS = [96, 96, 96, 96, 96, 96, 64, 64, 64, 32, 32, 32];
const METHODS = 'ours,one-step,sd-layer-4,sd-concat-all,sd-layer-pruned,ours-pruned,dift';

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [join(REPO, 'bin', 'hyperfeatures.js'), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; err: string }>((res) =>
    child.on('exit', (code) => res({ code, err })),
  );
  return { child, done };
}

const lines = (path: string) =>
  existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).length : 0;
/** The pair records of a run, parsed. */
const recordsOf = (path: string): { method: string; predictedPoints: number[][] }[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

describe('eval: resume, shards and merge', function () {
  this.timeout(900_000);
  const dir = tempDir();
  const net = join(dir, 'net.safetensors');
  const oneStep = join(dir, 'net1.safetensors');
  const args = (out: string, extra: string[] = []) => [
    'eval',
    '--model',
    TINY,
    ...SPAIR_FIXTURE_ARGS,
    '--steps',
    '2',
    '--save-timesteps',
    '1,0',
    '--image-size',
    '64',
    '--load-size',
    '64',
    '--output-resolution',
    '16',
    '--aggregator',
    net,
    '--one-step-aggregator',
    oneStep,
    '--methods',
    METHODS,
    '--dift-ensemble',
    '2',
    '--out',
    out,
    ...extra,
  ];
  const whole = tempDir();

  before(async () => {
    await AggregationNetwork.create(
      { featureDims: DIMS, saveTimesteps: [1, 0], projectionDim: 128, numNormGroups: 32 },
      1,
    ).save(net);
    await AggregationNetwork.create(
      { featureDims: DIMS, saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
      2,
    ).save(oneStep);
    const r = await runCli(args(whole));
    assert.equal(r.code, 0, r.err);
  });

  it("writes every row with the paper's definitions", () => {
    const results = JSON.parse(readFileSync(join(whole, 'results.json'), 'utf8'));
    const m = results.methods;
    assert.equal(results.pairs, 6);
    assert.deepEqual([m['sd-layer-4'].layers, m['sd-layer-4'].timesteps], [1, 1]);
    assert.deepEqual([m['sd-concat-all'].layers, m['sd-concat-all'].timesteps], [12, 1]);
    assert.deepEqual([m.ours.layers, m.ours.timesteps], [12, 2]);
    assert.deepEqual([m['ours-pruned'].layers, m['ours-pruned'].timesteps], [1, 1]);
    assert.match(m['sd-layer-4'].definition, /layer 4 .*t = -1/);
    assert.match(m['ours-pruned'].definition, /single highest-weighted map/);
    assert.match(m.dift.definition, /t = 261.*up-block 1.*2 seeded noises.*prompt "a photo of a {category}"/);
    const table = readFileSync(join(whole, 'table1.md'), 'utf8');
    assert.match(table, /\| SD-Concat-All \| 12 \| 1 \| [\d.]+ \| [\d.]+ \| 52.12 \| 41.83 \|/);
    assert.match(table, /\| Ours-One-Step \| 12 \| 1 \|/);
    assert.match(table, /\| DINO \| 1 \| - \| not computed \| not computed \| 51.68 \| 41.04 \|/);
    assert.match(table, /\| Ours-SDv2-1 \| 12 \| 11 \| not computed/);
  });

  it("compares an SD-2.1 model with the paper's Ours-SDv2-1 row", () => {
    const results = JSON.parse(readFileSync(join(whole, 'results.json'), 'utf8'));
    const table = table1Markdown(results, 'spair', 'sd21-model', 'sd21');
    assert.match(table, /\| Ours-SDv2-1 \| 12 \| 2 \| [\d.]+ \| [\d.]+ \| 70.74 \| 64.85 \|/);
    assert.match(table, /\| Ours \| 12 \| 11 \| not computed \| not computed \| 72.56 \| 64.61 \|/);
    const cub = table1Markdown(results, 'cub', 'sd15-model', 'sd15');
    assert.match(cub, /\| Ours \| 12 \| 2 \| [\d.]+ \| [\d.]+ \| 82.29 \| 69.42 \|/);
  });

  it('evaluates the DINO row with a ViT from make-tiny --style dino', async () => {
    const vit = join(tempDir(), 'vit');
    assert.equal((await runCli(['make-tiny', vit, '--style', 'dino'])).code, 0);
    const out = tempDir();
    const r = await runCli([
      ...args(out, ['--limit', '2', '--dino', vit, '--dino-layer', '1']).map((x, i, all) =>
        all[i - 1] === '--methods' ? 'dino,sd-layer-4' : x,
      ),
    ]);
    assert.equal(r.code, 0, r.err);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.match(results.methods.dino.definition, /key facet of block 1 \(0-based\) of 3.*stride 4/);
    assert.match(r.out, /\| DINO \| 1 \| - \| [\d.]+ \| [\d.]+ \| 51.68 \| 41.04 \|/);
  });

  it('two shards in separate processes, merged, give exactly the unsharded results', async () => {
    const parent = tempDir();
    const a = spawnCli(args(parent, ['--shard', '1/2']));
    const b = spawnCli(args(parent), {
      SLURM_ARRAY_TASK_ID: '1',
      SLURM_ARRAY_TASK_COUNT: '2',
      SLURM_ARRAY_TASK_MIN: '0',
    });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.err);
    assert.equal(rb.code, 0, rb.err);
    assert.match(rb.err, /shard 2\/2 \(from Slurm array\): 3 of 6 pairs/);
    assert.equal(lines(join(parent, 'shard-1-of-2', 'pairs.jsonl')), 3 * 7);
    const merged = tempDir();
    const m = await runCli(['eval', '--merge', parent, '--out', merged]);
    assert.equal(m.code, 0, m.err);
    for (const f of ['results.json', 'table1.md'])
      assert.equal(readFileSync(join(merged, f), 'utf8'), readFileSync(join(whole, f), 'utf8'), f);
    // the shard folders can be named one by one too; a missing shard is named
    const one = await runCli(['eval', '--merge', join(parent, 'shard-1-of-2'), '--out', tempDir()]);
    assert.equal(one.code, 2);
    assert.match(one.err, /shard\(s\) 2\/2 missing/);
    // a merge never writes into what it reads, nor over a finished run without --overwrite
    const hash = (d: string) =>
      readdirSync(d)
        .sort()
        .map((f) => `${f}:${readFileSync(join(d, f), 'utf8').length}:${readFileSync(join(d, f), 'utf8')}`)
        .join('|');
    const shard1 = join(parent, 'shard-1-of-2');
    const before = hash(shard1);
    for (const out of [shard1, join(shard1, 'sub'), parent]) {
      const r = await runCli(['eval', '--merge', parent, '--out', out]);
      assert.equal(r.code, 2, out);
      assert.match(r.err, /one of the folders this merge reads; its files would be replaced/);
    }
    assert.equal(hash(shard1), before, 'the shard is untouched');
    const finished = readFileSync(join(merged, 'results.json'), 'utf8');
    const again = await runCli(['eval', '--merge', parent, '--out', merged]);
    assert.equal(again.code, 2);
    assert.match(again.err, /already holds an eval run; pass --overwrite to replace it/);
    assert.equal((await runCli(['eval', '--merge', parent, '--out', merged, '--overwrite'])).code, 0);
    assert.equal(readFileSync(join(merged, 'results.json'), 'utf8'), finished);
    // another command's run is never replaced, --overwrite or not
    const lotusRun = tempDir();
    writeFileSync(
      join(lotusRun, 'run.json'),
      JSON.stringify({ settings: { task: 'depth' }, shard: null, count: 1 }),
    );
    writeFileSync(join(lotusRun, 'images.jsonl'), '{"index":0}\n');
    for (const extra of [[], ['--overwrite']]) {
      const r = await runCli(['eval', '--merge', parent, '--out', lotusRun, ...extra]);
      assert.equal(r.code, 2);
      assert.match(r.err, /holds a lotus-eval run, not an eval one; it is left as it is/);
      const plain = await runCli(args(lotusRun, extra));
      assert.equal(plain.code, 2);
      assert.match(plain.err, /holds a lotus-eval run, not an eval one/);
    }
    assert.equal(readFileSync(join(lotusRun, 'images.jsonl'), 'utf8'), '{"index":0}\n');
    // a new folder inside the parent is fine
    assert.equal((await runCli(['eval', '--merge', parent, '--out', join(parent, 'merged')])).code, 0);
  });

  it('a run killed mid-way (and a record cut short) resumes to exactly the same results', async () => {
    const out = tempDir();
    const jsonl = join(out, 'pairs.jsonl');
    const run = spawnCli(args(out));
    for (let i = 0; i < 6000 && lines(jsonl) < 7; i++) await new Promise((r) => setTimeout(r, 50));
    run.child.kill('SIGKILL');
    await run.done;
    const kept = lines(jsonl);
    assert.ok(kept >= 7 && kept < 6 * 7, `killed after ${kept} records`);
    appendFileSync(jsonl, '{"index": 5, "method": "ours", "predic'); // a write cut short by the kill
    const again = await runCli(args(out));
    assert.equal(again.code, 2, 'finished work is not overwritten without --resume or --overwrite');
    assert.match(again.err, /already holds an eval run \(\d+ pair records\); pass --resume/);
    const other = await runCli(
      args(out, ['--resume']).map((x, i, all) => (all[i - 1] === '--output-resolution' ? '8' : x)),
    );
    assert.equal(other.code, 2);
    assert.match(
      other.err,
      /holds a run with other settings:\n\s+options: .*"outputResolution":16.* vs .*"outputResolution":8/,
    );
    const r = await runCli(args(out, ['--resume']));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /resuming: \d pair\(s\) already recorded/);
    for (const f of ['results.json', 'table1.md'])
      assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(whole, f), 'utf8'), f);
    const records = readFileSync(jsonl, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(
      new Set(records.map((x) => `${x.index}:${x.method}`)).size,
      6 * 7,
      'every pair and method recorded',
    );
  });
});

describe('shards from the command line and the scheduler environment', () => {
  it('reads --shard, Slurm arrays and Kubernetes Indexed Jobs, 1-based', () => {
    assert.deepEqual(resolveShard('2/4', undefined, {}), { k: 2, n: 4, source: '--shard' });
    assert.deepEqual(
      resolveShard(undefined, undefined, {
        SLURM_ARRAY_TASK_ID: '7',
        SLURM_ARRAY_TASK_COUNT: '4',
        SLURM_ARRAY_TASK_MIN: '4',
      }),
      {
        k: 4,
        n: 4,
        source: 'Slurm array',
      },
    );
    assert.deepEqual(resolveShard(undefined, '3', { JOB_COMPLETION_INDEX: '0' }), {
      k: 1,
      n: 3,
      source: 'Kubernetes Indexed Job',
    });
    assert.deepEqual(
      resolveShard(undefined, undefined, { JOB_COMPLETION_INDEX: '2', HYPERFEATURES_SHARD_COUNT: '3' })?.k,
      3,
    );
    assert.equal(resolveShard(undefined, undefined, {}), undefined);
  });

  it('says what is wrong with inconsistent shard settings', () => {
    assert.throws(() => resolveShard('3/2', undefined, {}), /1 <= k <= n/);
    assert.throws(
      () => resolveShard(undefined, undefined, { JOB_COMPLETION_INDEX: '1' }),
      /pass --shard-count/,
    );
    assert.throws(
      () => resolveShard(undefined, '2', { JOB_COMPLETION_INDEX: '2' }),
      /not below the shard count 2/,
    );
    assert.throws(
      () => resolveShard(undefined, undefined, { SLURM_ARRAY_TASK_ID: '9', SLURM_ARRAY_TASK_COUNT: '4' }),
      (e: Error) => e instanceof ConfigError && /--array=0-3/.test(e.message),
    );
    // an index without the array's size never runs the whole list unsharded
    assert.throws(
      () => resolveShard(undefined, undefined, { SLURM_ARRAY_TASK_ID: '2' }),
      /SLURM_ARRAY_TASK_ID 2 is set but not the array's size .*pass --shard k\/n/,
    );
    assert.deepEqual(
      resolveShard(undefined, undefined, {
        SLURM_ARRAY_TASK_ID: '2',
        SLURM_ARRAY_TASK_MIN: '1',
        SLURM_ARRAY_TASK_MAX: '3',
      }),
      { k: 2, n: 3, source: 'Slurm array' },
    );
    assert.throws(
      () =>
        resolveShard(undefined, undefined, {
          SLURM_ARRAY_TASK_ID: '2',
          SLURM_ARRAY_TASK_MAX: '8',
          SLURM_ARRAY_TASK_STEP: '2',
        }),
      /step 2/,
    );
  });

  it('an empty shard reports PCK as n/a, not 0.00', () => {
    const empty = { perKeypoint: 0, perImage: 0, keypoints: 0, byCategory: {} };
    const md = table1Markdown(
      {
        pairs: 0,
        keypoints: 0,
        loadSize: 224,
        outputResolution: 64,
        methods: { ours: { pck: { '0.1': { img: empty, bbox: empty } }, layers: 12, timesteps: 11 } },
      } as unknown as Parameters<typeof table1Markdown>[0],
      'spair',
      'tiny',
    );
    assert.match(md, /\| Ours[^|]* \| 12 \| 11 \| n\/a \| n\/a \|/);
    assert.doesNotMatch(md, /\| 0\.00 \|/);
  });

  it('splits a list into disjoint, covering, interleaved slices', () => {
    const parts = [1, 2, 3].map((k) => shardIndices(10, { k, n: 3 }));
    assert.deepEqual(parts, [
      [0, 3, 6, 9],
      [1, 4, 7],
      [2, 5, 8],
    ]);
  });
});

describe('eval: the DINOv2 and SD-DINO rows (SD-DINO protocol, tiny models)', function () {
  this.timeout(600_000);
  const v2 = join(tempDir(), 'dinov2');
  const args = (out: string, extra: string[]) => [
    'eval',
    '--model',
    TINY,
    ...SPAIR_FIXTURE_ARGS,
    '--methods',
    'dinov2,sd-dino',
    '--dinov2',
    v2,
    '--sd-dino-sd-size',
    '128',
    '--sd-dino-dino-size',
    '112',
    '--out',
    out,
    ...extra,
  ];
  before(async () => {
    assert.equal((await runCli(['make-tiny', v2, '--style', 'dinov2', '--registers'])).code, 0);
  });

  it('writes both rows, says what they compute, and at weight 1 SD-DINO predicts exactly what DINOv2 does', async () => {
    const out = tempDir();
    const r = await runCli(args(out, ['--sd-dino-weight', '1']));
    assert.equal(r.code, 0, r.err);
    const table = readFileSync(join(out, 'table1.md'), 'utf8');
    assert.match(table, /\| DINOv2 \(not in the paper\) \| 1 \| - \| [\d.]+ \| [\d.]+ \| - \| - \|/);
    assert.match(table, /\| SD-DINO \(zero-shot fusion; not in the paper\) \| 3 \| 1 \|/);
    assert.match(table, /sd-dino: .*t = 100 .*"a photo of \{category\}".*weighted SD 0 : DINOv2 1/);
    assert.match(table, /dinov2: .*4 registers.*letterboxed to 112 px/);
    assert.match(table, /\| GeoAware-SC \| zero-shot \| 65.4 \| Zhang et al., Telling Left from Right/);
    const records = recordsOf(join(out, 'pairs.jsonl'));
    const of = (m: string) => records.filter((x) => x.method === m).map((x) => x.predictedPoints);
    assert.equal(of('dinov2').length, 6);
    assert.deepEqual(of('sd-dino'), of('dinov2'));
  });

  it('fuses SD at the default weight (other predictions), takes given embeddings, and refuses bad settings', async () => {
    const out = tempDir();
    const emb = join(tempDir(), 'emb.safetensors');
    await writeSafetensors(emb, { default: new Tensor(new Float32Array(77 * 32).fill(0.1), [1, 77, 32]) });
    const r = await runCli(args(out, ['--embeddings', emb]));
    assert.equal(r.code, 0, r.err);
    const records = recordsOf(join(out, 'pairs.jsonl'));
    const of = (m: string) => records.filter((x) => x.method === m).map((x) => x.predictedPoints);
    assert.notDeepEqual(of('sd-dino'), of('dinov2'));
    assert.match(readFileSync(join(out, 'table1.md'), 'utf8'), /given embeddings \(--embeddings\)/);
    let bad = await runCli(args(tempDir(), ['--sd-dino-weight', '1.5']));
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /dinoWeight.*\[0, 1\].*1\.5/);
    const wrong = join(tempDir(), 'wrong.safetensors');
    await writeSafetensors(wrong, { default: new Tensor(new Float32Array(8), [2, 2, 2]) });
    bad = await runCli(args(tempDir(), ['--embeddings', wrong]));
    assert.match(bad.err, /expected \[1, S, D\] or \[S, D\]/);
    // canvases off the grids: said before any pair is computed
    bad = await runCli([...args(tempDir(), []), '--sd-dino-dino-size', '100']);
    assert.match(bad.err, /multiple of the patch size 14 \(nearest: 98/);
    bad = await runCli([...args(tempDir(), []), '--sd-dino-sd-size', '100']);
    assert.match(bad.err, /SD canvas 100 px must be a multiple of 64/);
  });
});

describe('eval: half precision (fp16-emulated)', function () {
  this.timeout(600_000);
  const args = (out: string, extra: string[]) => [
    'eval',
    '--model',
    TINY,
    ...SPAIR_FIXTURE_ARGS,
    '--methods',
    'sd-layer-4',
    '--image-size',
    '64',
    '--load-size',
    '64',
    '--output-resolution',
    '16',
    '--out',
    out,
    ...extra,
  ];

  it('names the precision in table1.md and run.json, and refuses to resume a run of another precision', async () => {
    const out = tempDir();
    const r = await runCli(args(out, ['--precision', 'fp16-emulated']));
    assert.equal(r.code, 0, r.err);
    assert.match(
      readFileSync(join(out, 'table1.md'), 'utf8'),
      /model [^)]*tiny-sd15, precision fp16-emulated\)/,
    );
    assert.equal(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).options.precision, 'fp16-emulated');
    const fp32 = await runCli(args(out, ['--resume']));
    assert.equal(fp32.code, 2);
    assert.match(fp32.err, /holds a run with other settings:[\s\S]*"precision":"fp16-emulated"/);
    const bad = await runCli(args(tempDir(), ['--precision', 'half']));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--precision: expected fp32 \| fp16 \| fp16-emulated, got "half"/);
  });
});
