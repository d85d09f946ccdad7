"""PyTorch figures for the shapes of bench/main.ts, for side-by-side ratios on the GPU machine.

    python3 bench/torch_ref.py [--small] [--iters N]

fp32 with TF32 off (the WebGPU kernels are plain f32), CUDA, timed like bench/main.ts: warm-up,
then N iterations back to back until the device is idle. Prints the same table columns. The
ddpm-cifar10 rows need `diffusers` (UNet2DModel from presets/ddpm-cifar10/config.json); without
it they are skipped with a note.
"""
import argparse
import json
import os
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--small", action="store_true")
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"


def timed(fn, iters=a.iters, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e3


def row(name, shape, ms, flop=None, batch=None):
    perf = "" if flop is None else f"{flop / (ms * 1e6):10.1f} GFLOP/s"
    rate = "" if batch is None else f"{batch / (ms / 1e3):10.2f} img/s"
    print(f"{name:<34} {shape:<28} {ms:10.3f} ms {perf}{rate}")


print(f"# torch {torch.__version__} on {torch.cuda.get_device_name()}, fp32 (TF32 off)")
n = 512 if a.small else 4096
x, y = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
row("matmul", f"{n}×{n}×{n}", timed(lambda: x @ y), 2 * n**3)

b, c, h = (8, 32, 16) if a.small else (128, 128, 32)
x = torch.randn(b, c, h, h, device=dev, requires_grad=True)
w = torch.randn(c, c, 3, 3, device=dev, requires_grad=True)
f = 2 * b * c * h * h * c * 9
conv = lambda: torch.nn.functional.conv2d(x, w, padding=1)
row("conv 3×3 fwd", f"B{b} C{c}→{c} {h}×{h}", timed(conv), f)
dy = torch.randn(b, c, h, h, device=dev)
row("conv 3×3 fwd+bwd", f"B{b} C{c}→{c} {h}×{h}", timed(lambda: conv().backward(dy)), 3 * f)

gn = torch.nn.GroupNorm(32, c).to(dev)
shape = f"B{b} C{c} {h}×{h}, 32 groups"
with torch.no_grad():
    row("groupNorm fwd", shape, timed(lambda: gn(x)))
row("groupNorm fwd+bwd", shape, timed(lambda: gn(x).sum().backward()))
row("groupNorm→silu fwd+bwd", shape,
    timed(lambda: torch.nn.functional.silu(gn(x)).sum().backward()))

b, heads, l, d = (1, 4, 256, 64) if a.small else (8, 8, 1024, 64)
q, k, v = (torch.randn(b, heads, l, d, device=dev, requires_grad=True) for _ in range(3))
f = 4 * b * heads * l * l * d
sdpa = torch.nn.functional.scaled_dot_product_attention
shape = f"B{b} H{heads} L{l} d{d}"
with torch.no_grad():
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        row("attention fwd (math)", shape, timed(lambda: sdpa(q, k, v)), f)
    row("attention fwd (sdpa)", shape, timed(lambda: sdpa(q, k, v)), f)
# fp32 has no flash kernel in PyTorch: sdpa picks the memory-efficient one.
row("attention fwd+bwd (sdpa)", shape, timed(lambda: sdpa(q, k, v).sum().backward()), 3.5 * f)


def ddpm_rows():
    try:
        from diffusers import UNet2DModel
    except ImportError:
        print("# ddpm-cifar10 rows skipped: diffusers is not installed")
        return
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "presets", "ddpm-cifar10", "config.json")) as fh:
        config = json.load(fh)
    model = UNet2DModel.from_config(config).to(dev)
    gflop = 12.44  # forward GFLOP per 32×32 image (DESIGN.md); training ≈ 3×
    batch = 2 if a.small else 128
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        x0 = torch.randn(batch, 3, 32, 32, device=dev)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,), device=dev)
        loss = torch.nn.functional.mse_loss(model(0.8 * x0 + 0.6 * noise, t).sample, noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = timed(step)
    row("ddpm train step (AdamW)", f"ddpm-cifar10 B{batch} 32×32", ms, 3 * gflop * 1e9 * batch, batch)
    batch = 4 if a.small else 256
    model.eval()
    x = torch.randn(batch, 3, 32, 32, device=dev)
    with torch.no_grad():
        ms = timed(lambda: model(x, 500).sample)
    row("ddpm forward (sampling)", f"ddpm-cifar10 B{batch} 32×32", ms, gflop * 1e9 * batch, batch)


ddpm_rows()
