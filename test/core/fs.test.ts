import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicStreaming, writeFileAtomic } from '../../sdk/core/fs.ts';
import { tempDir } from '../helpers.ts';
import { DataError } from '../../sdk/core/errors.ts';

describe('core/fs: atomic writes', () => {
  it('leaves nothing under the final name (and no temp file) when writing fails midway', async () => {
    const dir = tempDir();
    const path = join(dir, 'features.safetensors');
    await assert.rejects(
      writeFileAtomicStreaming(path, async (write) => {
        await write(new Uint8Array(1024));
        throw new Error('ENOSPC: no space left on device');
      }),
      /ENOSPC/,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('keeps the previous complete file until the new one is complete', async () => {
    const dir = tempDir();
    const path = join(dir, 'a.bin');
    writeFileSync(path, 'old');
    await assert.rejects(
      writeFileAtomicStreaming(path, async () => {
        throw new Error('interrupted');
      }),
    );
    assert.equal(readFileSync(path, 'utf8'), 'old');
    await writeFileAtomic(path, Buffer.from('new'));
    assert.equal(readFileSync(path, 'utf8'), 'new');
    assert.deepEqual(readdirSync(dir), ['a.bin']);
  });

  it('turns a full disk into a DataError naming the file, the old file intact', async () => {
    const dir = tempDir();
    const path = join(dir, 'ckpt.safetensors');
    writeFileSync(path, 'previous checkpoint');
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    await assert.rejects(
      writeFileAtomicStreaming(path, async (write) => {
        await write(new Uint8Array(16));
        throw full;
      }),
      (e: Error) =>
        e instanceof DataError &&
        /cannot write .*ckpt\.safetensors \(no space left on the device of .*: 16 bytes written when it filled, \d+ free\); the previous file, if any, is unchanged/.test(
          e.message,
        ),
    );
    assert.equal(readFileSync(path, 'utf8'), 'previous checkpoint');
    assert.deepEqual(readdirSync(dir), ['ckpt.safetensors']);
  });
});
