import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  loadSpairPairList,
  loadSpairOfficial,
  loadPfPascal,
  loadCub,
  loadCustomPairs,
  loadPairs,
  loadSpairSplit,
} from '../../sdk/data/pairs.ts';
import { readHomography, warpPoints } from '../../sdk/data/homography.ts';
import { rescalePoints, type PointYX } from '../../sdk/correspondence/match.ts';
import { computePck } from '../../sdk/correspondence/pck.ts';
import { ConfigError, DataError } from '../../sdk/core/errors.ts';
import { FIXTURES, REPO, tempDir } from '../helpers.ts';

const SPAIR = join(FIXTURES, 'spair');

describe('data: keypoint pair datasets', () => {
  it("loads the paper's 6-pair list (file.jpg + category) with every image present", () => {
    const pairs = loadSpairPairList(join(SPAIR, 'spair_71k_test-6.json'), SPAIR);
    assert.equal(pairs.length, 6);
    assert.equal(pairs[0].category, 'pottedplant');
    assert.ok(pairs[0].source.endsWith('JPEGImages/pottedplant/2011_001863.jpg'));
    assert.deepEqual(pairs[0].sourcePoints[0], [3, 383]);
    assert.deepEqual(pairs[0].targetBbox, [110, 275, 227, 444]);
  });

  it('reports ALL missing images of the 360-pair list at once, before any work', () => {
    assert.throws(
      () => loadSpairPairList(join(SPAIR, 'spair_71k_test-360.json'), SPAIR),
      (e: Error) => {
        assert.ok(e instanceof DataError);
        assert.match(e.message, /image\(s\) missing/);
        assert.match(e.message, /JPEGImages\/train\/2009_005246.jpg/);
        assert.match(e.message, /and \d+ more/);
        return true;
      },
    );
  });

  it("reads the official PairAnnotation layout (and names the fixture's one missing image)", () => {
    assert.throws(
      () => loadSpairOfficial(SPAIR, 'test'),
      /1 image\(s\) missing:\s+\S+JPEGImages\/aeroplane\/2008_004100.jpg/,
    );
    const root = tempDir();
    mkdirSync(join(root, 'PairAnnotation/test'), { recursive: true });
    mkdirSync(join(root, 'JPEGImages/aeroplane'), { recursive: true });
    const file = '000167-2008_007604-2009_001056:aeroplane.json';
    copyFileSync(join(SPAIR, 'PairAnnotation/test', file), join(root, 'PairAnnotation/test', file));
    for (const f of ['2008_007604.jpg', '2009_001056.jpg'])
      copyFileSync(join(SPAIR, 'JPEGImages/aeroplane', f), join(root, 'JPEGImages/aeroplane', f));
    const pairs = loadSpairOfficial(root, 'test');
    assert.equal(pairs.length, 1);
    assert.equal(pairs[0].sourcePoints.length, 7);
    assert.deepEqual(pairs[0].targetBbox, [14, 71, 483, 220]);
  });

  it('parses PF-PASCAL pairs and CUB annotations', () => {
    const root = tempDir();
    assert.throws(() => loadPfPascal(join(FIXTURES, 'pfpascal/test_pairs.csv'), root), DataError);
    // the PF-PASCAL fixture has no images: make the first pair's two images to check parsing
    const csv = readFileSync(join(FIXTURES, 'pfpascal/test_pairs.csv'), 'utf8')
      .split('\n')
      .slice(0, 2)
      .join('\n');
    writeFileSync(join(root, 'pairs.csv'), csv);
    mkdirSync(join(root, 'PF-dataset-PASCAL/JPEGImages'), { recursive: true });
    for (const f of ['2011_001407.jpg', '2010_004184.jpg'])
      copyFileSync(
        join(SPAIR, 'JPEGImages/cow/2007_005797.jpg'),
        join(root, 'PF-dataset-PASCAL/JPEGImages', f),
      );
    const [pf] = loadPfPascal(join(root, 'pairs.csv'), root);
    assert.equal(pf.sourcePoints.length, 11);
    assert.ok(
      Math.abs(pf.sourcePoints[0][0] - 253.631662222222) < 1e-9 &&
        Math.abs(pf.sourcePoints[0][1] - 58.1813333333333) < 1e-9,
    );

    const cub = tempDir();
    mkdirSync(join(cub, 'parts'));
    copyFileSync(join(FIXTURES, 'cub/part_locs.head3000.txt'), join(cub, 'parts/part_locs.txt'));
    copyFileSync(join(FIXTURES, 'cub/bounding_boxes.head200.txt'), join(cub, 'bounding_boxes.txt'));
    const ids = Array.from(
      { length: 200 },
      (_, i) => `${i + 1} 00${1 + Math.floor(i / 60)}.Bird/img_${i + 1}.jpg`,
    );
    writeFileSync(join(cub, 'images.txt'), ids.join('\n'));
    const e = (() => {
      try {
        loadCub(cub, { count: 5, seed: 1 });
      } catch (err) {
        return err as Error;
      }
    })();
    assert.ok(e instanceof DataError && /image\(s\) missing/.test(e.message), 'images are checked');
  });

  it('loads documented custom JSON and rejects malformed entries and unknown datasets', async () => {
    const dir = tempDir();
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#888' } })
      .png()
      .toFile(join(dir, 'a.png'));
    writeFileSync(
      join(dir, 'pairs.json'),
      JSON.stringify([
        { source: 'a.png', target: 'a.png', source_points: [[1, 2]], target_points: [[3, 4]] },
      ]),
    );
    const [p] = loadCustomPairs(join(dir, 'pairs.json'));
    assert.deepEqual(p.targetPoints, [[3, 4]]);
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify([{ source: 'a.png', target: 'a.png', source_points: [[1, 2]], target_points: [] }]),
    );
    assert.throws(
      () => loadCustomPairs(join(dir, 'bad.json')),
      /equal, non-empty source and target point lists/,
    );
    assert.throws(
      () => loadPairs('imagenet', dir),
      (err: Error) => err instanceof ConfigError && /valid: spair, cub, pfpascal, custom/.test(err.message),
    );
  });

  it("homography ground truth through the pipeline's coordinate mapping gives PCK exactly 100; a shifted warp less", async () => {
    const H = readHomography(join(FIXTURES, 'homography/H1to3p.xml'));
    const [m1, m3] = await Promise.all(
      ['graf1.png', 'graf3.png'].map((f) => sharp(join(FIXTURES, 'homography', f)).metadata()),
    );
    const size1 = { width: m1.width!, height: m1.height! };
    const size3 = { width: m3.width!, height: m3.height! };
    const src: [number, number][] = [];
    for (let y = 60; y < size1.height - 60; y += 90)
      for (let x = 60; x < size1.width - 60; x += 90) src.push([x, y]);
    const truth = warpPoints(H, src).filter(
      ([x, y]) => x >= 0 && y >= 0 && x < size3.width && y < size3.height,
    );
    const load = { width: 224, height: 224 };
    const evalWith = (shift: number) => {
      // a "matcher" answering with the true warp on the integer load-size grid (as argmax does), + a shift
      const predictedLoad = rescalePoints(
        truth.map(([x, y]): PointYX => [y, x + shift]),
        size3,
        load,
      ).map(([y, x]): PointYX => [Math.round(y), Math.round(x)]);
      const predicted = rescalePoints(predictedLoad, load, size3);
      return computePck(
        [{ predicted, groundTruth: truth.map(([x, y]): PointYX => [y, x]), imageSize: size3 }],
        0.05,
        'img',
      ).perKeypoint;
    };
    assert.ok(truth.length > 10);
    assert.equal(evalWith(0), 1);
    assert.ok(evalWith(0.05 * Math.max(size3.width, size3.height) + 1) < 1);
  });

  it("finds the paper's SPair lists shipped with the package (test-360, val-360) under any root", () => {
    for (const split of ['test-360', 'val-360'] as const) {
      // the fixture root holds only 12 of their images: the error proves the list was read and resolved there
      assert.throws(
        () => loadSpairSplit(SPAIR, split),
        (e: Error) =>
          e instanceof DataError &&
          new RegExp(
            `assets/pairs/spair_71k_${split}\\.json: \\d+ image\\(s\\) missing:\\n  ${SPAIR}/JPEGImages/\\w+/`,
          ).test(e.message),
      );
    }
    const shipped = JSON.parse(
      readFileSync(join(REPO, 'assets/pairs/spair_71k_test-360.json'), 'utf8'),
    ) as unknown[];
    assert.equal(shipped.length, 360);
    assert.throws(
      () => loadSpairSplit(SPAIR, 'test-720' as 'test-360'),
      /unknown SPair-71k split "test-720"; valid: test-360, val-360, trn, val, test/,
    );
    assert.throws(() => loadPairs('cub', SPAIR, undefined, 'test-360'), /--split applies to SPair-71k/);
    assert.throws(
      () => loadPairs('spair', SPAIR, join(SPAIR, 'spair_71k_test-6.json'), 'test-360'),
      /either --split or --pairs/,
    );
    // 'test' is the dataset's own PairAnnotation/test (the fixture lacks one of its images)
    assert.throws(
      () => loadPairs('spair', SPAIR, undefined, 'test'),
      /PairAnnotation\/test: 1 image\(s\) missing/,
    );
  });
});
