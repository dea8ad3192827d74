import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { writeSafetensors } from '../../core/safetensors.ts';
import { AggregationNetwork } from '../../aggregation/network.ts';
import { FeatureStack } from '../../diffusion/feature-stack.ts';
import { DEVICES } from '../../model/runtime.ts';
import { choice, intOption, parse } from '../args.ts';
import type { Command } from '../main.ts';

export const aggregate: Command = {
  summary: 'turn extracted features into Diffusion Hyperfeatures with an aggregation network',
  usage: `hyperfeatures aggregate --network <ckpt.pt|ckpt.safetensors> --features <file or folder from extract> --out <file.safetensors | folder> [--output-resolution 64] [--flip] [--device ${DEVICES.join('|')}]`,
  async run(args) {
    const { values: v } = parse(
      args,
      {
        network: { type: 'string' },
        features: { type: 'string' },
        out: { type: 'string' },
        'output-resolution': { type: 'string' },
        flip: { type: 'boolean' },
        device: { type: 'string' },
      },
      false,
    );
    if (!v.network || !v.features || !v.out)
      throw new ConfigError('aggregate: --network, --features and --out are required');
    if (!existsSync(v.features)) throw new DataError(`${v.features}: features not found`);
    const resolution = intOption('output-resolution', v['output-resolution'], 64, 1);
    const dir = statSync(v.features).isDirectory();
    const files = dir
      ? readdirSync(v.features)
          .filter((f) => f.endsWith('.safetensors'))
          .sort()
          .map((f) => join(v.features!, f))
      : [v.features];
    if (!files.length) throw new DataError(`${v.features}: no .safetensors feature files`);
    const net = await AggregationNetwork.load(v.network, {
      device: choice('device', v.device, DEVICES, 'cpu'),
    });
    try {
      for (const file of files) {
        let stack = await FeatureStack.load(file);
        if (v.flip) stack = stack.flipped();
        const descriptors = await net.aggregate([stack], resolution);
        const out = dir ? join(v.out, basename(file)) : v.out;
        await writeSafetensors(
          out,
          { descriptors },
          { network: v.network, features: file, resolution: String(resolution) },
        );
      }
      process.stdout.write(
        `wrote ${files.length} descriptor file(s) (tensor "descriptors" [1, ${net.config.projectionDim}, ${resolution}, ${resolution}]) to ${v.out}\n`,
      );
    } finally {
      await net.dispose();
    }
  },
};
