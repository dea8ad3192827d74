# Peer for the VAE benchmark: PyTorch's own ONNX export of diffusers 0.14's AutoencoderKL with the
# SD-1.5/SD-2 shape (random weights), encoder and decoder as two graphs, for bench/vae-export-case.ts.
# Uses ../shared/perf-anchor's importer (diffusers v0.14 from the mirror; see its README for setup).
# usage: /usr/bin/python3 bench/peers/export_vae.py [outDir=/tmp/ortspike/vae] [image size=512]
import os, sys, time
ANCHOR = os.environ.get("PERF_ANCHOR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "perf-anchor"))
sys.path.insert(0, ANCHOR)
import refimport
refimport.setup_paths()
import torch
from diffusers import AutoencoderKL

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ortspike/vae"
size = int(sys.argv[2]) if len(sys.argv) > 2 else 512
os.makedirs(os.path.join(out, "encoder"), exist_ok=True)
os.makedirs(os.path.join(out, "decoder"), exist_ok=True)
torch.manual_seed(0)
vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=size,
                    block_out_channels=(128, 256, 512, 512),
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()


class Encode(torch.nn.Module):  # image -> posterior moments (mean and logvar), as vae.encode computes them
    def __init__(s, v): super().__init__(); s.v = v
    def forward(s, x): return s.v.quant_conv(s.v.encoder(x))


class Decode(torch.nn.Module):
    def __init__(s, v): super().__init__(); s.v = v
    def forward(s, z): return s.v.decode(z).sample


x, z = torch.randn(1, 3, size, size), torch.randn(1, 4, size // 8, size // 8)
for name, mod, arg, inp in (("encoder", Encode(vae), x, "image"), ("decoder", Decode(vae), z, "latent")):
    t0 = time.time()
    torch.onnx.export(mod, (arg,), os.path.join(out, name, "model.onnx"), input_names=[inp], output_names=["out"],
                      opset_version=17, do_constant_folding=True)
    print(name, "export s", round(time.time() - t0, 1), flush=True)
