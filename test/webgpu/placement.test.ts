/**
 * Nothing silently on the CPU: every graph the SDK builds (text encoder, VAE, UNet with taps,
 * Lotus' UNet with its task switcher, DINO, the aggregation network's forward and its training graphs)
 * runs once on WebGPU under onnxruntime's profiler, and no node that computes floating-point
 * values may have been placed on the CPU; only shape arithmetic may. WebGPU test mode only.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { recordSessions, type Session } from '../../sdk/model/runtime.ts';
import { describeCpuNodes } from '../../sdk/model/placement.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { Vae } from '../../sdk/model/vae/index.ts';
import { TextEncoder } from '../../sdk/model/clip/index.ts';
import { DinoModel } from '../../sdk/model/dino/index.ts';
import { Dinov2Model } from '../../sdk/model/dinov2/index.ts';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { Trainer } from '../../sdk/aggregation/train/trainer.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { REFERENCE, TEST_DEVICE, tempDir } from '../helpers.ts';

const device = 'webgpu' as const;
const rng = new Rng(5);
const randn = (shape: number[]) => new Tensor(rng.normalArray(shape.reduce((a, b) => a * b)), shape);

/** Run `use` with every session it creates profiled; return each session's CPU compute nodes. */
async function cpuComputeOf(
  use: () => Promise<void>,
): Promise<{ label: string; report: string; shape: number }[]> {
  const rec = recordSessions();
  try {
    await use();
  } finally {
    rec.stop();
  }
  const out = [];
  for (const s of rec.sessions as Session[]) {
    const p = await s.placement();
    out.push({ label: s.label, report: describeCpuNodes(p.cpuComputeNodes), shape: p.cpuShapeNodes.length });
    if (process.env.HF_PRINT_REL)
      console.log(
        `      ${s.label}: ${JSON.stringify(p.byProvider)}, ${p.cpuShapeNodes.length} shape nodes on the CPU`,
      );
  }
  return out;
}

function assertNoneOnCpu(results: { label: string; report: string }[], expectedSessions: number): void {
  assert.equal(results.length, expectedSessions, 'sessions recorded');
  for (const r of results) assert.equal(r.report, '', `${r.label}: compute nodes on the CPU:\n${r.report}`);
}

describe('WebGPU: no compute node placed on the CPU', function () {
  this.timeout(1_200_000);
  before(function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
  });
  const TINY = join(REFERENCE, 'tiny-sd15');

  it('text encoder, VAE encoder and decoder, UNet with its decoder taps', async () => {
    const results = await cpuComputeOf(async () => {
      const te = await TextEncoder.load(TINY, { device });
      await te.encode('a photo of a cat');
      const vae = await Vae.load(TINY, { device });
      const post = await vae.encode(randn([1, 3, 64, 64]));
      await vae.decode(post.mean);
      const unet = await UNet.load(TINY, { device, warmUp: false });
      await unet.run({ sample: randn([1, 4, 8, 8]), timestep: 261, encoderHiddenStates: randn([1, 77, 32]) });
      await Promise.all([te.dispose(), vae.dispose(), unet.dispose()]);
    });
    // the UNet opens two sessions on a GPU (the plain one and the resident one)
    assertNoneOnCpu(results, 5);
  });

  it("Lotus' UNet with the projection class embedding (the task switcher)", async () => {
    const results = await cpuComputeOf(async () => {
      const unet = await UNet.load(join(REFERENCE, 'lotus/tiny-lotus-g'), {
        device,
        warmUp: false,
        taps: false,
      });
      await unet.run({
        sample: randn([1, 8, 8, 8]),
        timestep: 999,
        encoderHiddenStates: randn([1, 1, unet.config.crossAttentionDim]),
        classLabels: new Tensor(Float32Array.from([0, 1, 0, 1]), [1, 4]),
      });
      await unet.dispose();
    });
    assertNoneOnCpu(results, 2);
  });

  it('DINO ViT, DINOv2 (registers, SwiGLU) and the aggregation network forward', async () => {
    const dir = join(tempDir(), 'tiny-dino');
    await makeTinyCheckpoint(dir, { style: 'dino', seed: 3 });
    const v2 = join(tempDir(), 'tiny-dinov2');
    await makeTinyCheckpoint(v2, { style: 'dinov2', registers: true, swiglu: true, seed: 3 });
    const results = await cpuComputeOf(async () => {
      const dino = await DinoModel.load(dir, { device, layer: 1, stride: 4 });
      await dino.run(randn([1, 3, 32, 32]));
      await dino.dispose();
      const dinov2 = await Dinov2Model.load(v2, { device, featureCache: false });
      await dinov2.run(randn([1, 3, 42, 56]));
      await dinov2.dispose();
      const net = await AggregationNetwork.load(join(REFERENCE, 'cases/aggregation_network.safetensors'), {
        device,
      });
      const total = net.config.saveTimesteps.length * net.config.featureDims.reduce((a, b) => a + b, 0);
      const features = randn([2, total, 8, 8]);
      await net.forward(features);
      await net.dispose();
    });
    assertNoneOnCpu(results, 3);
  });

  it("the aggregation network's training step: forward, loss, backward and AdamW graphs", async () => {
    const net = await AggregationNetwork.load(join(REFERENCE, 'cases/aggregation_network.safetensors'), {
      device,
    });
    const total = net.config.saveTimesteps.length * net.config.featureDims.reduce((a, b) => a + b, 0);
    const trainer = new Trainer(net, { lr: 1e-3 });
    const results = await cpuComputeOf(async () => {
      const r = await trainer.trainStep(
        randn([2, total, 8, 8]),
        [
          [1, 2],
          [5, 6],
        ],
        [
          [2, 2],
          [7, 1],
        ],
      );
      assert.ok(Number.isFinite(r.loss));
    });
    // per feature width: a forward and a backward graph; then the loss and the update
    const widths = new Set(net.config.featureDims).size;
    assertNoneOnCpu(results, 2 * widths + 2);
    await trainer.dispose();
    await net.dispose();
  });
});
