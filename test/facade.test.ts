import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { loadPairs } from '../sdk/data/pairs.ts';
import { cpSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { Hyperfeatures } from '../sdk/facade/hyperfeatures.ts';
import { AggregationNetwork } from '../sdk/aggregation/network.ts';
import { decodeImage } from '../sdk/data/image.ts';
import { ConfigError, ShapeError } from '../sdk/core/errors.ts';
import { DEFAULT_MATCH_LIMIT, matchImagePoints } from '../sdk/correspondence/points.ts';
import type { PairRecord } from '../sdk/correspondence/evaluate.ts';
import { FIXTURES, SPAIR_FIXTURE_ARGS, REFERENCE, rejectsWith, tempDir, runCli } from './helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const DIMS = [96, 96, 96, 96, 96, 96, 64, 64, 64, 32, 32, 32];
const A = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');
const B = join(FIXTURES, 'spair/JPEGImages/aeroplane/2009_001056.jpg');

describe('fluent SDK, eval and match', () => {
  const dir = tempDir();
  const net = join(dir, 'net.safetensors');
  const oneStepNet = join(dir, 'net1.safetensors');
  const extract = { steps: 2, saveTimesteps: [1, 0], imageSize: 64, loadSize: 64 };
  before(async () => {
    await AggregationNetwork.create(
      { featureDims: DIMS, saveTimesteps: [1, 0], projectionDim: 128, numNormGroups: 32 },
      1,
    ).save(net);
    await AggregationNetwork.create(
      { featureDims: DIMS, saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
      2,
    ).save(oneStepNet);
  });

  it('matches an image with itself onto the same points (known by construction), in image pixels', async () => {
    const hf = await Hyperfeatures.fromModel(TINY, { network: net, extract, outputResolution: 16 });
    const img = hf.invert(A);
    const { width, height } = await img.size();
    const points: [number, number][] = [
      [10, 20],
      [width / 2, height / 2],
      [width - 5, height - 7],
    ];
    const m = await img.aggregate().match(hf.invert(A), { points });
    // two load-size pixels in image pixels: bilinear upsampling makes border rows exact ties
    const cell = (2 * Math.max(width, height)) / 64;
    m.forEach((c, i) => {
      assert.ok(
        Math.abs(c.target[0] - points[i][0]) <= cell && Math.abs(c.target[1] - points[i][1]) <= cell,
        JSON.stringify(c),
      );
      assert.ok(c.score > 0.999);
    });
    await rejectsWith(img.match(hf.invert(B), { points: [[-1, 5]] }), ShapeError);
    await rejectsWith(img.match(hf.invert(B), { points: [] }), ShapeError);
    await hf.dispose();
  });

  it('chains invert -> aggregate -> match across two images, and gives features, descriptors, PCA and mutual matches', async () => {
    const hf = await Hyperfeatures.fromModel(TINY, { network: net, extract, outputResolution: 16 });
    const [a, b] = [hf.invert(A), hf.invert(B)];
    const matches = await a.aggregate().match(b, {
      points: [
        [100, 200],
        [300, 150],
      ],
    });
    const sizeB = await b.size();
    assert.ok(
      matches.every(
        (m) =>
          m.target[0] >= 0 && m.target[0] <= sizeB.width && m.target[1] >= 0 && m.target[1] <= sizeB.height,
      ),
    );
    assert.deepEqual([...(await a.descriptors()).shape], [1, 128, 16, 16]);
    assert.equal((await a.features()).layers.length, 12);
    assert.equal((await a.pca(4, 1, [b])).length, 2);
    const mutual = await a.match(b, { limit: 5 });
    assert.ok(mutual.length > 0 && mutual.length <= 5);
    const gen = hf.generate('a photo of a cat', { size: 64 });
    assert.deepEqual(
      (await gen.features()).saveTimesteps,
      [1, 0],
      "generation features keep the network's labels",
    );
    assert.ok((await gen.features()).meta.flipped, 'and are flipped as the original synthetic demo does');
    assert.deepEqual([...(await gen.image()).shape], [1, 3, 64, 64]);
    await hf.dispose();
  });

  it('takes extraction settings from the network and rejects mismatches before any inversion', async () => {
    let progress = 0;
    const onProgress = () => void progress++;
    const small = { imageSize: 64, loadSize: 64, onProgress, cache: false as const };
    const netOf = (
      hf: Hyperfeatures,
      o: { steps?: number; saveTimesteps?: number[]; oneStep?: boolean } = {},
    ) => AggregationNetwork.forModel(hf.sd, { steps: 2, saveTimesteps: [1, 0], projectionDim: 128, ...o });
    // no steps or save timesteps given: the network's (2 steps, [1, 0]) are used
    const hf = await Hyperfeatures.fromModel(TINY, { extract: small, outputResolution: 16 });
    const net2 = netOf(hf);
    assert.deepEqual(net2.config.featureDims, DIMS, 'feature dims from the UNet config, no probe');
    const img = hf.invert(A).aggregate(net2);
    assert.deepEqual((await img.features()).saveTimesteps, [1, 0]);
    assert.equal(progress, 2, 'two inversion steps');
    // user settings that contradict the network: ConfigError, and nothing ran
    progress = 0;
    const bad = await Hyperfeatures.fromModel(TINY, {
      extract: { ...small, saveTimesteps: [1] },
      outputResolution: 16,
    });
    const e1 = await rejectsWith(bad.invert(A).aggregate(net2).descriptors(), ConfigError);
    assert.match(e1.message, /saveTimesteps \[1\] differ from \[1, 0\].*leave saveTimesteps unset/);
    const one = await Hyperfeatures.fromModel(TINY, { extract: small, oneStep: true, outputResolution: 16 });
    const e2 = await rejectsWith(one.invert(A).aggregate(net2).features(), ConfigError);
    assert.match(e2.message, /oneStep is set, but .* 2 save timesteps of a 2-step inversion/);
    const fewer = AggregationNetwork.forModel(hf.sd, {
      steps: 2,
      saveTimesteps: [1, 0],
      projectionDim: 128,
      layers: [1, 2],
    });
    const e3 = await rejectsWith(hf.invert(A).aggregate(fewer).features(), ConfigError);
    assert.match(e3.message, /expects decoder layers with \[96, 96\] channels/);
    assert.equal(progress, 0, 'no inversion ran for any rejected setting');
    // a model without a released network: a clear error for descriptors, raw features still work
    const e4 = await rejectsWith(hf.invert(A).descriptors(), ConfigError);
    assert.match(e4.message, /no official aggregation network is known for .*forModel/);
    assert.equal((await hf.invert(B).features()).layers.length, 12);
    await Promise.all([hf.dispose(), bad.dispose(), one.dispose()]);
  });

  it('aggregates both images of a match with one network, and refuses two different ones', async () => {
    const hf = await Hyperfeatures.fromModel(TINY, {
      extract: { imageSize: 64, loadSize: 64 },
      outputResolution: 16,
    });
    const n1 = AggregationNetwork.forModel(hf.sd, {
      steps: 2,
      saveTimesteps: [1, 0],
      projectionDim: 128,
      seed: 1,
    });
    const n2 = AggregationNetwork.forModel(hf.sd, {
      steps: 2,
      saveTimesteps: [1, 0],
      projectionDim: 128,
      seed: 2,
    });
    const [a, b] = [hf.invert(A).aggregate(n1), hf.invert(B)];
    const m = await a.match(b, { points: [[100, 200]] });
    // b was aggregated by a's network: recomputing with n1 by hand gives the same score
    const [da, db] = [
      await n1.aggregate([await a.features()], 16),
      await n1.aggregate([await b.features()], 16),
    ];
    const byHand = await matchImagePoints(da, db, [[100, 200]], {
      source: await a.size(),
      target: await b.size(),
      loadSize: 64,
    });
    assert.deepEqual(m, byHand);
    const e = await rejectsWith(a.match(hf.invert(B).aggregate(n2), { points: [[1, 1]] }), ConfigError);
    assert.match(e.message, /different networks/);
    await hf.dispose();
  });

  it("eval writes results.json, pair records and a Table 1 markdown beside the paper's numbers", async () => {
    const out = tempDir();
    // the command line of this test with another --out (for the --explain-pair runs)
    const argsOf = (from: string, to: string) => evalArgs.map((a) => (a === from ? to : a));
    const evalArgs = [
      'eval',
      '--model',
      TINY,
      ...SPAIR_FIXTURE_ARGS,
      '--limit',
      '2',
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
      oneStepNet,
      '--pruned-k',
      '4',
      '--out',
      out,
    ];
    const r = await runCli(evalArgs);
    assert.equal(r.code, 0, r.err);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.deepEqual(Object.keys(results.methods).sort(), [
      'one-step',
      'ours',
      'ours-pruned',
      'sd-concat-all',
      'sd-layer-4',
      'sd-layer-pruned',
    ]);
    const p = results.methods.ours.pck['0.1'];
    assert.ok(
      p.img.perKeypoint >= 0 && p.img.perKeypoint <= 1 && p.bbox.perKeypoint >= 0 && p.bbox.perKeypoint <= 1,
    );
    const list = JSON.parse(readFileSync(join(FIXTURES, 'spair/spair_71k_test-6.json'), 'utf8')) as {
      source_points: unknown[];
    }[];
    assert.equal(results.keypoints, list[0].source_points.length + list[1].source_points.length);
    const table = readFileSync(join(out, 'table1.md'), 'utf8');
    assert.match(table, /\| Ours \| \d+ \| 2 \| [\d.]+ \| [\d.]+ \| 72.56 \| 64.61 \|/);
    assert.match(table, /\| DHPF \| 34 \| - \| not computed \| not computed \| 55.28 \| 42.63 \|/);
    assert.match(r.out, /PCK@0.1 on spair \(2 pairs/);
    // pair-by-pair records: hits follow from distances and thresholds, and pool to results.json
    const records = readFileSync(join(out, 'pairs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as PairRecord);
    assert.equal(records.length, 2 * 6);
    for (const m of Object.keys(results.methods)) {
      const mine = records.filter((x) => x.method === m);
      assert.deepEqual(
        mine.map((x) => x.index),
        [0, 1],
      );
      for (const x of mine) {
        assert.equal(x.predictedPoints.length, x.targetPoints.length);
        assert.deepEqual(
          x.hitsImg,
          x.distances.map((d) => d <= x.thresholdImg),
        );
        const [px, py] = x.predictedPoints[0];
        const [tx, ty] = x.targetPoints[0];
        assert.ok(
          Math.abs(Math.hypot(px - tx, py - ty) - x.distances[0]) < 1e-9,
          'distances in (x, y) pixels',
        );
        assert.equal(x.thresholdImg, 0.1 * Math.max(x.targetSize.width, x.targetSize.height));
      }
      const hits = mine.flatMap((x) => x.hitsBbox!).filter(Boolean).length;
      const total = mine.reduce((n, x) => n + x.hitsBbox!.length, 0);
      assert.equal(
        hits / total,
        results.methods[m].pck['0.1'].bbox.perKeypoint,
        `${m}: records pool to results.json`,
      );
    }
    assert.match(records[1].id, /^\w+-\w+:\w+$/);
    // one pair explained as a picture, found by index or id
    for (const spec of ['1', records.find((x) => x.index === 1)!.id]) {
      const dir = tempDir();
      const e = await runCli([...argsOf(out, dir), '--explain-pair', spec, '--methods', 'ours']);
      assert.equal(e.code, 0, e.err);
      const png = await decodeImage(join(dir, 'explain_1_ours.png'));
      assert.ok(png.width > 400 && png.height > 400);
      assert.match(e.out, /ours: \d+\/\d+ hits by image, \d+\/\d+ by box/);
    }
    const bad = await runCli([...argsOf(out, tempDir()), '--explain-pair', 'nope:cat', '--methods', 'ours']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /no pair "nope:cat" in this list; ids look like/);
  });

  it('eval skips pairs whose images cannot be decoded, and says which', async () => {
    const root = tempDir();
    cpSync(join(FIXTURES, 'spair'), root, { recursive: true });
    const list = JSON.parse(readFileSync(join(root, 'spair_71k_test-6.json'), 'utf8')) as {
      source_path?: string;
    }[];
    const pairs = loadPairs('spair', root, join(root, 'spair_71k_test-6.json')).slice(0, 2);
    writeFileSync(pairs[0].source, readFileSync(pairs[0].source).subarray(0, 3000)); // truncated
    const out = tempDir();
    const r = await runCli([
      'eval',
      '--model',
      TINY,
      '--dataset',
      'spair',
      '--root',
      root,
      '--pairs',
      join(root, 'spair_71k_test-6.json'),
      '--limit',
      '2',
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
      '--methods',
      'ours',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.ok(list.length >= 2);
    assert.match(r.err, /skipped 1 of 2 pair\(s\) whose images cannot be decoded/);
    assert.match(r.err, new RegExp(`${basename(pairs[0].source)}: cannot decode image`));
    assert.equal(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).pairs, 1);
  });

  it('eval fails before any work for unknown methods and missing networks', async () => {
    const base = ['eval', '--model', TINY, ...SPAIR_FIXTURE_ARGS, '--out', tempDir()];
    const a = await runCli([...base, '--methods', 'ours,dhpf']);
    assert.equal(a.code, 2);
    assert.match(a.err, /unknown method\(s\) dhpf; valid: ours, one-step, sd-layer-4/);
    assert.match(a.err, /DHPF needs its own trained weights and code/);
    // the DINO row needs its ViT: offline and not cached, said before any work
    const d = await runCli([...base, '--methods', 'dino']);
    assert.notEqual(d.code, 0);
    assert.match(d.err, /facebook\/dino-vits8.* is not in the Hugging Face cache/);
    const b = await runCli([...base, '--methods', 'ours']);
    assert.equal(b.code, 2);
    assert.match(
      b.err,
      /need an aggregation network \(no official aggregation network is known for .*neither SD-1.5 nor SD-2.1.*\): pass --aggregator/,
    );
  });

  it('match draws the correspondences side by side', async () => {
    const out = join(tempDir(), 'm.png');
    const r = await runCli([
      'match',
      '--model',
      TINY,
      A,
      B,
      '--points',
      '100,200;300,150',
      '--aggregator',
      net,
      '--steps',
      '2',
      '--save-timesteps',
      '1,0',
      '--image-size',
      '64',
      '--load-size',
      '64',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(out));
    const img = await decodeImage(out);
    assert.ok(img.width > img.height);
    // without --points: mutual matches, as many by default as the SDK's mutualImageMatches gives
    const all = await runCli([
      'match',
      '--model',
      TINY,
      A,
      B,
      '--aggregator',
      net,
      '--steps',
      '2',
      '--save-timesteps',
      '1,0',
      '--image-size',
      '64',
      '--load-size',
      '64',
      '--out',
      join(tempDir(), 'all.png'),
    ]);
    assert.equal(all.code, 0, all.err);
    assert.equal(
      all.out
        .trim()
        .split('\n')
        .filter((l) => l.includes('->')).length,
      DEFAULT_MATCH_LIMIT,
    );
  });
});
