/**
 * A local HTTP server speaking the hub's URL scheme for one folder:
 * GET /api/models/<repo>/revision/<rev>?blobs=true and GET /<repo>/resolve/<rev>/<path>
 * (with Range support), counting requests so tests can check cache hits and resumes.
 */
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface FakeHub {
  endpoint: string;
  requests: { url: string; range?: string; auth?: string }[];
  /** Files whose served bytes are corrupted (checksum tests). */
  corrupt: Set<string>;
  close(): Promise<void>;
}

function walk(dir: string, root = dir): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p, root) : [relative(root, p)];
  });
}

export async function startFakeHub(
  repoId: string,
  folder: string,
  commit = 'a'.repeat(40),
): Promise<FakeHub> {
  const files = walk(folder);
  const siblings = files.map((f) => {
    const bytes = readFileSync(join(folder, f));
    const lfs = f.endsWith('.safetensors');
    return lfs
      ? {
          rfilename: f,
          size: bytes.length,
          lfs: { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
        }
      : {
          rfilename: f,
          size: bytes.length,
          blobId: createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'),
        };
  });
  siblings.push({ rfilename: 'unet/diffusion_pytorch_model.bin', size: 1 } as (typeof siblings)[number]);
  const hub: FakeHub = { endpoint: '', requests: [], corrupt: new Set(), close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hub.requests.push({ url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
    if (url.pathname.startsWith(`/api/models/${repoId}/revision/`)) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: repoId, sha: commit, siblings }));
      return;
    }
    const prefix = `/${repoId}/resolve/${commit}/`;
    if (!url.pathname.startsWith(prefix)) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    const file = url.pathname.slice(prefix.length);
    if (!files.includes(file)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    let bytes = readFileSync(join(folder, file));
    if (hub.corrupt.has(file)) bytes = Buffer.from(bytes.map((b) => b ^ 1));
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    if (m) {
      res.statusCode = 206;
      bytes = bytes.subarray(Number(m[1]));
    }
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hub.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise<void>((r) => server.close(() => r()));
  return hub;
}
