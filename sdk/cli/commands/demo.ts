/**
 * `npm run demo`: the main job on a fixture pair. Extracts hyperfeatures of two SPair
 * aeroplanes by DDIM inversion (the paper's settings) and writes the PCA figure of
 * layers 4 and 10 at a clean and a noisy step, with one PCA basis shared by both images.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../core/fs.ts';
import { assetPath } from '../../core/package-root.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import { hyperfeaturesCacheDir } from '../../core/paths.ts';
import { createProgress } from '../../core/progress.ts';
import { decodeImage, resizeRgb } from '../../data/image.ts';
import { unetTimestepOf } from '../../diffusion/loop.ts';
import { invertImages } from '../../diffusion/extract.ts';
import { loadStableDiffusion } from '../../diffusion/pipeline.ts';
import { DEVICES } from '../../model/runtime.ts';
import { makeTinyCheckpoint } from '../../model/tiny/index.ts';
import { imageGridPng } from '../../viz/grid.ts';
import { choice, intOption, parse } from '../args.ts';
import { environmentReportProbed } from '../environment.ts';
import type { Command } from '../main.ts';

// Two SPair-71k aeroplanes (PASCAL VOC photos), shipped with the package.
export const DEMO_PAIR = ['aeroplane_2008_007604.jpg', 'aeroplane_2009_001056.jpg'].map((f) =>
  assetPath('demo', f),
);

const say = (s: string) => process.stdout.write(s + '\n');

export const demo: Command = {
  summary: 'extract hyperfeatures of a fixture pair and write PCA figures (tiny random model unless --model)',
  usage: `hyperfeatures demo [--model <dir|repo-id>] [--out out/demo] [--steps 50] [--color-managed] [--device ${DEVICES.join('|')}] [--allow-download]`,
  async run(args) {
    const { values: v } = parse(
      args,
      {
        model: { type: 'string' },
        out: { type: 'string' },
        steps: { type: 'string' },
        device: { type: 'string' },
        'color-managed': { type: 'boolean' },
        'allow-download': { type: 'boolean' },
      },
      false,
    );
    const out = resolve(v.out ?? join('out', 'demo'));
    checkOutputDir(out);
    say(await environmentReportProbed());
    let model = v.model;
    if (!model) {
      model = join(hyperfeaturesCacheDir(), 'models', 'tiny-sd15-demo');
      if (!existsSync(join(model, 'model_index.json')))
        await makeTinyCheckpoint(model, { style: 'sd15', seed: 0 });
      say(
        `\nNo --model given: using a generated tiny SD-1.5-topology checkpoint with RANDOM weights (${model}).`,
      );
      say('Its features are meaningless; the pictures only show the pipeline runs end to end.');
      say(
        'For real hyperfeatures: npm run demo -- --model stable-diffusion-v1-5/stable-diffusion-v1-5 --allow-download',
      );
    }
    const steps = intOption('steps', v.steps, 50, 1);
    const sd = await loadStableDiffusion(model, {
      device: choice('device', v.device, DEVICES, 'cpu'),
      allowDownload: v['allow-download'],
    });
    try {
      const bar = createProgress({ label: 'inversion (2 images, batched)', total: 2 * steps });
      let computed = false;
      const stacks = await invertImages(sd, DEMO_PAIR, {
        steps,
        colorManaged: v['color-managed'],
        onProgress: (d, t) => ((computed = true), bar.update(d, t)),
      });
      if (computed) bar.done();
      else say('features of both images came from the feature cache (HYPERFEATURES_CACHE)');
      const clean = stacks[0].saveTimesteps[0];
      const noisy = stacks[0].saveTimesteps[stacks[0].saveTimesteps.length - 1];
      const L = stacks[0].layers.length;
      const layers = [Math.min(4, L), Math.min(10, L)];
      const cols = layers.flatMap((l) => [clean, noisy].map((t) => ({ l, t })));
      const pcas = cols.map(({ l, t }) => stacks[0].pca(l, t, [stacks[1]]));
      const photos = await Promise.all(
        DEMO_PAIR.map(async (p) =>
          resizeRgb(await decodeImage(p, { colorManaged: v['color-managed'] }), 256, 256),
        ),
      );
      const rows = photos.map((photo, i) => [photo, ...pcas.map((p) => p[i])]);
      const png = await imageGridPng(rows, {
        title: `PCA of diffusion features (shared basis), ${sd.modelId.split('/').pop()}${v.model ? '' : ' (RANDOM WEIGHTS)'}`,
        // labelled with the diffusion timestep of the UNet call (save timestep 49 is the call at t = -1)
        columnTitles: [
          'image',
          ...cols.map(({ l, t }) => `layer ${l}, t=${unetTimestepOf('inversion', stacks[0].meta.steps, t)}`),
        ],
        rowLabels: ['aeroplane A', 'aeroplane B'],
      });
      const figure = join(out, 'demo_pca.png');
      await writeFileAtomic(figure, png);
      for (const [i, s] of stacks.entries()) await s.save(join(out, `features_${i}.safetensors`));
      const ch = stacks[0].channels();
      say(
        `\nFeatureStack: ${stacks[0].saveTimesteps.length} save timesteps x ${L} layers, channels ${ch.join(',')}`,
      );
      say(`wrote ${figure} and ${stacks.length} feature files to ${out}`);
    } finally {
      await sd.dispose();
    }
  },
};
