import assert from 'node:assert/strict';
import { captureLogs, log } from '../../sdk/core/logger.ts';
import { ModelError, HyperfeaturesError, ERROR_CODES } from '../../sdk/core/errors.ts';

describe('core/logger and errors', () => {
  it('captures what the SDK logs and restores the previous logger', async () => {
    const before = log();
    const { result, records } = await captureLogs(() => {
      log().warn('prompt truncated');
      return 3;
    });
    assert.equal(result, 3);
    assert.deepEqual(records, [{ level: 'warn', message: 'prompt truncated' }]);
    assert.equal(log(), before);
  });

  it('gives typed errors a name and a code', () => {
    const e = new ModelError('unet/config.json: missing');
    assert.ok(e instanceof HyperfeaturesError);
    assert.equal(e.name, 'ModelError');
    assert.equal(e.code, ERROR_CODES.model);
  });
});
