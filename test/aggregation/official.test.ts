import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  modelFamily,
  officialNetwork,
  officialNetworkFile,
  readUNetConfig,
} from '../../sdk/aggregation/official.ts';
import { ConfigError } from '../../sdk/core/errors.ts';
import { parseUNetConfig } from '../../sdk/model/unet/config.ts';
import { unetConfig } from '../../sdk/model/tiny/configs.ts';
import { REFERENCE, rejectsWith } from '../helpers.ts';

describe('official networks by model family', () => {
  const family = (style: 'sd15' | 'sd21' | 'lotus-g' | 'lotus-d', size: 'tiny' | 'full') =>
    modelFamily(parseUNetConfig('unet/config.json', unetConfig(style, size)));

  it('reads the family from the UNet config, not the name', async () => {
    assert.equal(family('sd15', 'full'), 'sd15');
    assert.equal(family('sd21', 'full'), 'sd21');
    for (const s of ['lotus-g', 'lotus-d'] as const) assert.equal(family(s, 'full'), undefined, s);
    for (const s of ['sd15', 'sd21'] as const) assert.equal(family(s, 'tiny'), undefined, `tiny ${s}`);
    // the reference checkpoint is called tiny-sd15 but is not SD-1.5 shaped
    const config = await readUNetConfig(join(REFERENCE, 'tiny-sd15'));
    assert.equal(modelFamily(config), undefined);
    const e = await rejectsWith(officialNetwork({ modelId: 'tiny-sd15', config }, 'multi-step'), ConfigError);
    assert.match(e.message, /neither SD-1.5 nor SD-2.1 shaped/);
  });

  it('pairs each family with its own release, and has no one-step network for SD-2.1', async () => {
    assert.equal(officialNetworkFile('sd15', 'multi-step'), 'weights/aggregation_network.pt');
    assert.equal(officialNetworkFile('sd15', 'one-step'), 'weights/aggregation_network_one-step.pt');
    assert.equal(officialNetworkFile('sd21', 'multi-step'), 'weights/aggregation_network_sdv2-1.pt');
    assert.equal(officialNetworkFile('sd21', 'one-step'), undefined);
    const config = parseUNetConfig('unet/config.json', unetConfig('sd21', 'full'));
    const e = await rejectsWith(officialNetwork({ modelId: 'sd21', config }, 'one-step'), ConfigError);
    assert.match(e.message, /no official one-step aggregation network was released for SD-2.1/);
  });
});
