import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FeatureStack } from '../sdk/diffusion/feature-stack.ts';
import { decodeImage } from '../sdk/data/image.ts';
import { readAllSafetensors } from '../sdk/core/safetensors.ts';
import { relativeError } from '../sdk/core/tensor.ts';
import { FIXTURES, REFERENCE, tempDir, tolerance, runCli } from './helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');

describe('cli: extract and demo', () => {
  const small = [
    '--steps',
    '1',
    '--save-timesteps',
    '0',
    '--layers',
    '1',
    '--load-size',
    '32',
    '--image-size',
    '32',
    '--no-cache',
  ];

  it('skips undecodable files of a batch and says which; fails on none left, empty folders and stem clashes', async () => {
    const dir = tempDir();
    const cow = join(FIXTURES, 'spair/JPEGImages/cow/2007_005797.jpg');
    copyFileSync(cow, join(dir, 'good.jpg'));
    writeFileSync(join(dir, 'truncated.jpg'), readFileSync(cow).subarray(0, 2000));
    writeFileSync(join(dir, 'text.png'), 'not an image');
    const out = tempDir();
    const r = await runCli(['extract', '--model', TINY, '--images', dir, '--out', out, ...small]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /skipped 2 of 3 image\(s\) that cannot be decoded/);
    assert.match(r.err, /truncated\.jpg: cannot decode image/);
    assert.match(r.err, /text\.png: cannot decode image/);
    assert.deepEqual(readdirSync(out), ['good.safetensors']);
    const empty = tempDir();
    const e = await runCli(['extract', '--model', TINY, '--images', empty, '--out', tempDir(), ...small]);
    assert.equal(e.code, 2);
    assert.match(e.err, /no images found in/);
    const bad = tempDir();
    writeFileSync(join(bad, 'a.jpg'), 'x');
    const n = await runCli(['extract', '--model', TINY, '--images', bad, '--out', tempDir(), ...small]);
    assert.equal(n.code, 2);
    assert.match(n.err, /none of the 1 image\(s\) can be decoded/);
    const other = tempDir();
    copyFileSync(cow, join(other, 'good.jpg'));
    const c = await runCli([
      'extract',
      '--model',
      TINY,
      '--images',
      join(dir, 'good.jpg'),
      join(other, 'good.jpg'),
      '--out',
      tempDir(),
      ...small,
    ]);
    assert.equal(c.code, 2);
    assert.match(c.err, /share one: .*good\.jpg & .*good\.jpg/);
  });

  it('--color-managed changes the features of an Adobe RGB photo, and only of it', async () => {
    const stack = async (file: string, managed: boolean) => {
      const out = tempDir();
      const r = await runCli([
        'extract',
        '--model',
        TINY,
        '--images',
        join(FIXTURES, file),
        '--out',
        out,
        ...small,
        ...(managed ? ['--color-managed'] : []),
      ]);
      assert.equal(r.code, 0, r.err);
      return (await readAllSafetensors(join(out, readdirSync(out)[0]))).tensors.get('t0_l1')!.data;
    };
    const adobe = 'spair/JPEGImages/cow/2009_003189.jpg';
    assert.ok(relativeError(await stack(adobe, true), await stack(adobe, false)) > 1e-3);
    const plain = 'spair/JPEGImages/cow/2007_005797.jpg'; // no profile
    assert.equal(relativeError(await stack(plain, true), await stack(plain, false)), 0);
  });

  it('extracts a folder of images into t{s}_l{l} files, resized on request', async () => {
    const out = tempDir();
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--images',
      join(FIXTURES, 'spair/JPEGImages/cow'),
      '--out',
      out,
      '--steps',
      '3',
      '--save-timesteps',
      '2,0',
      '--layers',
      '1,12',
      '--load-size',
      '64',
      '--image-size',
      '64',
      '--resize',
      '--output-resolution',
      '16',
      '--no-cache',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(readdirSync(out).sort(), ['2007_005797.safetensors', '2009_003189.safetensors']);
    const s = await FeatureStack.load(join(out, '2007_005797.safetensors'));
    assert.deepEqual(s.saveTimesteps, [2, 0]);
    assert.deepEqual([...s.map(0, 1).shape], [1, 96, 16, 16]);
    assert.match(r.err, /extract \(images\) \[#+\] 6\/6/);
  });

  it('reproduces the reference one-step inversion from --latent and --embeddings', async () => {
    const out = tempDir();
    const ref = join(REFERENCE, 'cases/inversion_1.safetensors');
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--latent',
      ref,
      '--embeddings',
      ref,
      '--steps',
      '1',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const { tensors: want } = await readAllSafetensors(ref);
    const got = await FeatureStack.load(join(out, 'inversion_1.safetensors'));
    for (const l of [1, 7, 12])
      assert.ok(
        relativeError(got.map(0, l).data, want.get(`t0_l${l}`)!.data) <= tolerance('inversion_1', `t0_l${l}`),
      );
  });

  it('reproduces the original classifier-free-guided generation from --generate --latent --embeddings', async () => {
    const out = tempDir();
    const ref = join(REFERENCE, 'cases/generation_cfg.safetensors');
    const saves = [0, 5, 10, 25, 49];
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--generate',
      '--latent',
      ref,
      '--embeddings',
      ref,
      '--guidance-scale',
      '7.5',
      '--steps',
      '50',
      '--save-timesteps',
      saves.join(','),
      '--out',
      out,
      '--no-cache',
    ]);
    assert.equal(r.code, 0, r.err);
    const { tensors: want } = await readAllSafetensors(ref);
    const got = await FeatureStack.load(join(out, 'generation_cfg.safetensors'));
    assert.deepEqual(got.saveTimesteps, saves, "the original's generation numbering");
    const r16 = got.resized(16);
    let worst = 0;
    for (const s of saves)
      for (let l = 1; l <= 12; l++) {
        for (const [name, map] of [
          [`t${s}_l${l}`, got.map(s, l)],
          [`r16_t${s}_l${l}`, r16.map(s, l)],
        ] as const) {
          const rel = relativeError(map.data, want.get(name)!.data);
          assert.ok(rel <= tolerance('generation_cfg', name), `${name}: relative error ${rel}`);
          worst = Math.max(worst, rel / tolerance('generation_cfg', name));
        }
      }
    assert.ok(worst < 1);
    assert.equal((await decodeImage(join(out, 'generation_cfg.png'))).width, 128);
    const bad = await runCli(['extract', '--model', TINY, '--generate', '--out', out]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--generate takes the initial noise from --latent/);
  });

  it('generates from --prompts, writing features and the image', async () => {
    const out = tempDir();
    const r = await runCli([
      'extract',
      '--model',
      TINY,
      '--prompts',
      '["a cat"]',
      '--steps',
      '2',
      '--image-size',
      '64',
      '--guidance-scale',
      '7.5',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(readdirSync(out).sort(), ['prompt_0.png', 'prompt_0.safetensors']);
    assert.equal((await decodeImage(join(out, 'prompt_0.png'))).width, 64);
  });

  it('reports bad arguments with exit code 2 and what was expected', async () => {
    const cases: [string[], RegExp][] = [
      [['extract', '--model', TINY, '--out', tempDir()], /exactly one of --images, --latent or --prompts/],
      [
        ['extract', '--model', TINY, '--images', 'missing1.jpg', 'missing2.jpg', '--out', tempDir()],
        /images not found: missing1.jpg, missing2.jpg/,
      ],
      [
        [
          'extract',
          '--model',
          TINY,
          '--images',
          join(FIXTURES, 'photos/chelsea.png'),
          '--layers',
          '0-3',
          '--out',
          tempDir(),
        ],
        /layers \[0\] are outside 1..12/,
      ],
      [
        [
          'extract',
          '--model',
          TINY,
          '--images',
          join(FIXTURES, 'photos/chelsea.png'),
          '--output-resolution',
          '0',
          '--out',
          tempDir(),
        ],
        /--output-resolution: expected an integer >= 1/,
      ],
    ];
    for (const [argv, pattern] of cases) {
      const r = await runCli(argv);
      assert.equal(r.code, 2);
      assert.match(r.err, pattern);
    }
  });

  it('demo writes the PCA figure (a short run)', async () => {
    const out = tempDir();
    const r = await runCli(['demo', '--model', TINY, '--steps', '2', '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /FeatureStack: 2 save timesteps x 12 layers/);
    const fig = await decodeImage(join(out, 'demo_pca.png'));
    assert.ok(fig.width > 800 && fig.height > 300);
  });
});
