/**
 * The authors' released aggregation networks (hub repo g-luo/diffusion-hyperfeatures,
 * folder weights/), chosen by the diffusion model they were trained on.
 */
import { hubFile, type HubOptions } from '../model/hub.ts';

export const OFFICIAL_REPO = 'g-luo/diffusion-hyperfeatures';

/** The official network file for a model id, or undefined when none is known. */
export function officialNetworkFile(
  modelId: string,
  variant: 'multi-step' | 'one-step' = 'multi-step',
): string | undefined {
  const id = modelId.toLowerCase();
  if (/stable-diffusion-v1-5|sd-?v?1-?5/.test(id))
    return variant === 'one-step'
      ? 'weights/aggregation_network_one-step.pt'
      : 'weights/aggregation_network.pt';
  if (/stable-diffusion-2-1|sd-?v?2-?1/.test(id) && variant === 'multi-step')
    return 'weights/aggregation_network_sdv2-1.pt';
  return undefined;
}

/** Local path of the official network for `modelId` (cache, or download when allowed). */
export async function officialNetwork(
  modelId: string,
  variant: 'multi-step' | 'one-step',
  options: HubOptions & { allowDownload?: boolean } = {},
): Promise<string | undefined> {
  const file = officialNetworkFile(modelId, variant);
  return file ? hubFile(OFFICIAL_REPO, file, options) : undefined;
}
