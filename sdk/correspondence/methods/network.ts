/** The requirement the network rows share: one message for all of them. */
import type { EvalOptions } from '../evaluate.ts';
import type { Requirement } from './method.ts';

export function networkRequirement(o: EvalOptions): Requirement {
  return {
    key: 'network',
    message: (methods) =>
      `method(s) ${methods.join(', ')} need an aggregation network${o.networkMissing ? ` (${o.networkMissing})` : ''}: pass --aggregator <ckpt> (and --one-step-aggregator for one-step), use an SD-1.5 or SD-2.1 model with --allow-download for the released networks, or train one (hyperfeatures train)`,
  };
}
