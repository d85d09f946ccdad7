"""diffusers' UNet2DModel in plain PyTorch, for the side-by-side benchmarks (no diffusers needed).

Built from a diffusers config.json (the presets/ folders) with diffusers' parameter names, so
`load_state(model, read_safetensors(path))` takes Sumi's (and diffusers') weights. Only what the
presets use: positional time embedding, DownBlock2D / AttnDownBlock2D / UpBlock2D /
AttnUpBlock2D, UNetMidBlock2D, "default" time-embedding norm, conv up/downsampling, no class
embedding. Also: a safetensors reader (8-byte little-endian header length, JSON header, raw data)
and DPM-Solver++(2M) (Lu et al. 2022, algorithm 2) for the sampling benchmarks.
"""
import json
import math
import struct

import torch
import torch.nn.functional as F
from torch import nn

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """{name: tensor} of a safetensors file, floats as float32."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end ({len(raw)} bytes)")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = bytearray(raw[8 + n :])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        count = math.prod(entry["shape"])
        item = torch.empty((), dtype=dtype).element_size()
        if end - begin != count * item or end > len(data):
            raise ValueError(
                f"{path}: tensor {name}: shape {entry['shape']} {entry['dtype']} needs "
                f"{count * item} bytes, data_offsets give [{begin}, {end}]"
            )
        if count == 0:
            t = torch.empty(entry["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(data, dtype=dtype, count=count, offset=begin)
            t = t.reshape(entry["shape"]).clone()
        out[name] = t.float() if t.is_floating_point() else t
    return out


def load_state(model, tensors, where="weights"):
    """Copies `tensors` into the model's parameters; a missing, extra or mis-shaped one fails."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{where}: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in own.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            found = list(tensors[k].shape)
            raise ValueError(f"{where}: {k}: expected {list(v.shape)}, found {found}")
    model.load_state_dict(tensors)


def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period=10000):
    """Sinusoids [sin(t f_i), cos(t f_i)], f_i = exp(−ln(max_period) i / (dim/2 − shift))."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / (half - shift))
    emb = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 == 1 else emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """(shortcut(x) + conv2(drop(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))))) / s"""

    def __init__(self, cin, cout, temb, groups, eps, dropout, scale=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        s = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (s + h) / self.scale


class Attention(nn.Module):
    """Spatial self-attention of the U-Net blocks: GroupNorm, heads of head_dim, residual."""

    def __init__(self, channels, head_dim, groups, eps, scale=1.0):
        super().__init__()
        self.heads = channels // head_dim
        self.head_dim = head_dim
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps) if groups is not None else None
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])
        self.scale = scale

    def forward(self, x):
        b, c, h, w = x.shape
        y = x if self.group_norm is None else self.group_norm(x)
        y = y.reshape(b, c, h * w).transpose(1, 2)
        split = lambda z: z.reshape(b, h * w, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.to_q(y)), split(self.to_k(y)), split(self.to_v(y))
        sdpa = getattr(F, "scaled_dot_product_attention", None)
        if sdpa is not None:
            o = sdpa(q, k, v)
        else:  # torch < 2.0: what diffusers' AttnProcessor does there
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
            o = p @ v
        o = o.transpose(1, 2).reshape(b, h * w, c)
        for m in self.to_out:
            o = m(o)
        return (o.transpose(1, 2).reshape(b, c, h, w) + x) / self.scale


class Downsample2D(nn.Module):
    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, attn, cin, cout, layers, down, r, head_dim, padding):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, *r) for i in range(layers)]
        )
        if attn:
            self.attentions = nn.ModuleList(
                [Attention(cout, head_dim, r[1], r[2]) for _ in range(layers)]
            )
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(cout, padding)]) if down else None

    def forward(self, h, temb):
        skips = []
        for i, res in enumerate(self.resnets):
            h = res(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class UpBlock(nn.Module):
    def __init__(self, attn, cin, cout, prev, layers, up, r, head_dim):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                # Input: the hidden state (prev, then cout) joined with one skip.
                ResnetBlock2D(
                    (prev if i == 0 else cout) + (cin if i == layers - 1 else cout), cout, *r
                )
                for i in range(layers)
            ]
        )
        if attn:
            self.attentions = nn.ModuleList(
                [Attention(cout, head_dim, r[1], r[2]) for _ in range(layers)]
            )
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if up else None

    def forward(self, h, skips, temb):
        for i, res in enumerate(self.resnets):
            h = res(torch.cat([h, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class MidBlock(nn.Module):
    def __init__(self, c, r, head_dim, attn_groups, add_attention):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, *r), ResnetBlock2D(c, c, *r)])
        attn = Attention(c, head_dim, attn_groups, r[2], r[4])
        self.attentions = nn.ModuleList([attn]) if add_attention else None

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        if self.attentions is not None:
            h = self.attentions[0](h)
        return self.resnets[1](h, temb)


_SUPPORTED = {
    "time_embedding_type": ["positional"],
    "resnet_time_scale_shift": ["default"],
    "downsample_type": ["conv"],
    "upsample_type": ["conv"],
    "class_embed_type": [None],
    "num_class_embeds": [None],
    "center_input_sample": [False],
    "act_fn": ["silu"],
    "mid_block_type": ["UNetMidBlock2D"],
}


class UNet2DModel(nn.Module):
    """forward(sample [B, C, H, W], timesteps [B] or scalar) -> model output [B, C_out, H, W]."""

    def __init__(self, config):
        super().__init__()
        for key, allowed in _SUPPORTED.items():
            if config.get(key, allowed[0]) not in allowed:
                raise ValueError(f"config {key}={config[key]!r}: this copy supports {allowed}")
        c = config
        ch = c["block_out_channels"]
        head = c.get("attention_head_dim")
        temb = c.get("time_embedding_dim") or 4 * ch[0]
        groups, eps = c["norm_num_groups"], c["norm_eps"]
        r = (temb, groups, eps, c.get("dropout", 0.0))
        self.flip, self.shift, self.ch0 = c["flip_sin_to_cos"], c["freq_shift"], ch[0]
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        down, out = [], ch[0]
        for i, kind in enumerate(c["down_block_types"]):
            cin, out = out, ch[i]
            down.append(
                DownBlock(
                    kind == "AttnDownBlock2D",
                    cin,
                    out,
                    c["layers_per_block"],
                    i < len(ch) - 1,
                    r + (1.0,),
                    head or out,
                    c["downsample_padding"],
                )
            )
        self.down_blocks = nn.ModuleList(down)
        attn_groups = c.get("attn_norm_num_groups") or groups
        mid = r + (float(c.get("mid_block_scale_factor", 1)),)
        add_attention = c.get("add_attention", True)
        self.mid_block = MidBlock(ch[-1], mid, head or ch[-1], attn_groups, add_attention)
        rev = list(reversed(ch))
        up, out = [], rev[0]
        for i, kind in enumerate(c["up_block_types"]):
            prev, out = out, rev[i]
            cin = rev[min(i + 1, len(ch) - 1)]
            up.append(
                UpBlock(
                    kind == "AttnUpBlock2D",
                    cin,
                    out,
                    prev,
                    c["layers_per_block"] + 1,
                    i < len(ch) - 1,
                    r + (1.0,),
                    head or out,
                )
            )
        self.up_blocks = nn.ModuleList(up)
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        sinusoids = timestep_embedding(t, self.ch0, self.flip, self.shift)
        emb = self.time_embedding(sinusoids.to(x.dtype))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            h, s = blk(h, emb)
            skips += s
        h = self.mid_block(h, emb)
        for blk in self.up_blocks:
            n = len(blk.resnets)
            h = blk(h, skips[-n:], emb)
            del skips[-n:]
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def load_config(path):
    with open(path) as fh:
        return json.load(fh)


def rel_l2(a, b):
    return float(torch.linalg.vector_norm((a - b).double()) / torch.linalg.vector_norm(b.double()))


def check_parity(model, path, tol):
    """Sumi's output and gradients on a fixed input against this model's. The file (written by
    the TS side) holds sample, timesteps, target, output = model(sample, timesteps) and
    grad.<name> of mean((output − target)²) for every parameter. Raises unless both relative L2
    errors are at most `tol`."""
    dev = next(model.parameters()).device
    ref = {k: v.to(dev) for k, v in read_safetensors(path).items()}
    names = [k for k, _ in model.named_parameters()]
    missing = [k for k in names if "grad." + k not in ref]
    if missing:
        raise ValueError(f"{path}: no gradient for {missing[:3]}")
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    out = model(ref["sample"], ref["timesteps"])
    F.mse_loss(out, ref["target"]).backward()
    ours = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    theirs = torch.cat([ref["grad." + k].reshape(-1) for k in names])
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    result = {
        "outRelL2": rel_l2(out.detach(), ref["output"]),
        "gradRelL2": rel_l2(ours, theirs),
        "tolerance": tol,
    }
    bad = [k for k in ("outRelL2", "gradRelL2") if not result[k] <= tol]
    if bad:
        raise ValueError(
            "PyTorch and Sumi disagree: "
            + ", ".join(f"{k} = {result[k]:.3g}" for k in bad)
            + f" (tolerance {tol:g})"
        )
    return result


@torch.no_grad()
def sample_dpmpp_2m(model, x, steps, train_steps=1000, beta_start=1e-4, beta_end=0.02):
    """DPM-Solver++(2M) over DDPM's linear β schedule, ε-prediction, `linspace` timesteps, the
    last step first order to σ = 0 (diffusers' DPMSolverMultistepScheduler defaults)."""
    betas = torch.linspace(beta_start, beta_end, train_steps, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    ts = torch.linspace(0, train_steps - 1, steps + 1, dtype=torch.float64).round().flip(0)[:-1]
    ts = [int(t) for t in ts]
    # Per step: α_t = √ᾱ, σ_t = √(1 − ᾱ), λ_t = log α_t − log σ_t; the final σ is 0.
    alpha = [math.sqrt(abar[t]) for t in ts] + [1.0]
    sigma = [math.sqrt(1 - abar[t]) for t in ts] + [0.0]
    lam = [math.log(a) - math.log(s) for a, s in zip(alpha[:-1], sigma[:-1])] + [math.inf]
    prev = None
    for i, t in enumerate(ts):
        eps = model(x, t)
        x0 = (x - sigma[i] * eps) / alpha[i]
        h = lam[i + 1] - lam[i]
        e = math.exp(-h) - 1  # −1 at σ = 0
        ratio = sigma[i + 1] / sigma[i]
        if prev is None or i == len(ts) - 1:
            d = x0
        else:
            r = (lam[i] - lam[i - 1]) / h
            d = x0 + (0.5 / r) * (x0 - prev)
        x = ratio * x - alpha[i + 1] * e * d
        prev = x0
    return x
