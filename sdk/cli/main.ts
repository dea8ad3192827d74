/**
 * The `hyperfeatures` command line. Each subcommand is a small module with `run(args)`;
 * this file only dispatches and turns typed errors into a one-line message and exit code 2.
 */
import { isHyperfeaturesError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { environmentReportProbed } from './environment.ts';
import { parse } from './args.ts';
import { makeTiny } from './commands/make-tiny.ts';
import { download } from './commands/download.ts';
import { extract } from './commands/extract.ts';
import { demo } from './commands/demo.ts';
import { aggregate } from './commands/aggregate.ts';
import { evaluate } from './commands/evaluate.ts';
import { match } from './commands/match.ts';
import { lotus } from './commands/lotus.ts';
import { lotusEval } from './commands/lotus-eval.ts';
import { kernel } from './commands/kernel.ts';
import { train } from './commands/train.ts';
import { cache } from './commands/cache.ts';

export interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<void>;
}

const out = (s: string): void => void process.stdout.write(s + '\n');

export const COMMANDS: Record<string, Command> = {
  env: {
    summary: 'print versions, devices and where models are looked up',
    usage: 'hyperfeatures env   (devices other than the CPU are probed by running a test graph on them)',
    run: async (args) => {
      parse(args, {}, false); // no options: an unknown flag is an error, not ignored
      out(await environmentReportProbed());
    },
  },
  demo,
  'make-tiny': makeTiny,
  download,
  extract,
  aggregate,
  eval: evaluate,
  match,
  lotus,
  'lotus-eval': lotusEval,
  train,
  kernel,
  cache,
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'hyperfeatures: Diffusion Hyperfeatures and Lotus on onnxruntime',
    '',
    'usage: hyperfeatures <command> [options]   (hyperfeatures <command> --help for details)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(help());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`error: ${messages.unknownCommand(name, Object.keys(COMMANDS))}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    out(`${command.summary}\n\nusage: ${command.usage}`);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    if (isHyperfeaturesError(e)) {
      process.stderr.write(`error (${e.name}): ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
