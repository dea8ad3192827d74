/**
 * Extraction settings that fit an aggregation network: its save timesteps and DDIM steps,
 * unless the user overrides them; any mismatch (with the user's settings, the one-step flag
 * or the diffusion model's decoder channels) is a ConfigError raised before any inversion.
 */
import { ConfigError } from '../core/errors.ts';
import type { ExtractOptions } from '../diffusion/extract.ts';
import { tapChannels, type UNetConfig } from '../model/unet/config.ts';
import { networkSteps, type AggregationConfig } from './config.ts';

const list = (xs: readonly number[]) => `[${xs.join(', ')}]`;

export function extractionForNetwork(
  net: AggregationConfig,
  unet: UNetConfig,
  user: ExtractOptions = {},
  o: { oneStep?: boolean; networkName?: string } = {},
): ExtractOptions {
  const name = o.networkName ?? 'the aggregation network';
  const known = networkSteps(net);
  if (known === undefined && user.steps === undefined)
    throw new ConfigError(
      `${name} does not say how many DDIM steps its features came from (save timesteps ${list(net.saveTimesteps)}, no num_timesteps in its config): pass extract.steps`,
    );
  const steps = known ?? user.steps!;
  if (o.oneStep !== undefined && o.oneStep !== (steps === 1))
    throw new ConfigError(
      o.oneStep
        ? `oneStep is set, but ${name} was trained on ${net.saveTimesteps.length} save timesteps of a ${steps}-step inversion: drop oneStep, or use the one-step network`
        : `${name} is a one-step network (save timestep [0] of 1 step): set oneStep: true (--one-step), or use a multi-step network`,
    );
  if (user.steps !== undefined && known !== undefined && user.steps !== known)
    throw new ConfigError(
      `extract.steps ${user.steps} differs from the ${steps} DDIM step(s) ${name} was trained on: leave steps unset to use the network's`,
    );
  if (user.saveTimesteps && list(user.saveTimesteps) !== list(net.saveTimesteps))
    throw new ConfigError(
      `extract.saveTimesteps ${list(user.saveTimesteps)} differ from ${list(net.saveTimesteps)}, the ones ${name} was trained on: leave saveTimesteps unset to use the network's, or pass a network trained on yours`,
    );
  const dims = tapChannels(unet);
  const layers = user.layers ?? dims.map((_, i) => i + 1);
  const got = layers.map((l) => dims[l - 1]);
  if (list(got) !== list(net.featureDims))
    throw new ConfigError(
      `${name} expects decoder layers with ${list(net.featureDims)} channels, but this diffusion model's ${user.layers ? `layers ${list(layers)} have` : 'decoder layers have'} ${list(got)}: the network was trained on another model family (e.g. SD-1.5 vs SD-2.1, or a tiny test model); pass the network trained for this model`,
    );
  return { ...user, steps, saveTimesteps: [...net.saveTimesteps] };
}
