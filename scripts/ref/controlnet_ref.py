"""Reference outputs of ControlNetModel for test/nn/models/controlnet-parity.test.ts.

A plain-PyTorch ControlNet under diffusers' parameter names and semantics, with small configs and
random weights, the zero convolutions included (so that the residuals are not 0):

  test/fixtures/controlnet/          diffusers' ControlNetModel: a DownBlock2D, an AttnDownBlock2D,
                                     the single-resnet UNetMidBlock2D, a class embedding, a
                                     condition embedding with one stride-2 block
  test/fixtures/controlnet-unet2d/   a UNet2DModel base (unet_class_name): the same down blocks,
                                     UNet2DModel's mid block (resnet, attention, resnet), 1 channel

each with config.json, diffusion_pytorch_model.safetensors (F32) and io.safetensors: sample,
controlnet_cond (F32), timesteps, class_labels (I32), down_0 ... down_3 and mid (F64, computed in
float64 from the float32 weights, conditioning_scale 0.7).

Run with Debian's python3 and python3-torch: /usr/bin/python3 scripts/ref/controlnet_ref.py
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

from clip_text_ref import write_safetensors

torch.set_num_threads(1)
torch.manual_seed(20261203)

CONFIG = {
    "_class_name": "ControlNetModel",
    "_diffusers_version": "0.40.0.dev0",
    "in_channels": 4,
    "conditioning_channels": 3,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D",
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "norm_eps": 1e-5,
    "attention_head_dim": 8,
    "cross_attention_dim": 6,
    "num_class_embeds": 3,
    "conditioning_embedding_out_channels": [4, 8],
}
# A UNet2DModel base (Sumi's extension): 1 channel, no class embedding, a condition embedding
# without downsampling, and UNet2DModel's mid block (resnet, attention, resnet).
CONFIG_UNET2D = {
    "_class_name": "ControlNetModel",
    "_diffusers_version": "0.40.0.dev0",
    "in_channels": 1,
    "conditioning_channels": 1,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D",
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "norm_eps": 1e-5,
    "attention_head_dim": 8,
    "num_class_embeds": None,
    "conditioning_embedding_out_channels": [4],
    "unet_class_name": "UNet2DModel",
}
SCALE = 0.7


def unet2d_mid(c):
    """UNet2DModel's mid block: resnet, attention, resnet (else diffusers' ControlNet's: a resnet)."""
    return c.get("unet_class_name") == "UNet2DModel"


def random_weights(c):
    """Every parameter, rounded to float32, with scales that keep activations O(1)."""
    w = {}
    ch = c["block_out_channels"]
    temb = 4 * ch[0]
    groups_of = {}

    def conv(name, n_in, n_out, k):
        w[f"{name}.weight"] = torch.randn(n_out, n_in, k, k) / (n_in * k * k) ** 0.5
        w[f"{name}.bias"] = 0.1 * torch.randn(n_out)

    def linear(name, n_in, n_out):
        w[f"{name}.weight"] = torch.randn(n_out, n_in) / n_in**0.5
        w[f"{name}.bias"] = 0.1 * torch.randn(n_out)

    def norm(name, n):
        w[f"{name}.weight"] = 1 + 0.1 * torch.randn(n)
        w[f"{name}.bias"] = 0.1 * torch.randn(n)

    def resnet(name, n_in, n_out):
        norm(f"{name}.norm1", n_in)
        conv(f"{name}.conv1", n_in, n_out, 3)
        linear(f"{name}.time_emb_proj", temb, n_out)
        norm(f"{name}.norm2", n_out)
        conv(f"{name}.conv2", n_out, n_out, 3)
        if n_in != n_out:
            conv(f"{name}.conv_shortcut", n_in, n_out, 1)

    conv("conv_in", c["in_channels"], ch[0], 3)
    linear("time_embedding.linear_1", ch[0], temb)
    linear("time_embedding.linear_2", temb, temb)
    if c["num_class_embeds"] is not None:
        w["class_embedding.weight"] = torch.randn(c["num_class_embeds"], temb)
    e = c["conditioning_embedding_out_channels"]
    conv("controlnet_cond_embedding.conv_in", c["conditioning_channels"], e[0], 3)
    for i in range(len(e) - 1):
        conv(f"controlnet_cond_embedding.blocks.{2 * i}", e[i], e[i], 3)
        conv(f"controlnet_cond_embedding.blocks.{2 * i + 1}", e[i], e[i + 1], 3)
    conv("controlnet_cond_embedding.conv_out", e[-1], ch[0], 3)
    zero = 0
    conv(f"controlnet_down_blocks.{zero}", ch[0], ch[0], 1)
    n_in = ch[0]
    for i, kind in enumerate(c["down_block_types"]):
        n_out = ch[i]
        for j in range(c["layers_per_block"]):
            resnet(f"down_blocks.{i}.resnets.{j}", n_in if j == 0 else n_out, n_out)
            if kind == "AttnDownBlock2D":
                a = f"down_blocks.{i}.attentions.{j}"
                norm(f"{a}.group_norm", n_out)
                for p in ("to_q", "to_k", "to_v", "to_out.0"):
                    linear(f"{a}.{p}", n_out, n_out)
            zero += 1
            conv(f"controlnet_down_blocks.{zero}", n_out, n_out, 1)
        if i < len(ch) - 1:
            conv(f"down_blocks.{i}.downsamplers.0.conv", n_out, n_out, 3)
            zero += 1
            conv(f"controlnet_down_blocks.{zero}", n_out, n_out, 1)
        n_in = n_out
    resnet("mid_block.resnets.0", ch[-1], ch[-1])
    if unet2d_mid(c):
        norm("mid_block.attentions.0.group_norm", ch[-1])
        for p in ("to_q", "to_k", "to_v", "to_out.0"):
            linear(f"mid_block.attentions.0.{p}", ch[-1], ch[-1])
        resnet("mid_block.resnets.1", ch[-1], ch[-1])
    conv("controlnet_mid_block", ch[-1], ch[-1], 1)
    return {k: v.float() for k, v in w.items()}


def conv2d(x, w, name, stride=1):
    k = w[f"{name}.weight"].shape[-1]
    return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], stride=stride, padding=k // 2)


def linear(x, w, name):
    return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def group_norm(x, w, name, c):
    return F.group_norm(x, c["norm_num_groups"], w[f"{name}.weight"], w[f"{name}.bias"], c["norm_eps"])


def resnet(x, temb, w, name, c):
    """ResnetBlock2D (time_embedding_norm 'default', output_scale_factor 1)."""
    h = conv2d(F.silu(group_norm(x, w, f"{name}.norm1", c)), w, f"{name}.conv1")
    h = h + linear(F.silu(temb), w, f"{name}.time_emb_proj")[:, :, None, None]
    h = conv2d(F.silu(group_norm(h, w, f"{name}.norm2", c)), w, f"{name}.conv2")
    short = conv2d(x, w, f"{name}.conv_shortcut") if f"{name}.conv_shortcut.weight" in w else x
    return short + h


def attention(x, w, name, c, head_dim):
    """diffusers' Attention of AttnDownBlock2D: GroupNorm, multi-head self-attention, residual."""
    b, ch, hh, ww = x.shape
    heads = ch // head_dim
    h = group_norm(x, w, f"{name}.group_norm", c).reshape(b, ch, hh * ww).transpose(1, 2)

    def split(t):
        return t.reshape(b, hh * ww, heads, head_dim).transpose(1, 2)

    q = split(linear(h, w, f"{name}.to_q"))
    k = split(linear(h, w, f"{name}.to_k"))
    v = split(linear(h, w, f"{name}.to_v"))
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
    o = (p @ v).transpose(1, 2).reshape(b, hh * ww, ch)
    o = linear(o, w, f"{name}.to_out.0").transpose(1, 2).reshape(b, ch, hh, ww)
    return o + x


def timestep_embedding(t, dim):
    """Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0) in float32, as diffusers
    computes it whatever the model's dtype, each operation correctly rounded (float64, then
    rounded to float32), then cast to float64."""

    def f32(x):
        return x.float().double()

    half = dim // 2
    exponent = f32(f32(-math.log(10000) * torch.arange(half, dtype=torch.float64)) / half)
    args = f32(t.double()[:, None] * f32(torch.exp(exponent))[None])
    return torch.cat([f32(torch.cos(args)), f32(torch.sin(args))], dim=-1)


def controlnet_forward(c, w, sample, t, cond, labels, scale):
    ch = c["block_out_channels"]
    emb = timestep_embedding(t, ch[0])
    emb = linear(F.silu(linear(emb, w, "time_embedding.linear_1")), w, "time_embedding.linear_2")
    if labels is not None:
        emb = emb + w["class_embedding.weight"][labels.long()]
    e = conv2d(cond, w, "controlnet_cond_embedding.conv_in")
    e = F.silu(e)
    for i in range(len(c["conditioning_embedding_out_channels"]) - 1):
        e = F.silu(conv2d(e, w, f"controlnet_cond_embedding.blocks.{2 * i}"))
        e = F.silu(conv2d(e, w, f"controlnet_cond_embedding.blocks.{2 * i + 1}", stride=2))
    e = conv2d(e, w, "controlnet_cond_embedding.conv_out")
    h = conv2d(sample, w, "conv_in") + e
    skips = [h]
    for i, kind in enumerate(c["down_block_types"]):
        for j in range(c["layers_per_block"]):
            h = resnet(h, emb, w, f"down_blocks.{i}.resnets.{j}", c)
            if kind == "AttnDownBlock2D":
                h = attention(h, w, f"down_blocks.{i}.attentions.{j}", c, c["attention_head_dim"])
            skips.append(h)
        if i < len(ch) - 1:
            h = conv2d(h, w, f"down_blocks.{i}.downsamplers.0.conv", stride=2)
            skips.append(h)
    h = resnet(h, emb, w, "mid_block.resnets.0", c)
    if unet2d_mid(c):
        h = attention(h, w, "mid_block.attentions.0", c, c["attention_head_dim"])
        h = resnet(h, emb, w, "mid_block.resnets.1", c)
    down = [scale * conv2d(s, w, f"controlnet_down_blocks.{i}") for i, s in enumerate(skips)]
    return down, scale * conv2d(h, w, "controlnet_mid_block")


def write_fixture(out, c, labels):
    os.makedirs(out, exist_ok=True)
    w32 = random_weights(c)
    sample = torch.randn(2, c["in_channels"], 8, 8)
    f = 2 ** (len(c["conditioning_embedding_out_channels"]) - 1)
    cond = torch.rand(2, c["conditioning_channels"], 8 * f, 8 * f)
    timesteps = torch.tensor([10, 900], dtype=torch.int32)
    w64 = {k: v.double() for k, v in w32.items()}
    with torch.no_grad():
        down, mid = controlnet_forward(c, w64, sample.double(), timesteps, cond.double(), labels, SCALE)
    with open(os.path.join(out, "config.json"), "w") as fh:
        fh.write(json.dumps(c, indent=2) + "\n")
    write_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"), w32)
    io = {
        "sample": sample,
        "controlnet_cond": cond,
        "timesteps": timesteps,
        "conditioning_scale": torch.tensor([SCALE], dtype=torch.float64),
    }
    if labels is not None:
        io["class_labels"] = labels
    for i, d in enumerate(down):
        io[f"down_{i}"] = d
    io["mid"] = mid
    write_safetensors(os.path.join(out, "io.safetensors"), io)
    print(f"wrote {out}: {len(down)} down residuals, mid {list(mid.shape)}, |mid| max {mid.abs().max():.3f}")


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    out = os.path.normpath(os.path.join(root, "..", "..", "test", "fixtures"))
    if len(sys.argv) > 1:
        out = sys.argv[1]
    write_fixture(os.path.join(out, "controlnet"), CONFIG, torch.tensor([0, 2], dtype=torch.int32))
    write_fixture(os.path.join(out, "controlnet-unet2d"), CONFIG_UNET2D, None)


if __name__ == "__main__":
    main()
