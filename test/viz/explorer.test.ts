/**
 * Explorer specs: what a click can show is precomputed and filtered by the selection (the
 * prediction of each point is the argmax of its own similarity row, known by construction),
 * points outside the image are clamped with a note, pairs without ground truth have none, and
 * the static rendering (initial selection) works headless.
 */
import assert from 'node:assert/strict';
import { ShapeError } from '../../sdk/core/errors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import {
  correspondenceExplorerSpec,
  layerTimestepBrowserSpec,
  mixingWeightsExplorerSpec,
} from '../../sdk/viz/explorer.ts';
import { VEGA_LITE_SCHEMA, renderSvg } from '../../sdk/viz/charts.ts';

const rgb = (w: number, h: number) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(128) });

/** Descriptors where pixel i of the source matches pixel i of the target exactly (one-hot). */
function oneHot(h: number, w: number): Tensor {
  const d = new Float32Array(h * w * h * w);
  for (let i = 0; i < h * w; i++) d[i * h * w + i] = 1;
  return new Tensor(d, [1, h * w, h, w]);
}

type Layer = { data?: { values: Record<string, unknown>[] }; mark: unknown };
type View = { title: string; layer: Layer[] };

describe('explorer specs', () => {
  it('predicts each candidate point by construction, clamps outside points with a note, needs no ground truth', async () => {
    const d = oneHot(4, 4);
    const { spec, notes } = await correspondenceExplorerSpec({
      source: rgb(40, 40),
      target: rgb(80, 40),
      methods: [{ name: 'identity', descriptors: [d, d] }],
      points: [
        [5, 5],
        [35, 25],
        [90, -3],
      ],
    });
    assert.equal(spec.$schema, VEGA_LITE_SCHEMA);
    assert.match(
      notes.join('\n'),
      /point 2 \(90, -3\) is outside the 40x40 source image: clamped to \(39, 0\)/,
    );
    const [, view] = (spec as unknown as { hconcat: View[] }).hconcat;
    const pred = view.layer[3].data!.values;
    // source cell (row 0, col 0) -> target cell (0, 0): centre (10, 5) in the 80x40 target
    assert.deepEqual(pred[0], { pid: 0, x: 10, y: 5, score: 1 });
    assert.deepEqual([pred[1].x, pred[1].y], [70, 25]);
    assert.deepEqual(view.layer[2].data!.values, [], 'no ground truth given, none drawn');
    assert.match(await renderSvg(spec), /<svg/);
  });

  it('rejects ground truth that does not pair with the points', async () => {
    const d = oneHot(2, 2);
    await assert.rejects(
      correspondenceExplorerSpec({
        source: rgb(8, 8),
        target: rgb(8, 8),
        methods: [{ name: 'x', descriptors: [d, d] }],
        points: [[1, 1]],
        truth: [],
      }),
      ShapeError,
    );
  });

  it('browser and mixing-weight specs carry every map, sliders and a clickable heatmap', async () => {
    const maps = [1, 2].flatMap((layer) =>
      [4, 0].map((saveTimestep) => ({
        layer,
        saveTimestep,
        label: `t = ${saveTimestep}`,
        sourcePca: rgb(4, 4),
        targetPca: rgb(4, 4),
        similarity: { values: new Float32Array(16).map((_, i) => i), height: 4, width: 4 },
      })),
    );
    const browser = (await layerTimestepBrowserSpec(maps, { randomWeights: true })) as unknown as {
      params: { name: string; bind: { input: string } }[];
      title: { text: string };
    };
    assert.deepEqual(
      browser.params.map((p) => [p.name, p.bind.input]),
      [
        ['layer', 'range'],
        ['timestep', 'select'],
      ],
    );
    assert.match(browser.title.text, /RANDOM WEIGHTS/);
    const weights = maps.map((m, i) => ({
      layer: m.layer,
      saveTimestep: m.saveTimestep,
      weight: [0.1, 0.2, 0.3, 0.4][i],
    }));
    const mix = await mixingWeightsExplorerSpec(
      weights,
      maps.map((m) => ({ ...m, pck: 0.5 })),
      { steps: 5 },
    );
    const json = JSON.stringify(mix);
    assert.match(json, /"domainMid":0.25/, 'white at the uniform weight');
    assert.match(json, /"4 \(t = -1\)"/, 'save timesteps labelled with their diffusion timestep');
    assert.match(json, /PCK@0.1 of this map alone: 50.0%/);
    assert.match(await renderSvg(mix), /<svg/);
  });
});
