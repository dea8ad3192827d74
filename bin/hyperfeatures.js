#!/usr/bin/env node
// The `hyperfeatures` command. Installed: runs the compiled CLI in dist/. In a checkout of the
// repository (sources beside it), runs the TypeScript sources through tsx (a devDependency),
// so development needs no rebuild.
import { existsSync } from 'node:fs';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(
    `hyperfeatures needs Node.js 20.19 or newer (zlib.crc32, require of ES modules); this is Node.js ${process.versions.node}\n`,
  );
  process.exit(2);
}

const sources = new URL('../sdk/cli/main.ts', import.meta.url);
const compiled = new URL('../dist/esm/cli/main.js', import.meta.url);
let main;
if (existsSync(sources) && process.env.HYPERFEATURES_USE_DIST !== '1') {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    tsx = undefined;
  }
  if (tsx) {
    tsx.register();
    ({ main } = await import(sources.href));
  }
}
if (!main) {
  if (!existsSync(compiled)) {
    process.stderr.write(
      'hyperfeatures: the compiled CLI (dist/esm/cli/main.js) is missing: run `npm run build` in the package folder (or reinstall it)\n',
    );
    process.exit(2);
  }
  ({ main } = await import(compiled.href));
}
process.exitCode = await main(process.argv.slice(2));
