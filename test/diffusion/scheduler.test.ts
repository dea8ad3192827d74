import assert from 'node:assert/strict';
import { DdimScheduler, HYPERFEATURES_DDIM } from '../../sdk/diffusion/scheduler.ts';
import { runDiffusion, stepSchedule, type NoiseModel } from '../../sdk/diffusion/loop.ts';
import { validatePlan, parseIndexList, PAPER_SAVE_TIMESTEPS } from '../../sdk/diffusion/plan.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { ConfigError } from '../../sdk/core/errors.ts';

/** A dummy UNet: eps = f(x, t); taps report the t they were called at. */
function dummy(f: (x: number, t: number, ctx: number) => number): NoiseModel & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    async run({ sample, timestep, encoderHiddenStates, tapLayers }) {
      calls.push(timestep);
      const per = sample.size / sample.shape[0];
      const eps = sample.map((v, i) =>
        f(
          v,
          timestep,
          encoderHiddenStates.data[
            Math.floor(i / per) * (encoderHiddenStates.size / encoderHiddenStates.shape[0])
          ],
        ),
      );
      const taps = (tapLayers ?? []).map((l) => {
        const t = Tensor.zeros([sample.shape[0], 2, 2, 2]);
        return t.map((_, i) => timestep * 100 + l + (i >= t.size / sample.shape[0] ? 0.5 : 0));
      });
      return { noisePred: eps, taps };
    },
  };
}

describe('diffusion/scheduler', () => {
  const s = new DdimScheduler();

  it("uses the original code's timesteps (steps_offset 0): 980, 960, ..., 0", () => {
    const ts = s.setTimesteps(50);
    assert.equal(ts.length, 50);
    assert.deepEqual([ts[0], ts[1], ts[48], ts[49]], [980, 960, 20, 0]);
    assert.deepEqual(
      new DdimScheduler({ ...HYPERFEATURES_DDIM, stepsOffset: 1 }).setTimesteps(50).slice(0, 2),
      [981, 961],
    );
    assert.deepEqual(s.setTimesteps(1), [0]);
    assert.throws(() => s.setTimesteps(0), ConfigError);
    assert.throws(() => s.setTimesteps(1001), ConfigError);
  });

  it('has scaled_linear alphas: alpha(-1) = 1, alpha_bar(0) = 1 - 0.00085, alpha_bar(999) ~ 0.00466', () => {
    assert.equal(s.alpha(-1), 1);
    assert.ok(Math.abs(s.alpha(0) - (1 - 0.00085)) < 1e-9);
    assert.ok(Math.abs(s.alpha(999) - 0.00466) < 2e-6, String(s.alpha(999)));
    assert.throws(() => s.alpha(1000), ConfigError);
    assert.throws(() => s.alpha(2.5), ConfigError);
  });

  it('steps an exact trajectory when eps is the true noise (x_t = sqrt(a) x0 + sqrt(1-a) eps)', () => {
    const x0 = Float32Array.from([0.5, -1, 2]);
    const eps = Float32Array.from([0.1, 0.3, -0.2]);
    const xt = x0.map((v, i) => Math.sqrt(s.alpha(500)) * v + Math.sqrt(1 - s.alpha(500)) * eps[i]);
    const r = s.step(eps, 500, 300, xt);
    assert.ok(relativeError(r.predOriginalSample, x0) < 1e-6);
    const want = x0.map((v, i) => Math.sqrt(s.alpha(300)) * v + Math.sqrt(1 - s.alpha(300)) * eps[i]);
    assert.ok(relativeError(r.prevSample, want) < 1e-6);
  });

  it('schedules inversion from t = -1 and generation down to t = -1, with generation numbering', () => {
    const inv = stepSchedule('inversion', 50, s);
    assert.deepEqual(inv[0], { t: -1, tNext: 0, save: 49 });
    assert.deepEqual(inv[4], { t: 60, tNext: 80, save: 45 });
    assert.deepEqual(inv[49], { t: 960, tNext: 980, save: 0 });
    const gen = stepSchedule('generation', 50, s);
    assert.deepEqual(gen[0], { t: 980, tNext: 960, save: 0 });
    assert.deepEqual(gen[49], { t: 0, tNext: -1, save: 49 });
    assert.deepEqual(stepSchedule('inversion', 1, s), [{ t: -1, tNext: 0, save: 0 }]);
  });
});

describe('diffusion/loop with a dummy model', () => {
  const cond = Tensor.zeros([1, 77, 4]);
  const latent = Tensor.from([0.3, -0.7, 1.1, 0.05], [1, 1, 2, 2]);
  const all = { saveTimesteps: [...PAPER_SAVE_TIMESTEPS], layers: [1, 12] };

  it('captures each save timestep at the UNet call the paper uses (t = -1, 60, ..., 960)', async () => {
    const m = dummy(() => 0.1);
    const r = await runDiffusion(m, latent, { mode: 'inversion', steps: 50, plan: all, cond });
    assert.equal(m.calls[0], -1, 'the UNet is called at t = -1 first');
    assert.equal(m.calls.length, 50);
    const tOf = (slot: number) => (r.captures[slot][0].data[0] - 1) / 100;
    assert.deepEqual(
      all.saveTimesteps.map((_, k) => Math.round(tOf(k))),
      [-1, 60, 160, 260, 360, 460, 560, 660, 760, 860, 960],
    );
    assert.equal(r.captures[0][1].data[0] - r.captures[0][0].data[0], 11, 'layer order kept');
    assert.equal(r.x0Preds.length, 51);
  });

  it('inverts exactly when eps is constant, and generation brings the latent back', async () => {
    const c = 0.25;
    const m = dummy(() => c);
    const s = new DdimScheduler();
    const inv = await runDiffusion(m, latent, { mode: 'inversion', steps: 50, plan: all, cond });
    const want = latent.data.map((v) => Math.sqrt(s.alpha(980)) * v + Math.sqrt(1 - s.alpha(980)) * c);
    assert.ok(relativeError(inv.finalLatent.data, want) < 1e-5);
    const gen = await runDiffusion(m, inv.finalLatent, { mode: 'generation', steps: 50, plan: all, cond });
    assert.ok(relativeError(gen.finalLatent.data, latent.data) < 1e-5);
  });

  it('round-trips closely with a deterministic x-dependent model', async () => {
    const m = dummy((x) => 0.05 * x + 0.1);
    const inv = await runDiffusion(m, latent, { mode: 'inversion', steps: 50, plan: all, cond });
    const gen = await runDiffusion(m, inv.finalLatent, { mode: 'generation', steps: 50, plan: all, cond });
    const err = relativeError(gen.finalLatent.data, latent.data);
    assert.ok(err < 0.02, `round-trip error ${err}`);
  });

  it("applies classifier-free guidance and keeps the conditional half's taps", async () => {
    // eps = ctx value: uncond 0, cond 1 -> guided eps = 0 + 7.5 (1 - 0) = 7.5
    const m = dummy((_x, _t, ctx) => ctx);
    const c1 = Tensor.zeros([1, 77, 4]).map(() => 1);
    const plan = { saveTimesteps: [0], layers: [3] };
    const r = await runDiffusion(m, latent, {
      mode: 'generation',
      steps: 1,
      plan,
      cond: c1,
      guidance: { scale: 7.5, uncond: cond },
    });
    const s = new DdimScheduler();
    const x0 = latent.data.map((v) => (v - Math.sqrt(1 - s.alpha(0)) * 7.5) / Math.sqrt(s.alpha(0)));
    assert.ok(relativeError(r.x0Preds[1].data, x0) < 1e-6);
    assert.equal(r.captures[0][0].shape[0], 1);
    assert.equal(r.captures[0][0].data[0] % 1, 0.5, 'taps from the second (conditional) half of the batch');
  });
});

describe('diffusion/plan', () => {
  it('rejects out-of-range, duplicate and empty entries, listing every problem', () => {
    assert.throws(
      () => validatePlan({ saveTimesteps: [50, 3, 3], layers: [0, 13, 2, 2] }, 50, 12),
      (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /save timesteps \[50\] are outside 0..49/);
        assert.match(e.message, /save timesteps repeat: \[3\]/);
        assert.match(e.message, /layers \[0,13\] are outside 1..12/);
        assert.match(e.message, /layers repeat: \[2\]/);
        return true;
      },
    );
    assert.throws(() => validatePlan({ saveTimesteps: [], layers: [1] }, 1, 12), /saveTimesteps is empty/);
  });

  it('parses CLI index lists', () => {
    assert.deepEqual(parseIndexList('1-4,10', 'layers'), [1, 2, 3, 4, 10]);
    assert.deepEqual(parseIndexList('49,45', 't'), [49, 45]);
    assert.throws(() => parseIndexList('1-x', 'layers'), ConfigError);
  });
});
