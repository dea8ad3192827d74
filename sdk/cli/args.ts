/** Argument parsing shared by the subcommands: node's parseArgs with typed errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  allowPositionals = true,
) {
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
