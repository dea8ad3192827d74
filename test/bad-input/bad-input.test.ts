/**
 * The bad-input sweep, kept: one case per defect the sweep found (issue 13, items 1-16) plus the
 * classes that already failed cleanly. Each case asserts the error type and message, and that no
 * output or cache entry was damaged. Tiny models, seconds each.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { deflateRawSync } from 'node:zlib';
import { zipEntries, type ZipWriteEntry } from '../../sdk/core/zip.ts';
import sharp from 'sharp';
import { ConfigError, DataError, ModelError } from '../../sdk/core/errors.ts';
import { writeFileAtomic } from '../../sdk/core/fs.ts';
import { readAllSafetensors, writeSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { decodeImage } from '../../sdk/data/image.ts';
import { loadStableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { generateImages, invertImages } from '../../sdk/diffusion/extract.ts';
import { Hyperfeatures } from '../../sdk/facade/hyperfeatures.ts';
import { Lotus } from '../../sdk/lotus/pipeline.ts';
import { FeatureStack } from '../../sdk/diffusion/feature-stack.ts';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { torchLoad } from '../../sdk/aggregation/torch-load.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { FIXTURES, REFERENCE, rejectsWith, runCli, tempDir } from '../helpers.ts';
import { demoCheckpoint } from '../../sdk/model/tiny/index.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const COW = join(FIXTURES, 'spair/JPEGImages/cow/2007_005797.jpg');
const SMALL = ['--steps', '1', '--save-timesteps', '0', '--load-size', '32', '--image-size', '32'];
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const tree = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => {
        const p = join(e.parentPath, e.name);
        return [p.slice(dir.length), sha(p)];
      }),
  );

async function cliFails(argv: string[], message: RegExp, type = 'ConfigError') {
  const r = await runCli(argv);
  assert.equal(r.code, 2, `expected exit code 2 for ${argv.join(' ')}; stdout ${r.out}`);
  assert.match(r.err, new RegExp(`error \\(${type}\\)`));
  assert.match(r.err, message);
  return r;
}

/** A torch.save zip whose pickle is _rebuild_tensor_v2(storage of `values` floats, offset, shape, stride). */
function torchFile(
  o: { shape: number[]; stride: number[]; values?: number; offset?: number },
  deflated?: Buffer,
): Buffer {
  const u = (s: string) => Buffer.concat([Buffer.from([0x58]), u32(Buffer.byteLength(s)), Buffer.from(s)]);
  const int = (v: number) => Buffer.concat([Buffer.from([0x4a]), i32(v)]);
  const tuple = (items: Buffer[]) => Buffer.concat([Buffer.from([0x28]), ...items, Buffer.from([0x74])]);
  const values = o.values ?? 4;
  const pkl = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n'),
    Buffer.from([0x28]),
    tuple([u('storage'), Buffer.from('ctorch\nFloatStorage\n'), u('0'), u('cpu'), int(values)]),
    Buffer.from([0x51]), // BINPERSID
    int(o.offset ?? 0),
    tuple(o.shape.map(int)),
    tuple(o.stride.map(int)),
    Buffer.from([0x74, 0x52, 0x2e]), // TUPLE, REDUCE, STOP
  ]);
  const storage = Buffer.alloc(values * 4);
  return zip([
    { name: 'archive/data.pkl', data: pkl },
    deflated
      ? { name: 'archive/data/0', data: deflated, method: 8, size: storage.length }
      : { name: 'archive/data/0', data: storage },
  ]);
}
function u32(v: number) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}
function i32(v: number) {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}
const zip = (entries: ZipWriteEntry[]) => Buffer.concat(zipEntries(entries));

describe('bad input: nothing lost, nothing silently wrong', function () {
  this.timeout(120_000);

  describe('data loss', () => {
    it('1. make-tiny refuses a non-empty folder unless --force', async () => {
      const dir = tempDir();
      cpSync(TINY, dir, { recursive: true });
      const before = tree(dir);
      await cliFails(['make-tiny', dir], /is not empty .* pass --force/);
      assert.deepEqual(tree(dir), before, 'the checkpoint is untouched');
      const r = await runCli(['make-tiny', dir, '--force']);
      assert.equal(r.code, 0, r.err);
    });

    it('2. aggregate refuses an output that is an input (file, or the input folder)', async () => {
      const dir = tempDir();
      const net = join(dir, 'net.safetensors');
      await AggregationNetwork.create(
        { featureDims: [96], saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
        0,
      ).save(net);
      const features = join(dir, 'f.safetensors');
      writeFileSync(features, 'placeholder');
      const before = sha(features);
      await cliFails(
        ['aggregate', '--network', net, '--features', features, '--out', features],
        /is also an input/,
      );
      await cliFails(['aggregate', '--network', net, '--features', dir, '--out', dir], /is also an input/);
      assert.equal(sha(features), before);
    });

    it('3. inputs whose outputs would share a file stem are refused before any work (lotus too)', async () => {
      const [a, b] = [tempDir(), tempDir()];
      copyFileSync(COW, join(a, 'x.jpg'));
      copyFileSync(COW, join(b, 'x.png'));
      const out = tempDir();
      await cliFails(
        ['lotus', '--model', TINY, join(a, 'x.jpg'), join(b, 'x.png'), '--out', out],
        /share one: .*x\.jpg & .*x\.png/,
      );
      assert.deepEqual(readdirSync(out), []);
    });
  });

  describe("lotus outputs never replace inputs; the task must be the checkpoint's", () => {
    it('refuses an output named like an input, a depth checkpoint asked for normals, --ply without depth', async function () {
      this.timeout(300_000);
      const model = await demoCheckpoint('lotus-g', 'lotus-depth-g-demo');
      const d = tempDir();
      copyFileSync(COW, join(d, 'a.jpg'));
      copyFileSync(COW, join(d, 'a_depth.png'));
      const before = [sha(join(d, 'a.jpg')), sha(join(d, 'a_depth.png'))];
      await cliFails(
        ['lotus', '--model', model, d, '--task', 'depth', '--processing-res', '32', '--out', d],
        /the output .*a_depth\.png of .*a\.jpg would replace the input .*a_depth\.png; nothing was written/,
      );
      assert.deepEqual([sha(join(d, 'a.jpg')), sha(join(d, 'a_depth.png'))], before);
      assert.deepEqual(readdirSync(d).sort(), ['a.jpg', 'a_depth.png']);
      const out = tempDir();
      await cliFails(
        ['lotus', '--model', model, COW, '--task', 'normal', '--processing-res', '32', '--out', out],
        /is a Lotus depth checkpoint: it does not predict normal/,
      );
      await cliFails(
        ['lotus', '--model', model, COW, '--task', 'rgb', '--ply', '--processing-res', '32', '--out', out],
        /--ply writes a point cloud from depth; the task here is rgb/,
      );
      assert.deepEqual(readdirSync(out), []);
      // into another folder, the same inputs run
      const ok = await runCli(['lotus', '--model', model, d, '--processing-res', '32', '--out', out]);
      assert.equal(ok.code, 0, ok.err);
      assert.ok(readdirSync(out).includes('a_depth.png') && readdirSync(out).includes('a_depth_depth.png'));
    });
  });

  describe('silently wrong results', () => {
    it('4. the feature cache key covers the VAE and text encoder weights and the tokenizer', async () => {
      const model = tempDir();
      cpSync(TINY, model, { recursive: true });
      const cache = tempDir();
      const run = async () => {
        const sd = await loadStableDiffusion(model);
        try {
          const [s] = await invertImages(sd, [COW], {
            steps: 1,
            saveTimesteps: [0],
            layers: [1],
            loadSize: 32,
            imageSize: 32,
            cache,
          });
          return s.maps[0][0].data.slice();
        } finally {
          await sd.dispose();
        }
      };
      const first = await run();
      assert.deepEqual(await run(), first, 'same model: the cached features');
      const vae = join(model, 'vae', 'diffusion_pytorch_model.safetensors');
      const { tensors } = await readAllSafetensors(vae);
      const scaled = Object.fromEntries(
        [...tensors].map(([k, t]) => [k, k.includes('encoder.conv_in.weight') ? t.map((v) => v * 1.5) : t]),
      );
      await writeSafetensors(vae, scaled);
      const afterVae = await run();
      assert.notDeepEqual(afterVae, first, 'new VAE weights: new features');
      const vocab = join(model, 'tokenizer', 'special_tokens_map.json');
      if (existsSync(vocab)) {
        // identity is content: a touched file is the same model, a changed one a new entry
        const t = new Date(Date.now() + 5000);
        utimesSync(vocab, t, t);
        assert.equal(readdirSync(cache).length, 2);
        await run();
        assert.equal(readdirSync(cache).length, 2, 'a touched tokenizer file is the same model');
        writeFileSync(vocab, readFileSync(vocab, 'utf8') + '\n');
        await run();
        assert.equal(readdirSync(cache).length, 3, 'a changed tokenizer file is a new cache entry');
      }
    });

    it('5. a damaged feature cache entry is recomputed; a truncated cached graph is rebuilt', async () => {
      const cache = tempDir();
      const graphs = tempDir();
      const opts = { steps: 1, saveTimesteps: [0], layers: [1], loadSize: 32, imageSize: 32, cache };
      const sd = await loadStableDiffusion(TINY, { cacheDir: graphs });
      const [good] = await invertImages(sd, [COW], opts);
      const entry = join(cache, readdirSync(cache)[0]);
      const bytes = readFileSync(entry);
      bytes.writeFloatLE(3.4e38, bytes.length - 4); // same size, different data
      writeFileSync(entry, bytes);
      const [again] = await invertImages(sd, [COW], opts);
      assert.deepEqual(again.maps[0][0].data, good.maps[0][0].data, 'recomputed, not the damaged values');
      await sd.dispose();
      const unetDir = readdirSync(graphs).find((d) => d.startsWith('unet-'))!;
      const onnx = join(graphs, unetDir, 'model.onnx');
      truncateSync(onnx, statSync(onnx).size >> 1);
      const sd2 = await loadStableDiffusion(TINY, { cacheDir: graphs });
      const [rebuilt] = await invertImages(sd2, [COW], { ...opts, cache: false });
      assert.deepEqual(rebuilt.maps[0][0].data, good.maps[0][0].data, 'the rebuilt graph computes the same');
      await sd2.dispose();
    });

    it('6. non-finite values stop at stage boundaries with a DataError naming the tensor', async () => {
      const model = tempDir();
      cpSync(TINY, model, { recursive: true });
      const unet = join(model, 'unet', 'diffusion_pytorch_model.safetensors');
      const { tensors } = await readAllSafetensors(unet);
      const name = 'up_blocks.0.resnets.0.conv2.bias';
      tensors.set(
        name,
        tensors.get(name)!.map((v, i) => (i === 3 ? NaN : v)),
      );
      await writeSafetensors(unet, Object.fromEntries(tensors));
      const sd = await loadStableDiffusion(model, { cacheDir: tempDir() });
      const e = await rejectsWith(
        invertImages(sd, [COW], { steps: 1, saveTimesteps: [0], loadSize: 32, imageSize: 32, cache: false }),
        DataError,
      );
      assert.match(
        e.message,
        /^unet: output "[^"]+": \d+ of \d+ values are not finite .*check the model weights/,
      );
      await sd.dispose();
      // a NaN in a feature map given to the aggregation network
      const net = AggregationNetwork.create(
        { featureDims: [8], saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
        0,
      );
      const meta = { model: 'x', mode: 'inversion' as const, steps: 1, imageSize: 64, seed: null };
      const map = Tensor.zeros([1, 8, 4, 4]).map((_, i) => (i === 5 ? Infinity : 0.1));
      const e2 = await rejectsWith(net.aggregate([new FeatureStack([0], [1], [[map]], meta)], 4), DataError);
      assert.match(
        e2.message,
        /feature stack 0: map t0_l1: 1 of 128 values are not finite \(first: Infinity at index 5\)/,
      );
      // 0x0 maps in a feature file
      const file = join(tempDir(), 'f.safetensors');
      await writeSafetensors(
        file,
        { t0_l1: Tensor.zeros([1, 8, 0, 0]) },
        { save_timesteps: '[0]', layers: '[1]', meta: '{}' },
      );
      const e3 = await rejectsWith(FeatureStack.load(file), DataError);
      assert.match(e3.message, /map t0_l1 has shape \[1, 8, 0, 0\], expected \[1, C, H, W\] with H, W >= 1/);
    });

    it('7. eval validates pair lists before any work (outside points, strings, null, empty)', async () => {
      const root = tempDir();
      cpSync(join(FIXTURES, 'spair'), root, { recursive: true });
      const base = JSON.parse(readFileSync(join(root, 'spair_71k_test-6.json'), 'utf8')) as Record<
        string,
        unknown
      >[];
      const cases: [string, unknown, RegExp][] = [
        [
          'outside',
          [
            {
              ...base[0],
              target_points: (base[0].target_points as number[][]).map(([x, y]) => [x + 5000, y]),
            },
          ],
          /keypoint\(s\) outside their images .*target point 0 \[\d+, \d+\] is outside the \d+x\d+ image/s,
        ],
        [
          'strings',
          [{ ...base[0], source_points: [['12', '7']] }],
          /source points\[0\]: expected \[x, y\] with two finite numbers, got \["12","7"\]/,
        ],
        [
          'null',
          [{ ...base[0], source_points: null }],
          /source points: expected a list of \[x, y\] numbers, got null/,
        ],
        ['flat', [{ ...base[0], source_points: [1, 2, 3, 4] }], /source points\[0\]: expected \[x, y\]/],
        ['empty', [], /the pair list is empty/],
      ];
      for (const [name, list, message] of cases) {
        const file = join(root, `${name}.json`);
        writeFileSync(file, JSON.stringify(list));
        const out = tempDir();
        await cliFails(
          [
            'eval',
            '--model',
            join(root, 'no-such-model'),
            '--dataset',
            'spair',
            '--root',
            root,
            '--pairs',
            file,
            '--out',
            out,
          ],
          message,
          'DataError',
        );
        assert.deepEqual(readdirSync(out), [], name);
      }
    });

    it('8. lotus: a focal length that is not a number, a noise file without noise', async () => {
      const out = tempDir();
      await cliFails(
        ['lotus', '--model', TINY, COW, '--out', out, '--ply', '--focal', 'abc'],
        /option --focal: expected a focal length in pixels .*got "abc"/,
      );
      const noise = join(tempDir(), 'n.safetensors');
      await writeSafetensors(noise, { other: Tensor.zeros([1]) });
      await cliFails(
        ['lotus', '--model', TINY, COW, '--out', out, '--noise', noise],
        /holds neither "posterior_eps" nor "noise" \(it has other\)/,
        'DataError',
      );
      assert.deepEqual(readdirSync(out), []);
    });

    it('9. an empty folder, or a folder named like an image, is "no images found"', async () => {
      const empty = tempDir();
      await cliFails(
        ['extract', '--model', TINY, '--images', empty, '--out', tempDir(), ...SMALL],
        /no images found in/,
        'DataError',
      );
      const fake = join(tempDir(), 'x.png');
      mkdirSync(fake);
      await cliFails(
        ['extract', '--model', TINY, '--images', fake, '--out', tempDir(), ...SMALL],
        /no images found in .*x\.png/,
        'DataError',
      );
    });

    it('10. the SDK refuses a 0x0 image and an unknown posterior', async () => {
      const e = await rejectsWith(decodeImage({ data: new Uint8Array(0), width: 0, height: 0 }), DataError);
      assert.match(e.message, /0x0 pixels; at least 2x2/);
      const sd = await loadStableDiffusion(TINY);
      const e2 = await rejectsWith(
        invertImages(sd, [COW], {
          steps: 1,
          loadSize: 32,
          imageSize: 32,
          posterior: 'sample' as unknown as 'mean',
        }),
        ConfigError,
      );
      assert.match(e2.message, /option posterior: expected "mean" or \{ seed: <integer> \}.*got "sample"/);
      await sd.dispose();
    });
  });

  describe('hangs and crashes', () => {
    it('11. output locations are checked before any compute (procfs, a file, under a file)', async () => {
      const file = join(tempDir(), 'a-file');
      writeFileSync(file, 'x');
      const started = Date.now();
      await cliFails(
        ['extract', '--model', TINY, '--images', COW, '--out', '/proc/hyperfeatures-test', ...SMALL],
        /is on procfs, a pseudo-filesystem/,
      );
      await cliFails(
        ['eval', '--model', TINY, '--dataset', 'spair', '--root', FIXTURES, '--out', file],
        /is a file, expected a folder/,
      );
      await cliFails(
        ['extract', '--model', TINY, '--images', COW, '--out', join(file, 'sub'), ...SMALL],
        /a-file is a file, so no folder can be made under it/,
      );
      await cliFails(
        ['match', '--model', TINY, COW, COW, '--out', tempDir()],
        /is a folder, expected a file name/,
      );
      assert.ok(Date.now() - started < 5000, 'all refused in seconds');
      assert.ok(!existsSync('/proc/hyperfeatures-test'));
    });

    it('12. the .pt loader refuses lying shapes, strides, corrupt and bomb-like entries, naming the file', async () => {
      const dir = tempDir();
      const cases: [string, Buffer, RegExp][] = [
        [
          'negative-shape',
          torchFile({ shape: [-1, 4], stride: [4, 1] }),
          /shape must be non-negative integers, got \[-1,4\]/,
        ],
        [
          'huge-shape',
          torchFile({ shape: [100000, 100000], stride: [100000, 1] }),
          /holds 4 values, the tensor \[100000, 100000\] needs/,
        ],
        [
          'negative-stride',
          torchFile({ shape: [2, 2], stride: [-2, 1] }),
          /strides must be non-negative integers/,
        ],
        [
          'zero-stride-expansion',
          torchFile({ shape: [100000, 10000], stride: [0, 0] }),
          /has 1000000000 values from a storage of 4/,
        ],
        [
          'corrupt-deflate',
          torchFile({ shape: [4], stride: [1] }, Buffer.from('this is not deflate data at all')),
          /entry "archive\/data\/0" is corrupt/,
        ],
        [
          'bomb',
          torchFile({ shape: [4], stride: [1] }, deflateRawSync(Buffer.alloc(64 << 20))),
          /inflates to more than the 16 bytes it declares/,
        ],
        [
          // a small file that declares its 64 MB honestly: refused before inflating anything
          'declared-bomb',
          torchFile(
            { shape: [16 << 20], stride: [1], values: 16 << 20 },
            deflateRawSync(Buffer.alloc(64 << 20)),
          ),
          /declares 67108864 bytes from \d+ compressed \(over 256x\): refused before inflating/,
        ],
      ];
      for (const [name, bytes, message] of cases) {
        const path = join(dir, `${name}.pt`);
        writeFileSync(path, bytes);
        const before = process.memoryUsage().rss;
        assert.throws(
          () => torchLoad(path),
          (e: Error) => e instanceof DataError && e.message.startsWith(path) && message.test(e.message),
          name,
        );
        assert.ok(process.memoryUsage().rss - before < 200 * 2 ** 20, `${name}: nothing large was allocated`);
      }
    });

    it('13. feature files with wrong metadata types fail before any output is written', async () => {
      const dir = tempDir();
      const net = join(tempDir(), 'net.safetensors');
      await AggregationNetwork.create(
        { featureDims: [8], saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
        0,
      ).save(net);
      const good = { t0_l1: Tensor.zeros([1, 8, 4, 4]).map(() => 0.5) };
      await writeSafetensors(join(dir, 'a.safetensors'), good, {
        save_timesteps: '[0]',
        layers: '[1]',
        meta: '{}',
      });
      await writeSafetensors(join(dir, 'b.safetensors'), good, {
        save_timesteps: '"5"',
        layers: '[1]',
        meta: '{}',
      });
      const out = tempDir();
      await cliFails(
        ['aggregate', '--network', net, '--features', dir, '--out', out],
        /b\.safetensors: metadata save_timesteps must be a non-empty JSON list of non-negative integers, got "\\"5\\""/,
        'DataError',
      );
      assert.deepEqual(readdirSync(out), [], 'a.safetensors was not written either');
      for (const [layers, why] of [
        ['null', /metadata layers must be/],
        ['[]', /metadata layers must be/],
      ] as const) {
        await writeSafetensors(join(dir, 'b.safetensors'), good, {
          save_timesteps: '[0]',
          layers,
          meta: '{}',
        });
        await rejectsWith(FeatureStack.load(join(dir, 'b.safetensors')), DataError).then((e) =>
          assert.match(e.message, why),
        );
      }
    });

    it('14. sizes beyond the limits, and images too small for the model, are refused up front', async () => {
      await cliFails(
        ['extract', '--model', TINY, '--images', COW, '--out', tempDir(), '--load-size', '100000'],
        /option loadSize: expected at most 4096 pixels/,
      );
      await cliFails(
        ['lotus', '--model', TINY, COW, '--out', tempDir(), '--processing-res', '100000'],
        /exceeds the limit of \d+ pixels/,
      );
      const tiny = join(tempDir(), 'four.png');
      await sharp({ create: { width: 4, height: 4, channels: 3, background: '#888' } })
        .png()
        .toFile(tiny);
      await cliFails(
        ['lotus', '--model', TINY, tiny, '--out', tempDir(), '--processing-res', '0'],
        /four\.png \(4x4\): processing size 4x4 is below the 8x8 the VAE needs/,
      );
    });

    it('15. match validates --points before loading anything', async () => {
      await cliFails(
        [
          'match',
          '--model',
          join(tempDir(), 'missing'),
          COW,
          COW,
          '--points',
          '1,2;oops',
          '--out',
          join(tempDir(), 'm.png'),
        ],
        /--points: cannot parse "oops"/,
      );
    });

    it('16. stale temp files are cleaned; progress counts every image step; env, demo, dtype and number messages', async () => {
      const dir = tempDir();
      const target = join(dir, 'x.bin');
      const stale = join(dir, '.x.bin.tmp-999999-deadbeef'); // no such process
      writeFileSync(stale, 'left by a killed run');
      const old = new Date(Date.now() - 3600_000);
      utimesSync(stale, old, old);
      // a shared filesystem (feature cache on NFS): another machine's fresh temp is its live write, kept;
      // this machine's dead writer's temp and a day-old foreign one are removed
      const host = hostname().replace(/[^A-Za-z0-9]/g, '_');
      const mine = join(dir, `.x.bin.tmp-${host}-999999-cafe0001`);
      const foreignLive = join(dir, '.x.bin.tmp-othernode-1-cafe0002');
      const foreignOld = join(dir, '.x.bin.tmp-othernode-2-cafe0003');
      for (const f of [mine, foreignLive, foreignOld]) writeFileSync(f, 'partial');
      utimesSync(mine, old, old);
      const dayAgo = new Date(Date.now() - 25 * 3600_000);
      utimesSync(foreignOld, dayAgo, dayAgo);
      await writeFileAtomic(target, Buffer.from('ok'));
      assert.deepEqual(readdirSync(dir).sort(), ['.x.bin.tmp-othernode-1-cafe0002', 'x.bin']);
      unlinkSync(foreignLive);
      // 3 images x 2 steps in batches of 2: the bar ends at 6/6
      const sd = await loadStableDiffusion(TINY);
      const seen: [number, number][] = [];
      await invertImages(
        sd,
        [COW, join(FIXTURES, 'photos/chelsea.png'), join(FIXTURES, 'photos/coffee.png')],
        {
          steps: 2,
          saveTimesteps: [1, 0],
          layers: [1],
          loadSize: 32,
          imageSize: 32,
          cache: false,
          onProgress: (d, t) => void seen.push([d, t]),
        },
      );
      await sd.dispose();
      assert.deepEqual(seen.at(-1), [6, 6]);
      assert.ok(
        seen.every(([d], i) => i === 0 || d > seen[i - 1][0]),
        'monotone',
      );
      await cliFails(['env', '--bogus'], /Unknown option '--bogus'/);
      const env = await runCli(['env']);
      assert.match(env.out, /webgpu\s+(unavailable|available)/);
      const lotus = tempDir();
      await makeTinyCheckpoint(lotus, { style: 'lotus-g', seed: 0 });
      await cliFails(
        ['demo', '--model', lotus, '--out', tempDir()],
        /this is a Lotus checkpoint .* use `hyperfeatures lotus`/,
        'ModelError',
      );
      const i32 = join(tempDir(), 'i.safetensors');
      const raw = await readFileSync(join(REFERENCE, 'cases', 'tokenizer.json'), 'utf8');
      void raw;
      await writeSafetensors(
        i32,
        { t0_l1: { dtype: 'I64', data: new BigInt64Array(4), shape: [1, 1, 2, 2] } },
        { save_timesteps: '[0]', layers: '[1]', meta: '{}' },
      );
      await rejectsWith(FeatureStack.load(i32), DataError).then((e) =>
        assert.match(e.message, /map t0_l1 has dtype I64; feature maps must be floating point/),
      );
      await cliFails(
        ['lotus', '--model', TINY, COW, '--out', tempDir(), '--seeds', 'abc'],
        /option --seeds: expected an integer >= 1, got "abc"/,
      );
    });
  });

  describe('classes that already failed cleanly (kept)', () => {
    it('safetensors headers, configs, pickles, images, flags and devices', async () => {
      const dir = tempDir();
      const st = join(dir, 'h.safetensors');
      const huge = Buffer.alloc(16);
      huge.writeBigUInt64LE(10n ** 12n);
      writeFileSync(st, huge);
      await rejectsWith(readAllSafetensors(st), DataError);
      writeFileSync(st, Buffer.from([1, 2, 3]));
      await rejectsWith(readAllSafetensors(st), DataError);
      const model = tempDir();
      cpSync(TINY, model, { recursive: true });
      writeFileSync(join(model, 'unet', 'config.json'), '{ not json');
      await rejectsWith(loadStableDiffusion(model), ModelError).catch(async () =>
        rejectsWith(loadStableDiffusion(model), ConfigError),
      );
      for (const g of ['cos\nsystem\n', 'cbuiltins\neval\n', 'csubprocess\nPopen\n']) {
        const evil = zip([
          {
            name: 'archive/data.pkl',
            data: Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from(g), Buffer.from([0x29, 0x52, 0x2e])]),
          },
        ]);
        const p = join(dir, 'evil.pt');
        writeFileSync(p, evil);
        assert.throws(() => torchLoad(p), /refusing pickle global/);
      }
      await rejectsWith(decodeImage(Buffer.from('not an image')), DataError);
      await cliFails(['extract', '--nope'], /Unknown option '--nope'/);
      await cliFails(
        ['extract', '--model', TINY, '--images', COW, '--out', tempDir(), '--device', 'tpu'],
        /option --device: expected cpu \| cuda \| webgpu, got "tpu"/,
      );
    });
  });

  describe('round two: special files, damaged state, unchecked values', () => {
    it('a dangling symlink, a symlink loop and a FIFO among the inputs are named, never read', async function () {
      this.timeout(120_000);
      const d = tempDir();
      copyFileSync(COW, join(d, 'good.jpg'));
      symlinkSync(join(d, 'gone.jpg'), join(d, 'dangling.jpg'));
      symlinkSync(join(d, 'loop-b.jpg'), join(d, 'loop-a.jpg'));
      symlinkSync(join(d, 'loop-a.jpg'), join(d, 'loop-b.jpg'));
      execFileSync('mkfifo', [join(d, 'pipe.png')]);
      for (const [f, why] of [
        ['dangling.jpg', /a dangling symbolic link \(to .*gone\.jpg, which does not exist\)/],
        ['loop-a.jpg', /a symbolic link loop/],
        ['pipe.png', /a FIFO \(named pipe\), not a regular file/],
      ] as const)
        await assert.rejects(
          decodeImage(join(d, f)),
          (e: Error) => e instanceof DataError && why.test(e.message),
        );
      // a folder holding them: the good image is used, the others named and skipped, nothing hangs
      const out = tempDir();
      const r = await runCli([
        'extract',
        '--model',
        TINY,
        '--images',
        d,
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
        '--no-cache',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /skipped 4 of 5 image\(s\)/);
      assert.match(r.err, /pipe\.png.*FIFO/);
      // given by name: the same reasons
      const missing = await runCli([
        'extract',
        '--model',
        TINY,
        '--images',
        join(d, 'dangling.jpg'),
        '--out',
        tempDir(),
      ]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.err, /dangling\.jpg \(a dangling symbolic link/);
    });

    it('--paper-numbers, train --config and a damaged run.json are checked before any work', async () => {
      const paper = join(tempDir(), 'paper.json');
      writeFileSync(paper, JSON.stringify({ nyuv2: { abs_rel: 'five' } }));
      await cliFails(
        [
          'lotus-eval',
          '--model',
          TINY,
          '--task',
          'depth',
          '--dataset',
          'nyuv2',
          '--root',
          tempDir(),
          '--out',
          tempDir(),
          '--paper-numbers',
          paper,
        ],
        /nyuv2\.abs_rel is "five", expected a number/,
        'DataError',
      );
      const cfg = join(tempDir(), 'train.json');
      writeFileSync(cfg, 'null');
      await cliFails(
        [
          'train',
          '--config',
          cfg,
          '--model',
          TINY,
          '--dataset',
          'spair',
          '--root',
          join(FIXTURES, 'spair'),
          '--out',
          tempDir(),
        ],
        /expected a mapping of the original's train\.yaml keys .*got null/,
      );
      for (const damaged of ['', 'garbage {', '[1, 2]']) {
        const out = tempDir();
        writeFileSync(join(out, 'run.json'), damaged);
        writeFileSync(join(out, 'pairs.jsonl'), '');
        const r = await runCli([
          'eval',
          '--model',
          TINY,
          '--dataset',
          'spair',
          '--root',
          join(FIXTURES, 'spair'),
          '--pairs',
          join(FIXTURES, 'spair/spair_71k_test-6.json'),
          '--methods',
          'sd-layer-4',
          '--limit',
          '1',
          '--out',
          out,
          '--resume',
        ]);
        assert.equal(r.code, 2, damaged);
        assert.match(r.err, /error \((DataError|ConfigError)\)/);
        assert.match(r.err, /run\.json|another program/);
        assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
        assert.equal(readFileSync(join(out, 'run.json'), 'utf8'), damaged, 'left as it was');
      }
    });

    it('seed counts are bounded; an image the pipeline cannot take is named', async () => {
      await cliFails(
        ['lotus', '--model', TINY, COW, '--out', tempDir(), '--seeds', '200000'],
        /--seeds 200000: at most 1000 predictions/,
      );
      await cliFails(
        [
          'lotus-eval',
          '--model',
          TINY,
          '--task',
          'depth',
          '--dataset',
          'nyuv2',
          '--root',
          tempDir(),
          '--out',
          tempDir(),
          '--seeds',
          Array.from({ length: 101 }, (_, i) => i).join(','),
        ],
        /--seeds: 101 seeds; at most 100/,
      );
      const d = tempDir();
      await sharp(Buffer.alloc(2 * 2 * 3, 128), { raw: { width: 2, height: 2, channels: 3 } })
        .png()
        .toFile(join(d, 'tiny.png'));
      copyFileSync(COW, join(d, 'cow.jpg'));
      const r = await runCli(['lotus', '--model', TINY, d, '--out', tempDir(), '--processing-res', '0']);
      assert.equal(r.code, 2);
      assert.match(r.err, /tiny\.png \(2x2\): /);
    });
  });

  describe('round two: SDK arguments of the wrong type or range', () => {
    it('the facade, Lotus and generation refuse null, wrong types, fractions and NaN with typed errors', async () => {
      const bad: [string, () => Promise<unknown>, RegExp][] = [
        [
          'fromModel(null options)',
          () => Hyperfeatures.fromModel(TINY, null as never),
          /fromModel: expected an options object, got null/,
        ],
        [
          'fromModel(outputResolution -3)',
          () => Hyperfeatures.fromModel(TINY, { outputResolution: -3 }),
          /option outputResolution expected a positive integer, got -3/,
        ],
        [
          'fromModel(outputResolution 2.5)',
          () => Hyperfeatures.fromModel(TINY, { outputResolution: 2.5 }),
          /outputResolution expected a positive integer, got 2\.5/,
        ],
        [
          'fromModel(network 42)',
          () => Hyperfeatures.fromModel(TINY, { network: 42 as never }),
          /option network expected a checkpoint path/,
        ],
        [
          'fromModel(oneStep "yes")',
          () => Hyperfeatures.fromModel(TINY, { oneStep: 'yes' as never }),
          /option oneStep expected a boolean/,
        ],
      ];
      for (const [name, call, message] of bad)
        await assert.rejects(call(), (e: Error) => e instanceof ConfigError && message.test(e.message), name);
      const hf = await Hyperfeatures.fromModel(TINY);
      try {
        assert.throws(
          () => hf.invert(null as never),
          (e: Error) => e instanceof ConfigError && /invert: expected an image path/.test(e.message),
        );
        assert.throws(() => hf.generate('a cat', { seed: NaN }), /option seed expected an integer, got NaN/);
        await assert.rejects(
          generateImages(hf.sd, ['a cat'], { seed: -1, steps: 1 }),
          /seed: expected a non-negative integer/,
        );
        await assert.rejects(
          generateImages(hf.sd, ['a cat'], { guidanceScale: NaN, steps: 1 }),
          /guidanceScale: expected a number >= 0/,
        );
      } finally {
        await hf.dispose();
      }
      const lotus = await Lotus.fromModel(await demoCheckpoint('lotus-g', 'lotus-depth-g-demo'));
      try {
        for (const seeds of [[-1], [1.5], [NaN], 'x' as never])
          await assert.rejects(
            lotus.predict(COW, { seeds, processingRes: 32 }),
            (e: Error) =>
              e instanceof ConfigError &&
              /seeds: expected a list of non-negative integer seeds/.test(e.message),
            JSON.stringify(seeds),
          );
      } finally {
        await lotus.dispose();
      }
    });
  });
});
