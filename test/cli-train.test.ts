/**
 * `hyperfeatures train` on the tiny model and the SPair fixture pairs: files and curves, a run
 * killed with SIGKILL mid-way and resumed ends with the parameters of an uninterrupted run, the
 * original's train.yaml keys, the features-only pre-pass, and bad input.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, readAllSafetensors, writeSafetensors } from '../sdk/core/safetensors.ts';
import { relativeError, type Tensor } from '../sdk/core/tensor.ts';
import { torchLoad } from '../sdk/aggregation/torch-load.ts';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { SPAIR_FIXTURE_ARGS, SPAIR_FIXTURE_LIST, REFERENCE, REPO, runCli, tempDir } from './helpers.ts';

const LIST = SPAIR_FIXTURE_LIST;
const tiny = (out: string, extra: string[] = []) => [
  'train',
  '--model',
  join(REFERENCE, 'tiny-sd15'),
  ...SPAIR_FIXTURE_ARGS,
  '--val-pairs',
  LIST,
  '--val-limit',
  '2',
  '--steps',
  '6',
  '--batch-size',
  '2',
  '--val-every',
  '3',
  '--ddim-steps',
  '2',
  '--save-timesteps',
  '1,0',
  '--load-size',
  '64',
  '--image-size',
  '64',
  '--projection-dim',
  '128',
  '--output-resolution',
  '16',
  '--out',
  out,
  ...extra,
];

async function stateStep(dir: string): Promise<number> {
  const p = join(dir, 'train_state.safetensors');
  if (!existsSync(p)) return 0;
  try {
    const r = await SafetensorsReader.open(p);
    const s = Number(r.metadata.step);
    await r.close();
    return s;
  } catch {
    return 0;
  }
}

describe('cli: train', function () {
  this.timeout(300_000);
  const uninterrupted = tempDir();

  before(async () => {
    const r = await runCli(tiny(uninterrupted, ['--checkpoint-every', '1', '--release-pt']));
    assert.equal(r.code, 0, r.err);
  });

  it('writes the network, the training state and the curves (loss every step, validation every 3)', async () => {
    const rows = readFileSync(join(uninterrupted, 'curves.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      rows.map((r) => r.step),
      [0, 1, 2, 3, 4, 5, 6],
    );
    assert.ok(rows.slice(1).every((r) => Number.isFinite(r.loss)));
    assert.deepEqual(
      rows.filter((r) => r.val_pck_img !== undefined).map((r) => r.step),
      [0, 3, 6],
    );
    const csv = readFileSync(join(uninterrupted, 'curves.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'step,loss,val_pck_img,val_pck_bbox,seconds');
    assert.equal(csv.length, 8);
    const { tensors, metadata } = await readAllSafetensors(
      join(uninterrupted, 'aggregation_network.safetensors'),
    );
    assert.deepEqual(JSON.parse(metadata.config).save_timestep, [1, 0]);
    assert.equal(JSON.parse(metadata.config).num_timesteps, 2);
    assert.ok(tensors.has('mixing_weights'));
    assert.equal(await stateStep(uninterrupted), 6);
  });

  it("--release-pt writes the authors' torch.save layout, which loads back to the same network", async () => {
    const pt = join(uninterrupted, 'aggregation_network.pt');
    const root = torchLoad(pt) as Map<string, unknown>;
    assert.deepEqual([...root.keys()], ['step', 'config', 'aggregation_network', 'optimizer_state_dict']);
    assert.equal(root.get('step'), 6);
    const opt = root.get('optimizer_state_dict') as Map<string, unknown>;
    const state = opt.get('state') as Map<number, Map<string, unknown>>;
    assert.deepEqual([...state.get(0)!.keys()], ['step', 'exp_avg', 'exp_avg_sq']);
    const [fromPt, fromSt] = await Promise.all([
      AggregationNetwork.load(pt),
      AggregationNetwork.load(join(uninterrupted, 'aggregation_network.safetensors')),
    ]);
    assert.deepEqual(fromPt.config, fromSt.config);
    for (const [name, t] of fromSt.params) assert.deepEqual(fromPt.params.get(name)!.data, t.data, name);
  });

  it('a run killed with SIGKILL and resumed ends with the parameters of the uninterrupted run', async () => {
    const out = tempDir();
    const child = spawn(
      process.execPath,
      [join(REPO, 'bin', 'hyperfeatures.js'), ...tiny(out, ['--checkpoint-every', '1'])],
      {
        stdio: 'ignore',
        env: process.env,
      },
    );
    const exited = new Promise((res) => child.on('exit', res));
    // kill it once it has checkpointed step 2 (mid-run: it would go on to 6)
    for (let i = 0; i < 1200 && (await stateStep(out)) < 2; i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGKILL');
    await exited;
    const killedAt = await stateStep(out);
    assert.ok(killedAt >= 2 && killedAt < 6, `killed at step ${killedAt}`);
    const r = await runCli(tiny(out, ['--checkpoint-every', '1', '--resume']));
    assert.equal(r.code, 0, r.err);
    const [a, b] = await Promise.all(
      [uninterrupted, out].map(
        async (d) => (await readAllSafetensors(join(d, 'aggregation_network.safetensors'))).tensors,
      ),
    );
    for (const [name, t] of a) {
      const rel = relativeError(b.get(name)!.data, t.data);
      assert.ok(rel <= 1e-5, `${name}: relative difference ${rel} after resuming at step ${killedAt}`);
    }
    const steps = readFileSync(join(out, 'curves.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [0, 1, 2, 3, 4, 5, 6], 'each step once in the curves');
  });

  it("reads the original's train.yaml keys, and refuses unknown ones", async () => {
    const dir = tempDir();
    const yaml = join(dir, 'train.yaml');
    writeFileSync(
      yaml,
      [
        '# the original configs/train.yaml keys',
        'lr: 1e-3',
        'weight_decay: 0',
        'batch_size: 1',
        'max_epochs: 1',
        'max_steps_per_epoch: 2',
        'val_every_n_steps: 0',
        'projection_dim: 128',
        'output_resolution: 16',
        'load_resolution: 64',
        'num_timesteps: 2',
        'save_timestep:',
        '  - 1',
        '  - 0',
        'wandb_project: hyperfeatures',
      ].join('\n'),
    );
    const out = join(dir, 'run');
    const base = [
      'train',
      '--model',
      join(REFERENCE, 'tiny-sd15'),
      ...SPAIR_FIXTURE_ARGS,
      '--image-size',
      '64',
      '--out',
      out,
    ];
    const r = await runCli([...base, '--config', yaml]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /--config: not used here .*wandb_project/);
    const steps = readFileSync(join(out, 'curves.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2], 'max_epochs x max_steps_per_epoch steps, no validation');
    writeFileSync(yaml, 'pck_threshold: 2\n');
    const alpha = await runCli([...base, '--config', yaml, '--out', join(dir, 'alpha')]);
    assert.equal(alpha.code, 2);
    assert.match(alpha.err, /validation PCK threshold \(pck_threshold\) must be in \(0, 1\], got 2/);
    writeFileSync(yaml, 'lr: 1e-3\nlearning_rate_warmup: 10\n');
    const bad = await runCli([...base, '--config', yaml, '--out', join(dir, 'other')]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown key\(s\) learning_rate_warmup; known: /);
  });

  it('refuses a resume with other settings (saying what differs) and an existing run without --resume', async () => {
    const other = await runCli(tiny(uninterrupted, ['--resume', '--lr', '0.002', '--steps', '7']));
    assert.equal(other.code, 2);
    assert.match(other.err, /holds a run with other settings: lr was 0.001, now 0.002/);
    const again = await runCli(tiny(uninterrupted));
    assert.equal(again.code, 2);
    assert.match(again.err, /already holds a training run; pass --resume/);
    const empty = join(tempDir(), 'empty.json');
    writeFileSync(empty, '[]');
    const noVal = await runCli(tiny(tempDir(), ['--val-pairs', empty]));
    assert.equal(noVal.code, 2);
    assert.match(noVal.err, /empty\.json: the pair list is empty/);
    const shard = await runCli(tiny(tempDir(), ['--features-only', '--shard', '3/2']));
    assert.equal(shard.code, 2);
    assert.match(shard.err, /--shard: expected k\/n with 1 <= k <= n/);
  });

  it('a damaged or non-finite training state is refused, not resumed; a diverged run is an error', async () => {
    const state = (dir: string) => join(dir, 'train_state.safetensors');
    const damaged = async (edit: (t: Map<string, Tensor>, m: Record<string, string>) => void) => {
      const dir = tempDir();
      cpSync(uninterrupted, dir, { recursive: true });
      const r = await SafetensorsReader.open(state(dir));
      const meta = { ...r.metadata };
      await r.close();
      const { tensors } = await readAllSafetensors(state(dir));
      edit(tensors, meta);
      await writeSafetensors(state(dir), Object.fromEntries(tensors), meta);
      return dir;
    };
    const nan = await damaged((t) => {
      const [name, p] = [...t].find(([k]) => k.startsWith('param.'))!;
      p.data[0] = NaN;
      t.set(name, p);
    });
    const before = readFileSync(join(nan, 'aggregation_network.safetensors'));
    const r1 = await runCli(
      tiny(nan, ['--resume', '--steps', '7']).filter(
        (x, i, a) => !(x === '6' && a[i - 1] === '--steps') && !(x === '--steps' && a[i + 1] === '6'),
      ),
    );
    assert.notEqual(r1.code, 0);
    assert.match(r1.err, /param\..* holds non-finite values; the state is damaged/);
    assert.deepEqual(
      readFileSync(join(nan, 'aggregation_network.safetensors')),
      before,
      'the network is untouched',
    );
    const step = await damaged((_, m) => (m.step = '2.5'));
    assert.match((await runCli(tiny(step, ['--resume']))).err, /step "2\.5" is not a step of this run/);
    const moved = await damaged((_, m) => (m.data_position = '3'));
    assert.match((await runCli(tiny(moved, ['--resume']))).err, /data position 3 do not match this run/);
    const cut = tempDir();
    cpSync(uninterrupted, cut, { recursive: true });
    const bytes = readFileSync(state(cut));
    writeFileSync(state(cut), bytes.subarray(0, bytes.length - 100));
    const r4 = await runCli(tiny(cut, ['--resume']));
    assert.notEqual(r4.code, 0);
    assert.match(r4.err, /train_state\.safetensors/);
    // a learning rate that makes the loss non-finite: the run stops, keeps its last good state, exits non-zero
    const diverged = tempDir();
    const r5 = await runCli(tiny(diverged, ['--lr', '1e30', '--val-every', '0']));
    assert.notEqual(r5.code, 0, r5.out);
    assert.match(
      r5.err,
      /training stopped at step \d+ of 6 on a non-finite loss \(diverged: try a lower --lr\)/,
    );
    const { tensors } = await readAllSafetensors(state(diverged));
    assert.ok(
      [...tensors.values()].every((t) => t.data.every(Number.isFinite)),
      'the kept state is finite',
    );
  });

  it('--features-only fills the feature cache in shards', async () => {
    const out = tempDir();
    const r1 = await runCli(tiny(out, ['--features-only', '--shard', '1/2']));
    const r2 = await runCli(tiny(out, ['--features-only', '--shard', '2/2']));
    assert.equal(r1.code, 0, r1.err);
    assert.equal(r2.code, 0, r2.err);
    const n = (s: string) => Number(/extracted (\d+) image/.exec(s)![1]);
    const all = new Set(
      (JSON.parse(readFileSync(LIST, 'utf8')) as { source_path: string; target_path: string }[]).flatMap(
        (p) => [p.source_path, p.target_path],
      ),
    ).size;
    assert.equal(n(r1.out) + n(r2.out), all);
    assert.ok(!existsSync(join(out, 'train_state.safetensors')), 'no training in the pre-pass');
  });
});

describe('train --features sd,dinov2 and eval ours+dinov2 (tiny models)', function () {
  this.timeout(600_000);
  const v2 = join(tempDir(), 'dinov2');
  const other = join(tempDir(), 'dinov2-other');
  const out = tempDir();
  const evalArgs = (methods: string, extra: string[]) => [
    'eval',
    '--model',
    join(REFERENCE, 'tiny-sd15'),
    ...SPAIR_FIXTURE_ARGS,
    '--methods',
    methods,
    '--load-size',
    '64',
    '--output-resolution',
    '16',
    '--out',
    tempDir(),
    ...extra,
  ];
  before(async () => {
    assert.equal((await runCli(['make-tiny', v2, '--style', 'dinov2'])).code, 0);
    assert.equal((await runCli(['make-tiny', other, '--style', 'dinov2', '--seed', '4'])).code, 0);
  });

  it('trains a network with its own DINOv2 bottleneck and weight, says the share, and evaluates it as ours+dinov2', async () => {
    const r = await runCli(tiny(out, ['--features', 'sd,dinov2', '--dinov2', v2, '--dinov2-size', '112']));
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /dinov2:32d:block2:token:112px:\w{12}: [\d.]+% of the mixing weights \(the diffusion maps together: [\d.]+%\)/,
    );
    const net = await AggregationNetwork.load(join(out, 'aggregation_network.safetensors'));
    assert.equal(net.config.extraMaps?.length, 1);
    const share = net.extraMixingWeights()[0].weight;
    const sd = net.mixingWeights().reduce((a, w) => a + w.weight, 0);
    assert.ok(Math.abs(share + sd - 1) < 1e-6);
    await net.dispose();
    const e = await runCli(
      evalArgs('ours+dinov2', [
        '--dinov2',
        v2,
        '--dinov2-aggregator',
        join(out, 'aggregation_network.safetensors'),
      ]),
    );
    assert.equal(e.code, 0, e.err);
    assert.match(e.out, /\| Ours\+DINOv2 \(not in the paper\) \| 13 \| 2 \| [\d.]+ \| [\d.]+ \| - \| - \|/);
    assert.match(
      e.out,
      /DINOv2 map dinov2:32d:block2:token:112px:\w+ \(its own bottleneck; mixing-weight share [\d.]+\)/,
    );
  });

  it('refuses a DINOv2 or features that differ from the training, and such a network as plain ours', async () => {
    const net = join(out, 'aggregation_network.safetensors');
    let r = await runCli(evalArgs('ours+dinov2', ['--dinov2', other, '--dinov2-aggregator', net]));
    assert.notEqual(r.code, 0);
    assert.match(r.err, /trained on other DINOv2 features \(weights: network \w+, given \w+\)/);
    r = await runCli(
      evalArgs('ours+dinov2', ['--dinov2', v2, '--dinov2-facet', 'key', '--dinov2-aggregator', net]),
    );
    assert.match(r.err, /facet: network token, given key/);
    r = await runCli(evalArgs('ours', ['--aggregator', net]));
    assert.match(r.err, /this network also mixes dinov2:32d.*evaluate it as ours\+dinov2/);
    r = await runCli(evalArgs('ours+dinov2', ['--dinov2', v2]));
    assert.match(r.err, /need a network trained on SD and DINOv2 features: pass --dinov2-aggregator/);
    r = await runCli(tiny(tempDir(), ['--features', 'sd,clip']));
    assert.match(r.err, /--features: expected sd or sd,dinov2/);
    r = await runCli(tiny(tempDir(), ['--dinov2', v2]));
    assert.match(r.err, /--dinov2 applies to --features sd,dinov2/);
  });
});
