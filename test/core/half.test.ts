import assert from 'node:assert/strict';
import { halfToFloat, floatToHalf, bf16ToFloat } from '../../sdk/core/half.ts';

describe('core/half', () => {
  it('decodes IEEE half values', () => {
    assert.equal(halfToFloat(0x3c00), 1);
    assert.equal(halfToFloat(0xc000), -2);
    assert.equal(halfToFloat(0x7bff), 65504);
    assert.equal(halfToFloat(0x0001), 2 ** -24);
    assert.equal(halfToFloat(0x7c00), Infinity);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  });

  it('encodes with round-to-nearest-even and round-trips every finite half', () => {
    for (let h = 0; h < 0x7c00; h++) assert.equal(floatToHalf(halfToFloat(h)), h);
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie -> even
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
    assert.equal(floatToHalf(1e6), 0x7c00);
  });

  it('decodes bfloat16 as the top half of a float32', () => {
    assert.equal(bf16ToFloat(0x3f80), 1);
    assert.equal(bf16ToFloat(0xc040), -3);
  });
});
