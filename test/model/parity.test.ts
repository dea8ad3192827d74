/**
 * Parity with the PyTorch reference (diffusers 0.14 + transformers CLIP) in
 * ../shared/reference, through the same public API a user calls. Tolerances come from the
 * reference manifest.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNet } from '../../sdk/model/unet/index.ts';
import { Vae } from '../../sdk/model/vae/index.ts';
import { TextEncoder, ClipTokenizer } from '../../sdk/model/clip/index.ts';
import { SafetensorsReader, readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { loadImage } from '../../sdk/data/image.ts';
import { captureLogs } from '../../sdk/core/logger.ts';
import {
  ATTENTION_KINDS,
  FIXTURES,
  ON_DEVICE,
  REFERENCE,
  TEST_DEVICE,
  assertClose,
  lotusTolerance,
  tolerance,
} from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const caseFile = (name: string) => join(REFERENCE, 'cases', `${name}.safetensors`);

describe(`model parity with diffusers 0.14 (tiny-sd15) on ${TEST_DEVICE}`, () => {
  it('tokenizes prompts exactly like the SD CLIP tokenizer (padding, truncation with a warning)', async () => {
    const tok = ClipTokenizer.load(TINY);
    const c = JSON.parse(readFileSync(join(REFERENCE, 'cases/tokenizer.json'), 'utf8')) as {
      prompts: string[];
      input_ids: number[][];
    };
    const { records } = await captureLogs(() =>
      c.prompts.forEach((p, i) =>
        assert.deepEqual(tok.encode(p), c.input_ids[i], `prompt ${JSON.stringify(p)}`),
      ),
    );
    assert.equal(records.length, 1);
    assert.match(records[0].message, /prompt has 92 tokens; truncated to 75/);
  });

  it('encodes token ids like CLIPTextModel', async () => {
    const te = await TextEncoder.load(TINY, ON_DEVICE);
    const r = await SafetensorsReader.open(caseFile('text_encoder'));
    const ids = await r.readInt64('input_ids');
    const rows = Array.from({ length: ids.shape[0] }, (_, i) =>
      Array.from(ids.data.slice(i * 77, (i + 1) * 77), Number),
    );
    assertClose(
      await te.encodeIds(rows),
      await r.read('last_hidden_state'),
      tolerance('text_encoder', 'last_hidden_state'),
      'last_hidden_state',
    );
    await r.close();
    await te.dispose();
  });

  // both attention kernels: the default (fused) and the export's (exact)
  for (const attention of ATTENTION_KINDS)
    describe(`UNet noise prediction and the 12 decoder taps (${attention} attention)`, () => {
      let unet: UNet;
      before(async () => {
        unet = await UNet.load(TINY, { attention, ...ON_DEVICE });
      });
      after(() => unet.dispose());
      for (const c of ['unet_t-1', 'unet_t0', 'unet_t261', 'unet_t980', 'unet_nonsquare_t500']) {
        it(c, async () => {
          const { tensors: t } = await readAllSafetensors(caseFile(c));
          const out = await unet.run({
            sample: t.get('sample')!,
            timestep: [...t.get('timestep')!.data],
            encoderHiddenStates: t.get('encoder_hidden_states')!,
          });
          assertClose(out.noisePred, t.get('noise_pred')!, tolerance(c, 'noise_pred'), `${c} noise_pred`);
          assert.equal(out.taps.length, 12);
          out.taps.forEach((tap, k) =>
            assertClose(tap, t.get(`tap_l${k + 1}`)!, tolerance(c, `tap_l${k + 1}`), `${c} tap_l${k + 1}`),
          );
        });
      }
    });

  it('VAE posterior and decoder', async () => {
    const vae = await Vae.load(TINY, ON_DEVICE);
    const { tensors: t } = await readAllSafetensors(caseFile('vae'));
    const p = await vae.encode(t.get('image')!);
    assertClose(p.mean, t.get('posterior_mean')!, tolerance('vae', 'posterior_mean'), 'posterior_mean');
    assertClose(p.std, t.get('posterior_std')!, tolerance('vae', 'posterior_std'), 'posterior_std');
    assertClose(
      p.logvar,
      t.get('posterior_logvar')!,
      tolerance('vae', 'posterior_logvar'),
      'posterior_logvar',
    );
    assertClose(
      await vae.decode(t.get('latent')!),
      t.get('decoded')!,
      tolerance('vae', 'decoded'),
      'decoded',
    );
    // image pipeline end to end: the photo loaded at 224 (PIL bilinear), interpolated to 512, encoded
    const { tensors: ip } = await readAllSafetensors(caseFile('image_pipeline'));
    const { pixels } = await loadImage(join(FIXTURES, 'photos/chelsea.png'), {
      loadSize: 224,
      modelSize: 512,
    });
    const post = await vae.encode(pixels);
    assertClose(
      post.mean,
      ip.get('posterior_mean')!,
      tolerance('image_pipeline', 'posterior_mean'),
      'image_pipeline mean',
    );
    assertClose(
      post.std,
      ip.get('posterior_std')!,
      tolerance('image_pipeline', 'posterior_std'),
      'image_pipeline std',
    );
    await vae.dispose();
  });
});

describe(`model parity on ${TEST_DEVICE}: Lotus-G topology (SD-2 layout, projection class embedding, odd latents)`, () => {
  const LOTUS = join(REFERENCE, 'lotus/tiny-lotus-g');

  for (const attention of ATTENTION_KINDS)
    it(`matches the unpadded prompt embedding, posterior sample, both task switchers and the decode (${attention} attention)`, async () => {
      const r = await SafetensorsReader.open(join(REFERENCE, 'lotus/cases/lotus-g_inference.safetensors'));
      const [unet, vae, te] = await Promise.all([
        UNet.load(LOTUS, { attention, ...ON_DEVICE }),
        Vae.load(LOTUS, ON_DEVICE),
        TextEncoder.load(LOTUS, ON_DEVICE),
      ]);
      const emb = await te.encode('', { padding: 'none' });
      assertClose(emb, await r.read('prompt_embeds'), lotusTolerance('prompt_embeds'), 'prompt_embeds');
      const post = await vae.encode(await r.read('rgb_resized'));
      const latent = vae.latentFromPosterior(post, { eps: await r.read('posterior_eps') });
      assertClose(latent, await r.read('rgb_latent'), lotusTolerance('rgb_latent'), 'rgb_latent');
      for (const task of ['annotation', 'rgb']) {
        const out = await unet.run({
          sample: await r.read('unet_input'),
          timestep: 999,
          encoderHiddenStates: emb,
          classLabels: await r.read(`task_emb_${task}`),
        });
        assertClose(
          out.noisePred,
          await r.read(`${task}_x0_latent`),
          lotusTolerance(`${task}_x0_latent`),
          `${task}_x0_latent`,
        );
        assertClose(
          await vae.decodeLatents(out.noisePred),
          await r.read(`${task}_decoded`),
          lotusTolerance(`${task}_decoded`),
          `${task}_decoded`,
        );
      }
      await r.close();
      await Promise.all([unet.dispose(), vae.dispose(), te.dispose()]);
    });
});

describe('model: fp16 weights option', () => {
  it('keeps weights in half precision (half the graph size) and stays close to the fp32 reference', async () => {
    const { tensors: t } = await readAllSafetensors(caseFile('unet_t261'));
    const unet = await UNet.load(TINY, { weights: 'fp16' });
    const out = await unet.run({
      sample: t.get('sample')!,
      timestep: 261,
      encoderHiddenStates: t.get('encoder_hidden_states')!,
    });
    const rel = assertClose(out.noisePred, t.get('noise_pred')!, 5e-3, 'fp16-weight noise_pred');
    assert.ok(rel > 1e-5, 'the weights really are rounded to fp16');
    await unet.dispose();
  });
});
