import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { downloadModel, resolveModel, repoCacheDir } from '../../sdk/model/hub.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { NetworkError } from '../../sdk/core/errors.ts';
import { rejectsWith, tempDir } from '../helpers.ts';
import { startFakeHub, type FakeHub } from './fake-hub.ts';

const REPO = 'tiny-org/tiny-sd15';

describe('model/hub (against a local server with the hub URL scheme)', () => {
  let hub: FakeHub;
  let folder: string;
  before(async () => {
    folder = join(tempDir(), 'model');
    await makeTinyCheckpoint(folder, { seed: 3 });
    hub = await startFakeHub(REPO, folder);
  });
  after(() => hub.close());

  it('downloads only the needed files into the HF cache layout, then serves from cache', async () => {
    const cache = tempDir();
    const snapshot = await downloadModel(REPO, {
      endpoint: hub.endpoint,
      cacheDir: cache,
      silent: true,
      token: 'hf_test',
    });
    assert.equal(snapshot, join(repoCacheDir(REPO, cache), 'snapshots', 'a'.repeat(40)));
    assert.equal(readFileSync(join(repoCacheDir(REPO, cache), 'refs', 'main'), 'utf8'), 'a'.repeat(40));
    const weights = join(snapshot, 'unet/diffusion_pytorch_model.safetensors');
    assert.ok(lstatSync(weights).isSymbolicLink());
    assert.deepEqual(
      readFileSync(weights),
      readFileSync(join(folder, 'unet/diffusion_pytorch_model.safetensors')),
    );
    assert.ok(!hub.requests.some((r) => r.url.endsWith('.bin')), 'never fetches pickled weights');
    assert.ok(hub.requests.every((r) => r.auth === 'Bearer hf_test'));
    const before = hub.requests.length;
    assert.equal(await resolveModel(REPO, { endpoint: hub.endpoint, cacheDir: cache }), snapshot);
    assert.equal(hub.requests.length, before, 'a cache hit makes no request');
    const unet = await UNet.load(snapshot);
    assert.equal(unet.config.blockOutChannels.length, 4);
    await unet.dispose();
  });

  it('resumes a partial file with a Range request', async () => {
    const cache = tempDir();
    const file = 'unet/diffusion_pytorch_model.safetensors';
    const bytes = readFileSync(join(folder, file));
    const sha = createHash('sha256').update(bytes).digest('hex');
    const blobs = join(repoCacheDir(REPO, cache), 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha}.incomplete`), bytes.subarray(0, 1000));
    hub.requests.length = 0;
    const snapshot = await downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, silent: true });
    assert.ok(hub.requests.some((r) => r.url.endsWith(file) && r.range === 'bytes=1000-'));
    assert.deepEqual(readFileSync(join(snapshot, file)), bytes);
  });

  it('rejects a corrupted download and leaves no file under the final name', async () => {
    const cache = tempDir();
    hub.corrupt.add('vae/diffusion_pytorch_model.safetensors');
    try {
      const e = await rejectsWith(
        downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, silent: true }),
        NetworkError,
      );
      assert.match(e.message, /vae\/diffusion_pytorch_model.safetensors: checksum mismatch/);
      const blobs = readdirSync(join(repoCacheDir(REPO, cache), 'blobs'));
      assert.ok(!blobs.some((b) => b.endsWith('.incomplete')));
      await rejectsWith(resolveModel(REPO, { cacheDir: cache }), NetworkError); // no half snapshot counts as cached
    } finally {
      hub.corrupt.clear();
    }
  });

  it('offline mode uses the cache only and says how to get the model', async () => {
    const cache = tempDir();
    const e = await rejectsWith(
      downloadModel(REPO, { endpoint: hub.endpoint, cacheDir: cache, offline: true }),
      NetworkError,
    );
    assert.match(e.message, /offline mode is on; run `hyperfeatures download tiny-org\/tiny-sd15`/);
    await rejectsWith(resolveModel(REPO, { cacheDir: cache }), NetworkError);
    assert.ok(!existsSync(join(cache, 'models--tiny-org--tiny-sd15', 'refs')));
  });

  it('reports HTTP errors with the URL', async () => {
    const e = await rejectsWith(
      downloadModel('tiny-org/absent', { endpoint: hub.endpoint, cacheDir: tempDir(), silent: true }),
      NetworkError,
    );
    assert.match(e.message, /HTTP 404/);
  });
});
