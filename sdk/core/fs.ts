/**
 * Atomic file writes: data goes to a temporary name beside the target and is renamed into
 * place only when complete, so an interrupted run or a full disk never leaves a
 * half-written file under the final name.
 */
import { open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Atomic write where `produce` calls `write` chunk by chunk (large files never sit in memory). */
export async function writeFileAtomicStreaming(
  path: string,
  produce: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const handle = await open(tmp, 'w');
  try {
    await produce(async (chunk) => {
      let written = 0;
      while (written < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written);
        written += bytesWritten;
      }
    });
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Write all chunks to `path` atomically (temp file, fsync, rename). */
export async function writeFileAtomic(
  path: string,
  chunks: Uint8Array | readonly Uint8Array[],
): Promise<void> {
  await writeFileAtomicStreaming(path, async (write) => {
    for (const chunk of chunks instanceof Uint8Array ? [chunks] : chunks) await write(chunk);
  });
}
