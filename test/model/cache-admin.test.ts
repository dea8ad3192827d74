/**
 * The graph cache's list and prune (`hyperfeatures cache`): a real entry stays and keeps serving
 * loads; entries for another onnxruntime, another graph builder, or left incomplete are stale;
 * a build in progress is never pruned; unused-for-N-days goes by the last load.
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { BUILDER_VERSION, ROOT_MARKER } from '../../sdk/model/cache.ts';
import { listGraphCache, pruneGraphCache } from '../../sdk/model/cache-admin.ts';
import { TextEncoder } from '../../sdk/model/clip/index.ts';
import { REFERENCE, runCli, tempDir } from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');
/** Entry folder names as the cache makes them: component and 24 hex digits. */
const E = Object.fromEntries(
  ['otherort', 'oldbuilder', 'unrecorded', 'interrupted', 'building'].map((t, i) => [
    t,
    `unet-${String(i + 1).repeat(24)}`,
  ]),
) as Record<'otherort' | 'oldbuilder' | 'unrecorded' | 'interrupted' | 'building', string>;
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
    const [live] = readdirSync(root).filter((f) => f !== ROOT_MARKER);
    const manifest = JSON.parse(readFileSync(join(root, live, 'manifest.json'), 'utf8')) as {
      builder: number;
    };
    assert.equal(manifest.builder, BUILDER_VERSION);
    variant(root, live, E.otherort, (m) => (m.ort = '0.0.1'), 1);
    variant(root, live, E.oldbuilder, (m) => (m.builder = BUILDER_VERSION - 1), 1);
    variant(root, live, E.unrecorded, (m) => delete m.builder, 40); // valid, but not used for 40 days
    variant(root, live, E.interrupted, null, 2);
    variant(root, live, E.building, null, 0); // no manifest yet, written just now
    const entries = listGraphCache(root);
    const stale: Record<string, string | undefined> = Object.fromEntries(
      entries.map((e) => [e.name, e.stale]),
    );
    assert.match(stale[E.otherort]!, /onnxruntime 0\.0\.1/);
    assert.match(stale[E.oldbuilder]!, new RegExp(`graph builder ${BUILDER_VERSION - 1}`));
    assert.match(stale[E.interrupted]!, /no manifest/);
    assert.equal(stale[live], undefined);
    assert.equal(stale[E.unrecorded], undefined);
    assert.ok(
      entries.every((e) => e.bytes > 1e6),
      'sizes count the graph files',
    );

    // dry run removes nothing; --stale takes the three that can never load, not the build in progress
    assert.equal(pruneGraphCache({ stale: true, dryRun: true, root }).length, 3);
    assert.equal(readdirSync(root).length, 7, 'six entries and the root marker');
    const removed = pruneGraphCache({ stale: true, root })
      .map((e) => e.name)
      .sort();
    assert.deepEqual(removed, [E.interrupted, E.oldbuilder, E.otherort].sort());
    // unused for 30 days: only the entry last used 40 days ago
    assert.deepEqual(
      pruneGraphCache({ unusedDays: 30, root }).map((e) => e.name),
      [E.unrecorded],
    );
    assert.deepEqual(readdirSync(root).sort(), [ROOT_MARKER, live, E.building].sort());

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
    const [live] = readdirSync(root).filter((f) => f !== ROOT_MARKER);
    variant(root, live, E.otherort, (m) => (m.ort = '0.0.1'), 1);
    const list = await runCli(['cache', 'list', '--dir', root]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /2 entries/);
    assert.match(list.out, new RegExp(`${E.otherort} .* stale: built for onnxruntime 0\\.0\\.1`));
    const prune = await runCli(['cache', 'prune', '--stale', '--dir', root]);
    assert.equal(prune.code, 0, prune.err);
    assert.match(prune.out, /removed 1 entries/);
    assert.ok(existsSync(join(root, live)) && !existsSync(join(root, E.otherort)));
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

  it('removes only what is provably its own, and refuses a folder that is not a cache', async () => {
    // a user's folders, hours old: never a cache's entries
    const u = tempDir();
    for (const d of ['photos', 'thesis']) {
      mkdirSync(join(u, d));
      writeFileSync(join(u, d, 'keep.txt'), d);
      const t = new Date(Date.now() - 3 * 3600_000);
      utimesSync(join(u, d), t, t);
    }
    for (const args of [
      ['prune', '--stale'],
      ['prune', '--stale', '--dry-run'],
      ['prune', '--unused-days', '0.01'],
      ['list'],
    ]) {
      const r = await runCli(['cache', ...args, '--dir', u]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}`);
      assert.match(r.err, /is not a hyperfeatures graph cache .* nothing was touched/);
    }
    assert.deepEqual(readdirSync(u).sort(), ['photos', 'thesis']);
    assert.equal(readFileSync(join(u, 'thesis', 'keep.txt'), 'utf8'), 'thesis');
    // the cache's root instead of its graphs folder: refused, pointing at the graphs folder
    const cacheRoot = tempDir();
    const graphs = join(cacheRoot, 'graphs');
    await (await TextEncoder.load(TINY, { cacheDir: graphs })).dispose();
    mkdirSync(join(cacheRoot, 'features', 'abc'), { recursive: true });
    const r = await runCli(['cache', 'prune', '--stale', '--dir', cacheRoot]);
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`The graph cache there is ${graphs.replace(/[/\\]/g, '.')}`));
    assert.ok(existsSync(join(cacheRoot, 'features', 'abc')));
    // a file, and the filesystem root
    const file = join(tempDir(), 'f');
    writeFileSync(file, 'x');
    assert.match((await runCli(['cache', 'list', '--dir', file])).err, /a file, not a graph cache folder/);
    assert.match(
      (await runCli(['cache', 'prune', '--stale', '--dir', '/'])).err,
      /not a hyperfeatures graph cache/,
    );
    // inside a real cache: a user's folder and an old entry-like folder without our marker stay
    const [live] = readdirSync(graphs).filter((f) => f !== ROOT_MARKER);
    mkdirSync(join(graphs, 'my-notes'));
    mkdirSync(join(graphs, `unet-${'a'.repeat(24)}`));
    const old = new Date(Date.now() - 3 * 3600_000);
    for (const d of ['my-notes', `unet-${'a'.repeat(24)}`]) utimesSync(join(graphs, d), old, old);
    // a temp file of an interrupted write (a process that is gone) inside the live entry
    const temp = join(
      graphs,
      live,
      `.model.onnx.tmp-${hostname().replace(/[^A-Za-z0-9]/g, '_')}-999999-dead`,
    );
    writeFileSync(temp, 'partial');
    utimesSync(temp, old, old);
    const list = await runCli(['cache', 'list', '--dir', graphs]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /1 entries/);
    assert.match(list.out, /\+1 temp file\(s\) of an interrupted write/);
    assert.match(list.out, /not the cache's own, left alone: .*my-notes/);
    const prune = await runCli(['cache', 'prune', '--stale', '--dir', graphs]);
    assert.equal(prune.code, 0, prune.err);
    assert.match(prune.out, /removed 0 entries/);
    assert.ok(!existsSync(temp), 'the dead temp file is removed');
    assert.ok(existsSync(join(graphs, 'my-notes')) && existsSync(join(graphs, `unet-${'a'.repeat(24)}`)));
    assert.ok(existsSync(join(graphs, live, 'model.onnx')));
  });

  it('keys graphs by weight content and verifies a cached graph before using it', async () => {
    const model = tempDir();
    cpSync(TINY, model, { recursive: true });
    const root = tempDir();
    const encode = async () => {
      const te = await TextEncoder.load(model, { cacheDir: root });
      try {
        return Array.from((await te.encode('a photo of a cat')).data);
      } finally {
        await te.dispose();
      }
    };
    const first = await encode();
    const entries = () => readdirSync(root).filter((f) => f !== ROOT_MARKER);
    assert.equal(entries().length, 1);
    // the weights replaced in place: same size, same mtime, other bytes
    const weights = join(
      model,
      'text_encoder',
      readdirSync(join(model, 'text_encoder')).find((f) => f.endsWith('.safetensors'))!,
    );
    const { mtime, atime, size } = statSync(weights);
    const bytes = readFileSync(weights);
    for (let i = bytes.length - 4096; i < bytes.length; i += 4) bytes.writeFloatLE(0.5, i);
    writeFileSync(weights, bytes);
    utimesSync(weights, atime, mtime);
    assert.equal(statSync(weights).size, size);
    assert.ok(Math.abs(statSync(weights).mtimeMs - mtime.getTime()) < 1, 'the same mtime');
    const replaced = await encode();
    assert.equal(entries().length, 2, 'a new graph for the new content');
    assert.notDeepEqual(replaced, first);
    // a cached graph with flipped bytes (same size, mtime put back) is found out and rebuilt
    const newest = entries()
      .map((e) => join(root, e, 'model.onnx'))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    const g = readFileSync(newest);
    const t = statSync(newest);
    for (let i = g.length - 2048; i < g.length - 1024; i += 4) g.writeFloatLE(3, i);
    writeFileSync(newest, g);
    utimesSync(newest, t.atime, t.mtime);
    const again = await encode();
    assert.deepEqual(again, replaced, "the rebuilt graph gives the weights' numbers");
    assert.notDeepEqual(readFileSync(newest), g, 'the damaged graph was replaced');
  });
});
