import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { assertNodeVersion } from '../../sdk/core/node-version.ts';
import { ConfigError } from '../../sdk/core/errors.ts';
import { REPO, tempDir } from '../helpers.ts';

describe('package: startup checks', () => {
  it('refuses a Node.js older than 20.19 with the version needed', () => {
    for (const v of ['18.20.4', '20.14.0', '20.18.3'])
      assert.throws(
        () => assertNodeVersion(v),
        (e: Error) =>
          e instanceof ConfigError && /needs Node.js 20.19 or newer.*this is Node.js/.test(e.message),
        v,
      );
    for (const v of ['20.19.0', '22.1.0', '24.0.0']) assertNodeVersion(v);
  });

  it('the command says how to build when its compiled code is missing', () => {
    const pkg = tempDir('hf-nobuild-');
    mkdirSync(join(pkg, 'bin'));
    copyFileSync(join(REPO, 'bin', 'hyperfeatures.js'), join(pkg, 'bin', 'hyperfeatures.js'));
    copyFileSync(join(REPO, 'package.json'), join(pkg, 'package.json'));
    const r = spawnSync(process.execPath, [join(pkg, 'bin', 'hyperfeatures.js'), 'env'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /compiled CLI \(dist\/esm\/cli\/main\.js\) is missing: run `npm run build`/);
  });
});
