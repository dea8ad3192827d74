import { ConfigError } from '../../core/errors.ts';
import { downloadModel } from '../../model/hub.ts';
import { parse } from '../args.ts';
import type { Command } from '../main.ts';

export const download: Command = {
  summary: 'fetch the files the SDK needs from the Hugging Face hub into the HF cache',
  usage:
    'hyperfeatures download <repo-id> [--revision main] [--fp16] [--offline]   (HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_ENDPOINT)',
  async run(args) {
    const { values, positionals } = parse(args, {
      revision: { type: 'string' },
      fp16: { type: 'boolean' },
      offline: { type: 'boolean' },
    });
    if (positionals.length !== 1)
      throw new ConfigError(`download: expected one repo id, got ${positionals.length}`);
    const dir = await downloadModel(positionals[0], {
      revision: values.revision,
      fp16: values.fp16,
      offline: values.offline,
    });
    process.stdout.write(`${positionals[0]} is at ${dir}\n`);
  },
};
