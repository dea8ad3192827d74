/**
 * `npm run bench`: UNet timing on the tiny model and on an SD-1.5-sized random model at
 * 64x64 latents (CPU), against the machine's measured matmul peak. Writes
 * bench/results/<timestamp>.json and bench/results/latest.json. `--quick` skips the
 * SD-1.5-sized model (its 3.4 GB checkpoint is generated once and reused).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../sdk/core/fs.ts';
import { hyperfeaturesCacheDir } from '../sdk/core/paths.ts';
import { makeTinyCheckpoint } from '../sdk/model/tiny/index.ts';
import { machineInfo, matmulPeak } from './machine.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

function dirBytes(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((a, e) => a + statSync(join(e.parentPath, e.name)).size, 0);
}

async function ensureModel(name: string, size: 'tiny' | 'full'): Promise<string> {
  const dir = join(hyperfeaturesCacheDir(), 'bench-models', name);
  if (!existsSync(join(dir, 'model_index.json'))) {
    say(`generating ${name} (${size} widths, random weights) in ${dir}`);
    const t0 = performance.now();
    await makeTinyCheckpoint(dir, { style: 'sd15', size, seed: 0 });
    say(`  took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return dir;
}

function unetCase(dir: string, latent: number, calls: number) {
  const cacheDir = mkdtempSync(join(tmpdir(), 'hf-bench-graphs-')); // fresh: measures build + load
  const tsx = join(HERE, '..', 'node_modules', '.bin', 'tsx');
  const out = execFileSync(tsx, [join(HERE, 'unet-case.ts'), dir, String(latent), String(calls), cacheDir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

const machine = machineInfo();
say(`machine: ${machine.cpu} x${machine.cores}, ${machine.memoryGiB} GiB`);
const peak = await matmulPeak();
say(`fp32 matmul peak: ${peak.toFixed(1)} GFLOP/s`);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine,
  matmulPeakGflops: peak,
  unet: {},
};

const cases: [string, 'tiny' | 'full', number][] = [['tiny-sd15', 'tiny', 5]];
if (!quick) cases.push(['sd15-sized', 'full', 3]);
for (const [name, size, calls] of cases) {
  const dir = await ensureModel(name, size);
  say(`${name}: build + load + ${calls} calls at 64x64 with taps`);
  const r = unetCase(dir, 64, calls);
  const weightBytes = dirBytes(join(dir, 'unet'));
  const flopBoundMs = (r.gflopPerCall / peak) * 1000;
  const summary = {
    ...r,
    weightMiB: weightBytes / 2 ** 20,
    achievedGflops: r.gflopPerCall / (r.msPerCall / 1000),
    flopBoundMs,
    ratioToFlopBound: r.msPerCall / flopBoundMs,
    loadRssOverWeights: r.loadPeakRssMiB / (weightBytes / 2 ** 20),
  };
  (results.unet as Record<string, unknown>)[name] = summary;
  say(`  ${JSON.stringify(summary)}`);
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const json = Buffer.from(JSON.stringify(results, null, 2) + '\n');
await writeFileAtomic(join(HERE, 'results', `${stamp}.json`), json);
await writeFileAtomic(join(HERE, 'results', 'latest.json'), json);
say(`wrote bench/results/${stamp}.json`);
