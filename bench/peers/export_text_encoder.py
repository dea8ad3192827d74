# Peer for the text-encoder benchmark: PyTorch's own ONNX export of the original CLIP text transformer
# (openai/CLIP's clip/model.py, the architecture of SD-1.5's CLIPTextModel: width 768, 12 layers,
# 12 heads, causal mask, QuickGELU, final LayerNorm), random weights, last hidden state out.
# Needs Debian python3-torch + python3-onnx and the openai/CLIP mirror (the `fetch` tool:
# github:openai/CLIP); its model.py is read from the mirror, not copied.
# usage: /usr/bin/python3 bench/peers/export_text_encoder.py [out=/tmp/ortspike/text_encoder/model.onnx]
import os, subprocess, sys, time, types

MIRROR = os.environ.get("REFCHECK_MIRROR", "/work/.mirror")
out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ortspike/text_encoder/model.onnx"
os.makedirs(os.path.dirname(out), exist_ok=True)
src = subprocess.check_output(["git", "-C", os.path.join(MIRROR, "openai+CLIP", "repo"), "show", "HEAD:clip/model.py"])
clip = types.ModuleType("clip_model")
exec(compile(src, "clip/model.py", "exec"), clip.__dict__)
import torch

torch.manual_seed(0)
width, layers, heads, context, vocab = 768, 12, 12, 77, 49408


class TextEncoder(torch.nn.Module):  # CLIP.encode_text up to ln_final: the hidden states SD conditions on
    def __init__(s):
        super().__init__()
        mask = torch.empty(context, context).fill_(float("-inf")).triu_(1)
        s.token_embedding = torch.nn.Embedding(vocab, width)
        s.positional_embedding = torch.nn.Parameter(torch.randn(context, width) * 0.01)
        s.transformer = clip.Transformer(width, layers, heads, attn_mask=mask)
        s.ln_final = clip.LayerNorm(width)

    def forward(s, ids):
        x = s.token_embedding(ids) + s.positional_embedding
        x = s.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return s.ln_final(x)


ids = torch.randint(0, vocab, (1, context))
t0 = time.time()
torch.onnx.export(TextEncoder().eval(), (ids,), out, input_names=["input_ids"], output_names=["last_hidden_state"],
                  opset_version=17, do_constant_folding=True)
print("text encoder export s", round(time.time() - t0, 1))
