/**
 * The package as a stranger uses it: `npm pack`, install the tarball into an empty project
 * (dependencies from npm's cache; no install scripts needed), then plain `node` ESM and
 * CommonJS scripts run the fluent chain on a generated tiny model, strict `tsc` consumers
 * (node16 ESM and CommonJS, bundler) type-check against the shipped declarations, and a
 * notebook outside the repository imports the SDK with types and runs (a type error in a
 * cell is reported).
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, tempDir } from '../helpers.ts';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, HYPERFEATURES_LOG_LEVEL: 'warn', ...env },
    timeout: 10 * 60_000,
  });
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`,
  );
  return r;
}

function duBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += duBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

const json = (o: unknown) => JSON.stringify(o, null, 2) + '\n';

const fluentChain = (importLine: string) => `${importLine}
const dir = 'tiny-model';
await makeTinyCheckpoint(dir, { style: 'sd15', seed: 0 });
const hf = await Hyperfeatures.fromModel(dir, {
  extract: { imageSize: 64, loadSize: 64 },
  outputResolution: 16,
});
const net = AggregationNetwork.forModel(hf.sd, { steps: 2, saveTimesteps: [1, 0], projectionDim: 128 });
const img = process.argv[2];
const m = await hf.invert(img).aggregate(net).match(hf.invert(img), { points: [[100, 80]] });
const mutual = await hf.invert(img).aggregate(net).match(hf.invert(img), { limit: 3 });
console.log(JSON.stringify({ target: m[0].target, score: m[0].score, mutual: mutual.length }));
await hf.dispose();
`;

const typedUse = `import { Hyperfeatures, AggregationNetwork, Tensor, type Correspondence, type HyperfeaturesOptions } from 'hyperfeatures';
import { showPng, installKernel } from 'hyperfeatures/notebook';

export async function demo(model: string, image: string): Promise<Correspondence[]> {
  const options: HyperfeaturesOptions = { device: 'cpu', extract: { loadSize: 224 } };
  const hf = await Hyperfeatures.fromModel(model, options);
  const net: AggregationNetwork = AggregationNetwork.forModel(hf.sd, { oneStep: true });
  const t: Tensor = Tensor.zeros([1, 2]);
  void t;
  void showPng;
  void installKernel;
  // the declarations are real types, not any: each of these must be an error
  // @ts-expect-error a model id is a string
  await Hyperfeatures.fromModel(42);
  // @ts-expect-error no such device
  await Hyperfeatures.fromModel(model, { device: 'tpu' });
  return hf.invert(image).aggregate(net).match(hf.invert(image), { points: [[1, 2]] });
}
`;

describe('package: installed from the packed tarball, used as a stranger would', function () {
  this.timeout(15 * 60_000);
  const work = tempDir('hf-consumer-');
  const project = join(work, 'project');
  let tarball = '';
  const image = join(REPO, 'assets', 'demo', 'aeroplane_2008_007604.jpg');

  before(() => {
    const packed = run(npm, ['pack', '--json', '--pack-destination', work], REPO);
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      size: number;
      entryCount: number;
    }[];
    tarball = join(work, info[0].filename);
    assert.ok(info[0].size < 2 * 1024 * 1024, `tarball is ${info[0].size} bytes; must stay under 2 MB`);
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), json({ name: 'consumer', version: '1.0.0', private: true }));
    // no install scripts: onnxruntime-node's would download CUDA binaries (README: installing)
    run(
      npm,
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        tarball,
        'typescript@5.9.3',
        '@types/node@20.19.43',
      ],
      project,
      { ONNXRUNTIME_NODE_INSTALL: 'skip' },
    );
    process.stdout.write(
      `      tarball ${(info[0].size / 1024).toFixed(0)} KiB, ${info[0].entryCount} files; node_modules/hyperfeatures ${(duBytes(join(project, 'node_modules', 'hyperfeatures')) / 1024 / 1024).toFixed(1)} MiB\n`,
    );
  });

  it('runs the fluent chain from an ES module under plain node', () => {
    writeFileSync(
      join(project, 'chain.mjs'),
      fluentChain("import { Hyperfeatures, AggregationNetwork, makeTinyCheckpoint } from 'hyperfeatures';"),
    );
    const r = run(process.execPath, ['chain.mjs', image], project);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      target: number[];
      score: number;
      mutual: number;
    };
    // an image against itself: the point maps onto itself (within a descriptor cell) with cosine 1
    assert.ok(Math.abs(out.target[0] - 100) < 40 && Math.abs(out.target[1] - 80) < 40, r.stdout);
    assert.ok(out.score > 0.999 && out.mutual === 3, r.stdout);
  });

  it('runs the fluent chain from CommonJS under plain node', () => {
    writeFileSync(
      join(project, 'chain.cjs'),
      `(async () => {\n${fluentChain("const { Hyperfeatures, AggregationNetwork, makeTinyCheckpoint } = require('hyperfeatures');")}\n})().catch((e) => { console.error(e); process.exit(1); });\n`,
    );
    const r = run(process.execPath, ['chain.cjs', image], project);
    assert.ok((JSON.parse(r.stdout.trim().split('\n').pop()!) as { score: number }).score > 0.999, r.stdout);
  });

  for (const [name, module, resolution, type] of [
    ['node16 ESM', 'node16', 'node16', 'module'],
    ['node16 CommonJS', 'node16', 'node16', 'commonjs'],
    ['bundler', 'esnext', 'bundler', 'module'],
  ] as const) {
    it(`type-checks a strict ${name} consumer (tsc --noEmit, skipLibCheck off)`, () => {
      const dir = join(project, `ts-${name.replace(/\W+/g, '-')}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'package.json'), json({ name: 'ts-consumer', private: true, type }));
      writeFileSync(
        join(dir, 'tsconfig.json'),
        json({
          compilerOptions: {
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            target: 'es2022',
            module,
            moduleResolution: resolution,
            types: ['node'],
          },
          include: ['*.ts'],
        }),
      );
      writeFileSync(join(dir, 'use.ts'), typedUse);
      run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir);
    });
  }

  it('installs the kernel and runs a notebook outside the repo with typed imports; a type error fails its cell', () => {
    const tslab = join(REPO, 'node_modules', 'tslab'); // as a global tslab install would be
    const nbDir = join(project, 'notebooks');
    mkdirSync(nbDir);
    const notebook = (cells: string[]) =>
      json({
        nbformat: 4,
        nbformat_minor: 5,
        metadata: {
          kernelspec: {
            name: 'hyperfeatures',
            display_name: 'TypeScript (hyperfeatures)',
            language: 'typescript',
          },
        },
        cells: cells.map((source, i) => ({
          cell_type: 'code',
          id: `c${i}`,
          metadata: {},
          execution_count: null,
          outputs: [],
          source,
        })),
      });
    writeFileSync(
      join(nbDir, 'ok.ipynb'),
      notebook([
        "import { Tensor, FeatureStack } from 'hyperfeatures';\nimport { showMarkdown } from 'hyperfeatures/notebook';\nconst t: Tensor = Tensor.zeros([2, 3]);\nconsole.log('shape', t.shape.join('x'), typeof FeatureStack);",
        "showMarkdown('**hello from hyperfeatures**');",
      ]),
    );
    writeFileSync(
      join(nbDir, 'type-error.ipynb'),
      notebook([
        "import { Tensor } from 'hyperfeatures';\nconst n: number = Tensor.zeros([2, 3]);\nconsole.log(n);",
      ]),
    );
    const env = { HYPERFEATURES_TSLAB: tslab };
    const bin = join(project, 'node_modules', '.bin', 'hyperfeatures');
    const install = run(bin, ['kernel', 'install', '--prefix', join(work, 'jupyter')], project, env);
    assert.match(install.stdout, /installed kernel "hyperfeatures"/);
    const spec = JSON.parse(
      spawnSync(
        'cat',
        [join(work, 'jupyter', 'share', 'jupyter', 'kernels', 'hyperfeatures', 'kernel.json')],
        { encoding: 'utf8' },
      ).stdout,
    ) as { argv: string[] };
    assert.ok(spec.argv[1].startsWith(join(project, 'node_modules', 'hyperfeatures')), spec.argv.join(' '));
    const ok = run(bin, ['kernel', 'run', '--write', 'notebooks/ok.ipynb'], project, env);
    assert.match(ok.stderr, /ok\.ipynb cell 1 ok/);
    const saved = JSON.parse(spawnSync('cat', [join(nbDir, 'ok.ipynb')], { encoding: 'utf8' }).stdout) as {
      cells: { outputs: { text?: string[]; data?: Record<string, string> }[] }[];
    };
    assert.match(saved.cells[0].outputs.map((o) => (o.text ?? []).join('')).join(''), /shape 2x3 function/);
    assert.equal(saved.cells[1].outputs[0].data?.['text/markdown'], '**hello from hyperfeatures**');
    const bad = spawnSync(bin, ['kernel', 'run', 'notebooks/type-error.ipynb'], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /Type 'Tensor' is not assignable to type 'number'/);
  });
});
