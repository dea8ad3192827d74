import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { writeSafetensors } from '../../core/safetensors.ts';
import { checkNotInput, checkOutputDir, checkOutputFile } from '../../core/outputs.ts';
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
    if (dir) checkOutputDir(v.out);
    else checkOutputFile(v.out);
    checkNotInput(v.out, dir ? [v.features, ...files] : files);
    const outputs = files.map((f) => (dir ? join(v.out!, basename(f)) : v.out!));
    for (const o of outputs) checkNotInput(o, files);
    // every input is read and checked before any output is written
    const stacks = [];
    for (const file of files) stacks.push(await FeatureStack.load(file));
    const net = await AggregationNetwork.load(v.network, {
      device: choice('device', v.device, DEVICES, 'cpu'),
    });
    try {
      for (const [i, file] of files.entries()) {
        const stack = v.flip ? stacks[i].flipped() : stacks[i];
        const descriptors = await net.aggregate([stack], resolution);
        const out = outputs[i];
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
