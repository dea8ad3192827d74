/**
 * Multiply-add FLOPs of one UNet call (2 per MAC), walked over the same architecture the
 * builder emits: convolutions, linear layers and attention matmuls. Used by benchmarks to
 * turn times into GFLOP/s and to state GPU expectations.
 */
import type { UNetConfig } from './config.ts';

export function unetFlops(cfg: UNetConfig, height: number, width: number, contextLength = 77): number {
  const boc = cfg.blockOutChannels;
  let flops = 0;
  const conv = (cin: number, cout: number, k: number, h: number, w: number) =>
    (flops += 2 * cin * cout * k * k * h * w);
  const resnet = (cin: number, cout: number, h: number, w: number) => {
    conv(cin, cout, 3, h, w);
    conv(cout, cout, 3, h, w);
    if (cin !== cout) conv(cin, cout, 1, h, w);
  };
  const transformer = (c: number, h: number, w: number, layers: number) => {
    const n = h * w;
    flops += 2 * 2 * n * c * c; // proj_in, proj_out
    for (let l = 0; l < layers; l++) {
      flops += 2 * n * c * c * 4; // self-attn q, k, v, out
      flops += 2 * 2 * n * n * c; // self-attn scores and weighted sum
      flops += 2 * n * c * c * 2 + 2 * 2 * contextLength * cfg.crossAttentionDim * c; // cross-attn q, out; k, v
      flops += 2 * 2 * n * contextLength * c; // cross-attn scores and sum
      flops += 2 * n * c * c * 8 + 2 * n * c * 4 * c; // GEGLU in (8c) and out (4c)
    }
  };
  let h = height;
  let w = width;
  conv(cfg.inChannels, boc[0], cfg.convInKernel, h, w);
  const skips: [number, number, number][] = [[boc[0], h, w]];
  let ch = boc[0];
  boc.forEach((out, i) => {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(ch, out, h, w);
      ch = out;
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') transformer(ch, h, w, cfg.transformerLayers[i]);
      skips.push([ch, h, w]);
    }
    if (i < boc.length - 1) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      conv(ch, ch, 3, h, w);
      skips.push([ch, h, w]);
    }
  });
  resnet(ch, ch, h, w);
  transformer(ch, h, w, cfg.transformerLayers[boc.length - 1]);
  resnet(ch, ch, h, w);
  [...boc].reverse().forEach((out, i) => {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      const [sc] = skips.pop()!;
      resnet(ch + sc, out, h, w);
      ch = out;
      if (cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D')
        transformer(ch, h, w, cfg.transformerLayers[boc.length - 1 - i]);
    }
    if (i < boc.length - 1) {
      [, h, w] = skips[skips.length - 1];
      conv(ch, ch, 3, h, w);
    }
  });
  conv(ch, cfg.outChannels, cfg.convOutKernel, h, w);
  return flops;
}
