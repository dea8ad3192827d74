/** `hyperfeatures cache list|prune`: the graph cache's entries, and removing unneeded ones. */
import { ConfigError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import {
  graphCacheDir,
  pruneGraphCache,
  readGraphCache,
  type GraphCacheEntry,
} from '../../model/cache-admin.ts';
import { parse } from '../args.ts';
import type { Command } from '../main.ts';

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
const day = (d: Date) => d.toISOString().slice(0, 10);

function table(entries: GraphCacheEntry[]): string {
  const width = Math.max(...entries.map((e) => e.name.length));
  return entries
    .map(
      (e) =>
        `  ${e.name.padEnd(width)}  ${gib(e.bytes).padStart(10)}  last used ${day(e.lastUsed)}  ${e.stale ? `stale: ${e.stale}` : 'ok'}${e.leftovers.length ? ` (+${e.leftovers.length} temp file(s) of an interrupted write: prune --stale removes them)` : ''}`,
    )
    .join('\n');
}

const notOurs = (names: string[]) =>
  `not the cache's own, left alone: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ` and ${names.length - 10} more` : ''}`;

export const cache: Command = {
  summary: 'list the graph cache, or remove stale or unused entries from it',
  usage:
    'hyperfeatures cache list [--dir <graphs folder>]\n       hyperfeatures cache prune [--stale (other onnxruntime or builder, incomplete)] [--unused-days N] [--dry-run] [--dir <graphs folder>]',
  async run(args) {
    const [verb, ...rest] = args;
    const out = (s: string) => void process.stdout.write(s + '\n');
    if (verb === 'list') {
      const { values } = parse(rest, { dir: { type: 'string' } }, false);
      const { root, entries, foreign } = readGraphCache(values.dir ?? graphCacheDir());
      const total = entries.reduce((a, e) => a + e.bytes, 0);
      out(`${root}: ${entries.length} entries, ${gib(total)}`);
      if (entries.length) out(table(entries));
      if (foreign.length) out(notOurs(foreign));
      return;
    }
    if (verb === 'prune') {
      const { values } = parse(
        rest,
        {
          stale: { type: 'boolean' },
          'unused-days': { type: 'string' },
          'dry-run': { type: 'boolean' },
          dir: { type: 'string' },
        },
        false,
      );
      const days = values['unused-days'];
      if (days !== undefined && !(Number(days) > 0))
        throw new ConfigError(messages.invalidOption('--unused-days', 'a positive number of days', days));
      const removed = pruneGraphCache({
        stale: values.stale,
        unusedDays: days === undefined ? undefined : Number(days),
        dryRun: values['dry-run'],
        root: values.dir,
      });
      const { foreign } = readGraphCache(values.dir ?? graphCacheDir());
      const freed = removed.reduce((a, e) => a + e.bytes, 0);
      out(`${values['dry-run'] ? 'would remove' : 'removed'} ${removed.length} entries, ${gib(freed)}`);
      if (removed.length) out(table(removed));
      if (foreign.length) out(notOurs(foreign));
      return;
    }
    throw new ConfigError(
      `cache: expected list or prune, got ${verb === undefined ? 'nothing' : JSON.stringify(verb)}`,
    );
  },
};
