import assert from 'node:assert/strict';
import { COMMANDS } from '../sdk/cli/main.ts';
import { runCli } from './helpers.ts';

describe('cli', () => {
  it('prints help listing every command and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const name of Object.keys(COMMANDS)) assert.match(r.out, new RegExp(`\\b${name}\\b`));
  });

  it('exits 2 on an unknown command', async () => {
    const r = await runCli(['nope']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown command "nope"; valid commands: env/);
  });
});
