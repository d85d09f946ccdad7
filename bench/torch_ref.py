"""PyTorch figures for the shapes of bench/main.ts, for side-by-side ratios on the GPU machine.

    python3 bench/torch_ref.py [--small] [--iters N]

fp32 with TF32 off (the WebGPU kernels are plain f32), CUDA, timed like bench/main.ts: warm-up,
then N iterations back to back until the device is idle. Prints the same table columns.
"""
import argparse
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


def row(name, shape, ms, flop=None):
    perf = "" if flop is None else f"{flop / (ms * 1e6):10.1f} GFLOP/s"
    print(f"{name:<30} {shape:<30} {ms:10.3f} ms {perf}")


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

b, heads, l, d = (1, 4, 256, 64) if a.small else (8, 8, 1024, 64)
q, k, v = (torch.randn(b, heads, l, d, device=dev) for _ in range(3))
f = 4 * b * heads * l * l * d
with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
    row("attention fwd (math)", f"B{b} H{heads} L{l} d{d}",
        timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)), f)
row("attention fwd (sdpa)", f"B{b} H{heads} L{l} d{d}",
    timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)), f)
