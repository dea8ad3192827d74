/**
 * `npm run figures`: regenerate every figure in figures/ from the notebooks' code paths on the
 * tiny model (or HF_NOTEBOOK_MODEL): PCA maps, correspondences, mixing weights, PCK bars,
 * training curves, Lotus predictions.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sdk from '../sdk/index.ts';
import { writeFileAtomic } from '../sdk/core/fs.ts';

const OUT = dirname(fileURLToPath(import.meta.url));
const DATA = join(OUT, '..', 'notebooks', 'data');
const say = (s: string) => process.stderr.write(`[figures] ${s}\n`);
const MODEL = process.env.HF_NOTEBOOK_MODEL ?? (await sdk.demoCheckpoint('sd15'));
const EXTRACT = { steps: 5, saveTimesteps: [4, 2, 0], loadSize: 96, imageSize: 128 };
const R = 16;

const sd = await sdk.loadStableDiffusion(MODEL);
const photos = ['aeroplane/2008_007604.jpg', 'aeroplane/2009_001056.jpg'].map((f) =>
  join(DATA, 'spair/JPEGImages', f),
);
const stacks = await sdk.invertImages(sd, photos, EXTRACT);
say('PCA');
const cols: [number, number][] = [
  [4, 4],
  [4, 0],
  [10, 4],
  [10, 0],
];
const rgb = await Promise.all(photos.map((p) => sdk.decodeImage(p)));
await writeFileAtomic(
  join(OUT, 'pca.png'),
  await sdk.imageGridPng(
    rgb.map((img, i) => [img, ...cols.map(([l, t]) => stacks[0].pca(l, t, [stacks[1]])[i])]),
    {
      cell: 160,
      title: 'PCA of inversion features (tiny random model)',
      columnTitles: [
        'image',
        ...cols.map(([l, t]) => `layer ${l}, t=${sdk.unetTimestepOf('inversion', 5, t)}`),
      ],
    },
  ),
);

say('training (mirrored photos) -> curves, mixing weights');
const files = [
  ...readdirSync(join(DATA, 'photos')).map((f) => join(DATA, 'photos', f)),
  ...readdirSync(join(DATA, 'spair/JPEGImages')).flatMap((c) =>
    readdirSync(join(DATA, 'spair/JPEGImages', c)).map((f) => join(DATA, 'spair/JPEGImages', c, f)),
  ),
];
const pairs = await sdk.mirroredPairs(sd, files, { resolution: R, extract: { ...EXTRACT, loadSize: 128 } });
const [train, held] = [pairs.slice(0, 12), pairs.slice(12)];
const net = sdk.AggregationNetwork.create(
  { featureDims: stacks[0].channels(), saveTimesteps: [4, 2, 0], projectionDim: 128, numNormGroups: 32 },
  0,
);
const heldOut = () => sdk.gridPck(net, held);
const history = await sdk.trainNetwork(net, train, { steps: 60, validate: heldOut, validateEvery: 20 });
await sdk.writeFigure(
  join(OUT, 'training_curves'),
  sdk.trainingCurvesSpec(history.losses, history.validations),
);
await sdk.writeFigure(
  join(OUT, 'mixing_weights'),
  sdk.mixingHeatmapSpec(
    net.mixingWeights(),
    'Mixing weights (tiny RANDOM model, network trained on mirrored photos)',
    { steps: 5 },
  ),
);
await sdk.writeFigure(join(OUT, 'mixing_marginals'), sdk.mixingMarginalsSpec(net.mixingWeights()));

say('correspondences and PCK');
const hf = await sdk.Hyperfeatures.fromModel(MODEL, { network: net, extract: EXTRACT, outputResolution: R });
const list = sdk.loadSpairPairList(join(DATA, 'spair/spair_71k_test-6.json'), join(DATA, 'spair'));
const pair = list.find((p) => p.category === 'aeroplane') ?? list[0];
const [a, b] = [hf.invert(pair.source).aggregate(), hf.invert(pair.target)];
await writeFileAtomic(
  join(OUT, 'correspondences.png'),
  await sdk.drawCorrespondences(
    await a.rgb(),
    await b.rgb(),
    await a.match(b, { points: pair.sourcePoints }),
    { title: 'nearest neighbours of SPair keypoints (tiny model)' },
  ),
);
const results = await sdk.evaluatePairs(sd, list, {
  methods: ['ours', 'sd-layer-4', 'sd-concat-all'],
  network: net,
  loadSize: 96,
  outputResolution: R,
  extract: EXTRACT,
});
const rows = Object.entries(results.methods).flatMap(([method, r]) =>
  Object.entries(r!.pck['0.1'].img.byCategory).map(([category, v]) => ({
    category,
    method,
    pck: v.perKeypoint,
  })),
);
await sdk.writeFigure(
  join(OUT, 'pck_per_category'),
  sdk.pckBarsSpec(rows, 'PCK@0.1 per category (tiny random model: meaningless)'),
);
await hf.dispose();
await sd.dispose();

say('Lotus');
const lotus = await sdk.Lotus.fromModel(await sdk.demoCheckpoint('lotus-g', 'lotus-depth-g-demo'));
const img = join(DATA, 'photos/coffee.png');
const pred = await lotus.predict(img, { task: 'depth', processingRes: 128, seeds: [0, 1, 2] });
await writeFileAtomic(
  join(OUT, 'lotus_depth.png'),
  await sdk.imageGridPng(
    [
      [
        await sdk.decodeImage(img),
        sdk.colorizeMap(pred.depth!, { invert: true }),
        sdk.colorizeMap(pred.uncertainty!),
      ],
    ],
    { cell: 220, columnTitles: ['input', 'depth', 'uncertainty'], title: 'Lotus-G (tiny random checkpoint)' },
  ),
);
await lotus.dispose();
say(`wrote figures to ${OUT}`);
