/** Argument parsing shared by the subcommands: node's parseArgs with typed errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { parseIndexList } from '../diffusion/plan.ts';
import { PRECISIONS, type Precision } from '../model/onnx/precision.ts';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  allowPositionals = true,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new ConfigError((e as Error).message, { cause: e });
  }
}

export function intOption(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(messages.invalidOption(`--${name}`, `an integer >= ${min}`, value));
  return n;
}

export function choice<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value))
    throw new ConfigError(messages.invalidOption(`--${name}`, allowed.join(' | '), value));
  return value as T;
}

/**
 * Let a list option take several space-separated values (`--images a.jpg b.jpg`): rewrite
 * the tokens after it, up to the next option, as repeated `--name value` pairs.
 */
export function spreadList(args: string[], name: string): string[] {
  const out: string[] = [];
  let inList = false;
  for (const a of args) {
    if (a.startsWith('--')) {
      inList = a === `--${name}`;
      if (inList) continue;
    } else if (inList) {
      out.push(`--${name}`, a);
      continue;
    }
    out.push(a);
  }
  return out;
}

/** The extraction flags shared by `match` and `eval`. */
export const EXTRACT_FLAGS = {
  steps: { type: 'string' },
  'save-timesteps': { type: 'string' },
  'image-size': { type: 'string' },
  'load-size': { type: 'string' },
  'color-managed': { type: 'boolean' },
} as const;

/** Extraction settings from those flags (undefined where not given: the SDK defaults apply). */
export function extractFlags(v: {
  steps?: string;
  'save-timesteps'?: string;
  'image-size'?: string;
  'load-size'?: string;
  'color-managed'?: boolean;
}) {
  return {
    steps: v.steps ? intOption('steps', v.steps, 50, 1) : undefined,
    saveTimesteps: v['save-timesteps'] ? parseIndexList(v['save-timesteps'], '--save-timesteps') : undefined,
    imageSize: v['image-size'] ? intOption('image-size', v['image-size'], 512, 8) : undefined,
    loadSize: v['load-size'] ? intOption('load-size', v['load-size'], 224, 1) : undefined,
    colorManaged: v['color-managed'],
  };
}

/**
 * `--attention fused|exact`, `--linear fp32|int8` and `--precision fp32|fp16|fp16-emulated`: the
 * models' kernels (see UNet LoadOptions.attention, .linear and .precision); defaults: the
 * device's attention, fp32 Linear layers, fp32.
 */
export const UNET_KERNEL_FLAGS = {
  attention: { type: 'string' },
  linear: { type: 'string' },
  precision: { type: 'string' },
} as const;
export const UNET_KERNEL_USAGE = `[--attention fused|exact] [--linear fp32|int8] [--precision ${PRECISIONS.join('|')}]`;
export function unetKernelOptions(v: { attention?: string; linear?: string; precision?: string }): {
  attention?: 'exact' | 'fused';
  linear?: 'fp32' | 'int8';
  precision?: Precision;
} {
  return {
    ...(v.precision === undefined ? {} : { precision: choice('precision', v.precision, PRECISIONS, 'fp32') }),
    ...(v.attention === undefined
      ? {}
      : { attention: choice('attention', v.attention, ['fused', 'exact'] as const, 'fused') }),
    ...(v.linear === undefined
      ? {}
      : { linear: choice('linear', v.linear, ['fp32', 'int8'] as const, 'fp32') }),
  };
}
