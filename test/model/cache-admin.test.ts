/**
 * The graph cache's list and prune (`hyperfeatures cache`): a real entry stays and keeps serving
 * loads; entries for another onnxruntime, another graph builder, or left incomplete are stale;
 * a build in progress is never pruned; unused-for-N-days goes by the last load.
 */
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { BUILDER_VERSION } from '../../sdk/model/cache.ts';
import { listGraphCache, pruneGraphCache } from '../../sdk/model/cache-admin.ts';
import { TextEncoder } from '../../sdk/model/clip/index.ts';
import { REFERENCE, runCli, tempDir } from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
const DAY = 86_400_000;

/** Copy the live entry under a new name, with its manifest edited (or removed), `days` old. */
function variant(
  root: string,
  live: string,
  name: string,
  edit: ((m: Record<string, unknown>) => void) | null,
  days: number,
) {
  const dir = join(root, name);
  cpSync(join(root, live), dir, { recursive: true });
  const manifest = join(dir, 'manifest.json');
  if (edit) {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
    edit(m);
    writeFileSync(manifest, JSON.stringify(m));
  } else rmSync(manifest);
  const t = new Date(Date.now() - days * DAY);
  utimesSync(edit ? manifest : dir, t, t);
}

describe('graph cache: list and prune', () => {
  it('removes stale entries and those unused for N days, keeps the live one serving loads', async () => {
    const root = tempDir();
    const load = async () => (await TextEncoder.load(TINY, { cacheDir: root })).dispose();
    await load();
    const [live] = readdirSync(root);
    const manifest = JSON.parse(readFileSync(join(root, live, 'manifest.json'), 'utf8')) as {
      builder: number;
    };
    assert.equal(manifest.builder, BUILDER_VERSION);
    variant(root, live, 'unet-otherort', (m) => (m.ort = '0.0.1'), 1);
    variant(root, live, 'unet-oldbuilder', (m) => (m.builder = BUILDER_VERSION - 1), 1);
    variant(root, live, 'unet-unrecorded', (m) => delete m.builder, 40); // valid, but not used for 40 days
    variant(root, live, 'unet-interrupted', null, 2);
    variant(root, live, 'unet-building', null, 0); // no manifest yet, written just now
    const entries = listGraphCache(root);
    const stale = Object.fromEntries(entries.map((e) => [e.name, e.stale]));
    assert.match(stale['unet-otherort']!, /onnxruntime 0\.0\.1/);
    assert.match(stale['unet-oldbuilder']!, new RegExp(`graph builder ${BUILDER_VERSION - 1}`));
    assert.match(stale['unet-interrupted']!, /no manifest/);
    assert.equal(stale[live], undefined);
    assert.equal(stale['unet-unrecorded'], undefined);
    assert.ok(
      entries.every((e) => e.bytes > 1e6),
      'sizes count the graph files',
    );

    // dry run removes nothing; --stale takes the three that can never load, not the build in progress
    assert.equal(pruneGraphCache({ stale: true, dryRun: true, root }).length, 3);
    assert.equal(readdirSync(root).length, 6);
    const removed = pruneGraphCache({ stale: true, root })
      .map((e) => e.name)
      .sort();
    assert.deepEqual(removed, ['unet-interrupted', 'unet-oldbuilder', 'unet-otherort']);
    // unused for 30 days: only the entry last used 40 days ago
    assert.deepEqual(
      pruneGraphCache({ unusedDays: 30, root }).map((e) => e.name),
      ['unet-unrecorded'],
    );
    assert.deepEqual(readdirSync(root).sort(), [live, 'unet-building'].sort());

    // a load marks the entry used and is served from it (the graph is not rebuilt)
    const graph = join(root, live, 'model.onnx');
    const old = new Date(Date.now() - 50 * DAY);
    utimesSync(join(root, live, 'manifest.json'), old, old);
    const built = statSync(graph).mtimeMs;
    await load();
    assert.equal(statSync(graph).mtimeMs, built);
    assert.equal(pruneGraphCache({ unusedDays: 30, root }).length, 0);

    assert.throws(() => pruneGraphCache({ root }), ConfigError);
    assert.throws(() => pruneGraphCache({ unusedDays: 0, root }), ConfigError);
  });

  it('through the CLI: list, prune and bad input', async () => {
    const root = tempDir();
    await (await TextEncoder.load(TINY, { cacheDir: root })).dispose();
    const [live] = readdirSync(root);
    variant(root, live, 'unet-otherort', (m) => (m.ort = '0.0.1'), 1);
    const list = await runCli(['cache', 'list', '--dir', root]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /2 entries/);
    assert.match(list.out, /unet-otherort .* stale: built for onnxruntime 0\.0\.1/);
    const prune = await runCli(['cache', 'prune', '--stale', '--dir', root]);
    assert.equal(prune.code, 0, prune.err);
    assert.match(prune.out, /removed 1 entries/);
    assert.ok(existsSync(join(root, live)) && !existsSync(join(root, 'unet-otherort')));
    const none = await runCli(['cache', 'prune', '--dir', root]);
    assert.equal(none.code, 2);
    assert.match(none.err, /expected --stale and\/or --unused-days N, got neither/);
    const days = await runCli(['cache', 'prune', '--unused-days', 'soon', '--dir', root]);
    assert.equal(days.code, 2);
    assert.match(days.err, /--unused-days.*a positive number of days.*soon/);
    const verb = await runCli(['cache', 'clear']);
    assert.equal(verb.code, 2);
    assert.match(verb.err, /expected list or prune, got "clear"/);
  });
});
