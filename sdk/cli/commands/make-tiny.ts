import { existsSync, readdirSync, statSync } from 'node:fs';
import { ConfigError } from '../../core/errors.ts';
import { checkOutputDir } from '../../core/outputs.ts';
import { DINOV2_VARIANTS, makeTinyCheckpoint, TINY_SIZES, TINY_STYLES } from '../../model/tiny/index.ts';
import { choice, intOption, parse } from '../args.ts';
import type { Command } from '../main.ts';

export const makeTiny: Command = {
  summary: 'write a diffusers checkpoint with SD topology and seeded random weights',
  usage: `hyperfeatures make-tiny <dir> [--style ${TINY_STYLES.join('|')}] [--size ${TINY_SIZES.join('|')}] [--seed N] [--fp16] [--registers] [--swiglu] [--variant ${DINOV2_VARIANTS.join('|')}] (dinov2 style: register tokens, the giant's SwiGLU feed-forward, the widths at --size full) [--force (write into a non-empty folder)]`,
  async run(args) {
    const { values, positionals } = parse(args, {
      style: { type: 'string' },
      size: { type: 'string' },
      seed: { type: 'string' },
      fp16: { type: 'boolean' },
      registers: { type: 'boolean' },
      swiglu: { type: 'boolean' },
      variant: { type: 'string' },
      force: { type: 'boolean' },
    });
    if (positionals.length !== 1)
      throw new ConfigError(`make-tiny: expected one output folder, got ${positionals.length}`);
    const dir = positionals[0];
    if (existsSync(dir) && statSync(dir).isDirectory() && readdirSync(dir).length && !values.force)
      throw new ConfigError(
        `make-tiny: ${dir} is not empty (it would overwrite what is there, e.g. a checkpoint's weights); choose an empty folder or pass --force`,
      );
    checkOutputDir(dir, 'make-tiny folder');
    const style = choice('style', values.style, TINY_STYLES, 'sd15');
    const size = choice('size', values.size, TINY_SIZES, 'tiny');
    await makeTinyCheckpoint(positionals[0], {
      style,
      size,
      seed: intOption('seed', values.seed, 0),
      fp16: values.fp16,
      registers: values.registers,
      swiglu: values.swiglu,
      variant:
        values.variant !== undefined ? choice('variant', values.variant, DINOV2_VARIANTS, 'base') : undefined,
    });
    process.stdout.write(
      `wrote a ${size} ${style} ${style === 'dino' ? 'transformers ViT' : style === 'dinov2' ? `transformers ${values.registers ? 'Dinov2WithRegistersModel' : 'Dinov2Model'}` : 'diffusers'} checkpoint (random weights) to ${positionals[0]}\n`,
    );
  },
};
