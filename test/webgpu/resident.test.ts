/**
 * Data stays on the device: the inversion loop keeps the latent and the noise prediction on the
 * GPU between steps and reads back only save steps' taps and the final latent. The resident
 * loop must give bit-for-bit the features of the same loop copying through the host every
 * step, and the read-backs are counted. WebGPU test mode only.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadStableDiffusion, type StableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { runDiffusion } from '../../sdk/diffusion/loop.ts';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { transfers } from '../../sdk/model/runtime.ts';
import { REFERENCE, TEST_DEVICE } from '../helpers.ts';

describe('WebGPU: the diffusion loop on the device', function () {
  this.timeout(1_200_000);
  let sd: StableDiffusion;
  before(async function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
    sd = await loadStableDiffusion(join(REFERENCE, 'tiny-sd15'), { device: 'webgpu' });
  });
  after(() => sd?.dispose());

  it('gives exactly the features of the read-back-every-step loop, reading back only at save steps', async () => {
    const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases/inversion_1.safetensors'));
    const layers = Array.from({ length: 12 }, (_, i) => i + 1);
    const opts = {
      mode: 'inversion' as const,
      steps: 5,
      plan: { saveTimesteps: [4, 1], layers },
      cond: t.get('cond')!,
      trajectory: false,
    };
    const before = transfers.readbacks;
    const resident = await runDiffusion(sd.unet, t.get('latent')!, opts);
    const residentReadbacks = transfers.readbacks - before;
    const copied = await runDiffusion(sd.unet, t.get('latent')!, { ...opts, resident: false });
    const copiedReadbacks = transfers.readbacks - before - residentReadbacks;
    resident.captures.forEach((maps, s) =>
      maps.forEach((m, l) =>
        assert.deepEqual(m.data, copied.captures[s][l].data, `save ${s}, layer ${l + 1}`),
      ),
    );
    assert.deepEqual(resident.finalLatent.data, copied.finalLatent.data, 'final latent');
    // 2 save steps x (noise_pred + 12 taps: the prefix onnxruntime-node fetches) + the last
    // step's x0 and latent; the 3 other steps read nothing back
    assert.equal(residentReadbacks, 2 * 13 + 2);
    // copying: the same taps, and every one of the 5 steps reads back the noise prediction, x0
    // and the latent
    assert.equal(copiedReadbacks, 2 * 12 + 5 * 3);
  });
});
