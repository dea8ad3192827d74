/**
 * The training loop of train_hyperfeatures.py: one epoch over a seeded permutation of the
 * pairs, AdamW on the CLIP-style loss, validation every N steps, atomic checkpoints. A
 * non-finite loss stops training, keeps the last good checkpoint and says which step.
 */
import { ConfigError } from '../../core/errors.ts';
import { log } from '../../core/logger.ts';
import { messages } from '../../core/messages.ts';
import { Rng } from '../../core/rng.ts';
import { checkPositiveInt } from '../../core/validate.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { AggregationNetwork } from '../network.ts';
import { Trainer, type AdamWOptions } from './trainer.ts';

export interface TrainingPair {
  /** [2, S*sum(C), R, R]: both images' stacked features (or a function producing them). */
  features: Tensor | (() => Promise<Tensor>);
  /** (y, x) on the R x R output grid. */
  source: [number, number][];
  target: [number, number][];
}

export interface TrainOptions extends AdamWOptions {
  /** Steps (pairs) to train; default one pass over the pairs (the paper: 5000). */
  steps?: number;
  seed?: number;
  validateEvery?: number;
  /** Returns a validation score (e.g. PCK), logged with the step. */
  validate?: () => Promise<number>;
  /** Save a safetensors checkpoint here after each validation and at the end. */
  checkpoint?: string;
  onStep?: (step: number, loss: number) => void;
}

export interface TrainHistory {
  losses: number[];
  validations: { step: number; score: number }[];
  /** Set when training stopped on a non-finite loss. */
  stoppedAt?: number;
}

export async function trainNetwork(
  network: AggregationNetwork,
  pairs: TrainingPair[],
  o: TrainOptions = {},
): Promise<TrainHistory> {
  if (!pairs.length) throw new ConfigError(messages.invalidOption('pairs', 'at least one training pair', 0));
  const steps = o.steps ?? pairs.length;
  checkPositiveInt('steps', steps);
  const trainer = new Trainer(network, o);
  const rng = new Rng(o.seed ?? 0);
  let order: number[] = [];
  const history: TrainHistory = { losses: [], validations: [] };
  const checkpoint = async () => {
    if (o.checkpoint) await network.save(o.checkpoint);
  };
  const validate = async (step: number) => {
    if (!o.validate) return;
    const score = await o.validate();
    history.validations.push({ step, score });
    log().info(`step ${step}: validation ${score.toFixed(4)}`);
  };
  try {
    await validate(0);
    for (let step = 1; step <= steps; step++) {
      if (!order.length) order = rng.permutation(pairs.length);
      const pair = pairs[order.shift()!];
      const features = typeof pair.features === 'function' ? await pair.features() : pair.features;
      const r = await trainer.trainStep(features, pair.source, pair.target);
      if (!r.applied) {
        history.stoppedAt = step;
        log().error(
          `training stopped at step ${step}: non-finite loss (${r.loss}); parameters are those after step ${step - 1}${o.checkpoint ? `, saved to ${o.checkpoint}` : ''}`,
        );
        break;
      }
      history.losses.push(r.loss);
      o.onStep?.(step, r.loss);
      if (o.validateEvery && step % o.validateEvery === 0) {
        await validate(step);
        await checkpoint();
      }
    }
    await checkpoint();
  } finally {
    await trainer.dispose();
  }
  return history;
}
