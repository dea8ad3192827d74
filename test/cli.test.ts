import assert from 'node:assert/strict';
import { main, COMMANDS } from '../sdk/cli/main.ts';

describe('cli', () => {
  it('prints help listing every command and exits 0', async () => {
    let text = '';
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => ((text += s), true)) as typeof process.stdout.write;
    try {
      assert.equal(await main(['--help']), 0);
    } finally {
      process.stdout.write = write;
    }
    for (const name of Object.keys(COMMANDS)) assert.match(text, new RegExp(`\\b${name}\\b`));
  });

  it('exits 2 on an unknown command', async () => {
    const write = process.stderr.write.bind(process.stderr);
    let err = '';
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    try {
      assert.equal(await main(['nope']), 2);
    } finally {
      process.stderr.write = write;
    }
    assert.match(err, /unknown command "nope"; valid commands: env/);
  });
});
