/**
 * Table 1's eval of the six SPair fixture pairs on WebGPU against the same run on the CPU.
 * WebGPU fp32 lands ~1e-6 (relative) from the CPU on the features (parity.test.ts), so a
 * prediction can only move where two candidate pixels tie to that precision:
 * - the rows on raw features (SD layer 4, SD-Concat-All, pruned layers, DIFT): at most one
 *   keypoint in the 43 per row may differ, and PCK with it;
 * - the rows through the aggregation network: at this run's 64-pixel images the tiny UNet's
 *   deepest taps are 1x1, so after resizing whole GroupNorm groups are constant and the
 *   network normalises rounding noise (even two correct CPU kernels, InstanceNormalization and
 *   two reductions, give descriptors 2% apart); its matches then tie everywhere (most keypoints
 *   of a pair land on one corner pixel) and measure nothing. Their descriptors are compared
 *   instead, at 256-pixel images (deepest taps 4x4), within 1e-5 relative.
 * WebGPU test mode only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { Hyperfeatures } from '../../sdk/facade/hyperfeatures.ts';
import { relativeError } from '../../sdk/core/tensor.ts';
import { SPAIR_FIXTURE_ARGS, REFERENCE, TEST_DEVICE, runCli, tempDir } from '../helpers.ts';

const DIMS = [96, 96, 96, 96, 96, 96, 64, 64, 64, 32, 32, 32];
const METHODS = 'ours,one-step,sd-layer-4,sd-concat-all,sd-layer-pruned,ours-pruned,dift';
const RAW_ROWS = new Set(['sd-layer-4', 'sd-concat-all', 'sd-layer-pruned', 'dift']);

interface PairRecord {
  id: string;
  method: string;
  predictedPoints: [number, number][];
  source: string;
  target: string;
  hits?: Record<string, unknown>;
}

const records = (dir: string): PairRecord[] =>
  readFileSync(join(dir, 'pairs.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as PairRecord);

describe('WebGPU: the eval of the six SPair fixture pairs equals the CPU run', function () {
  this.timeout(1_800_000);
  before(function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
  });

  it('every row: the same predicted keypoints (at most one near-tie in 43) and PCK', async () => {
    const dir = tempDir();
    const [net, oneStep] = [join(dir, 'net.safetensors'), join(dir, 'net1.safetensors')];
    const cfg = { featureDims: DIMS, projectionDim: 128, numNormGroups: 32 };
    await AggregationNetwork.create({ ...cfg, saveTimesteps: [1, 0] }, 1).save(net);
    await AggregationNetwork.create({ ...cfg, saveTimesteps: [0] }, 2).save(oneStep);
    const run = async (device: string) => {
      const out = join(dir, device);
      const r = await runCli([
        'eval',
        '--model',
        join(REFERENCE, 'tiny-sd15'),
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
        '--device',
        device,
        '--out',
        out,
      ]);
      assert.equal(r.code, 0, r.err);
      return out;
    };
    const [cpu, gpu] = [await run('cpu'), await run('webgpu')];
    const want = records(cpu);
    const got = records(gpu);
    assert.equal(got.length, want.length);
    const moved = new Map<string, number>();
    want.forEach((w, i) => {
      const g = got[i];
      assert.equal(`${g.id} ${g.method}`, `${w.id} ${w.method}`);
      w.predictedPoints.forEach((p, k) => {
        if (p[0] !== g.predictedPoints[k][0] || p[1] !== g.predictedPoints[k][1])
          moved.set(w.method, (moved.get(w.method) ?? 0) + 1);
      });
    });
    if (process.env.HF_PRINT_REL) console.log(`      predictions moved: ${JSON.stringify([...moved])}`);
    for (const [method, n] of moved)
      if (RAW_ROWS.has(method)) assert.ok(n <= 1, `${method}: ${n} of 43 predictions differ from the CPU's`);
    const pck = (d: string) =>
      (
        JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as {
          methods: Record<string, { pck: unknown }>;
        }
      ).methods;
    const [a, b] = [pck(cpu), pck(gpu)];
    for (const m of Object.keys(a).filter((k) => RAW_ROWS.has(k))) {
      const flat = (x: unknown, path = ''): [string, number][] =>
        typeof x === 'number'
          ? [[path, x]]
          : x && typeof x === 'object'
            ? Object.entries(x).flatMap(([k, v]) => flat(v, `${path}.${k}`))
            : [];
      const [fa, fb] = [flat(a[m].pck), new Map(flat(b[m].pck))];
      for (const [path, v] of fa)
        assert.ok(
          Math.abs(v - fb.get(path)!) <= 1 / 4 + 1e-12,
          `${m} pck${path}: CPU ${v}, WebGPU ${fb.get(path)}`,
        );
      if (!moved.has(m)) assert.deepEqual(b[m].pck, a[m].pck, `${m}: same predictions, so the same PCK`);
    }
    // the aggregated rows: the network's descriptors of the pairs' images on both devices
    const images = [...new Set(want.flatMap((r) => [r.source, r.target]))].slice(0, 2);
    const describe = async (device: 'cpu' | 'webgpu') => {
      const hf = await Hyperfeatures.fromModel(join(REFERENCE, 'tiny-sd15'), {
        device,
        network: net,
        extract: { steps: 2, saveTimesteps: [1, 0], imageSize: 256, loadSize: 256 },
        outputResolution: 16,
      });
      const out = [];
      for (const im of images) out.push(await hf.invert(im).descriptors());
      await hf.dispose();
      return out;
    };
    const [dc, dg] = [await describe('cpu'), await describe('webgpu')];
    dc.forEach((d, i) => {
      const e = relativeError(dg[i].data, d.data);
      assert.ok(e < 1e-5, `descriptors of ${images[i]}: ${e} relative`);
    });
  });
});
