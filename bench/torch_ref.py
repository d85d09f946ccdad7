"""PyTorch figures for the shapes of bench/main.ts, for side-by-side ratios on the GPU machine.

    python3 bench/torch_ref.py [--small] [--iters N] [--json FILE]
    python3 bench/torch_ref.py --models [NAME:TRAIN_B:SAMPLE_B,...] [--steps 20] [--small]
                               [--budget-s S] [--json FILE]
    python3 bench/torch_ref.py --check FILE --model DIR

fp32 with TF32 off (the WebGPU kernels are plain f32), CUDA, timed like bench/main.ts: warm-up,
then N iterations back to back until the device is idle. Prints the same table columns. The
ddpm-cifar10 rows need `diffusers` (UNet2DModel from presets/ddpm-cifar10/config.json); without
it they are skipped with a note.

--models (the PyTorch side of `npm run bench:gpu`, bench/gpu.ts) times instead, per preset, a
training step (MSE on ε, backward, AdamW) at TRAIN_B and sampling SAMPLE_B images with --steps
DPM-Solver++(2M) steps, on bench/torch_unet.py's plain copy of UNet2DModel (randomly
initialised; no diffusers needed), each row cut short to fit --budget-s. --check compares the
model in DIR (config.json + safetensors) with Sumi's output and gradients in FILE (see
torch_unet.check_parity). Without a CUDA device the script says so and exits with status 3.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402

MODELS = "mnist-small:32:64,ddpm-cifar10:128:64"
p = argparse.ArgumentParser()
p.add_argument("--small", action="store_true")
p.add_argument("--iters", type=int, default=20)
p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
p.add_argument("--models", nargs="?", const=MODELS, metavar="SPEC")
p.add_argument("--steps", type=int, default=20, help="sampling steps of the --models rows")
p.add_argument("--budget-s", type=float, default=240.0, help="time for all --models rows")
p.add_argument("--check", metavar="FILE")
p.add_argument("--model", metavar="DIR")
p.add_argument("--device", default="cuda", help="cpu: try the script on a machine without a GPU")
a = p.parse_args()
if a.device == "cuda" and not torch.cuda.is_available():
    why = f"torch {torch.__version__}: torch.cuda.is_available() is False"
    print(f"torch_ref.py: no CUDA device ({why})", file=sys.stderr)
    sys.exit(3)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = a.device
HERE = os.path.dirname(os.path.abspath(__file__))
rows = []


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def device_name():
    return torch.cuda.get_device_name() if dev == "cuda" else dev


def timed(fn, iters=a.iters, warm=2):
    for _ in range(warm):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters * 1e3


def row(name, shape, ms, flop=None, batch=None, id=None, iters=None):
    perf = "" if flop is None else f"{flop / (ms * 1e6):10.1f} GFLOP/s"
    rate = "" if batch is None else f"{batch / (ms / 1e3):10.2f} img/s"
    print(f"{name:<34} {shape:<28} {ms:10.3f} ms {perf}{rate}", flush=True)
    r = {"id": id or name, "name": name, "shape": shape, "ms": ms, "iters": iters or a.iters}
    if flop is not None:
        r["gflops"] = flop / (ms * 1e6)
    if batch is not None:
        r["imgPerS"] = batch / (ms / 1e3)
    rows.append(r)


def write_json(extra=None):
    if a.json is None:
        return
    doc = {"torch": torch.__version__, "device": device_name(), "small": a.small, "rows": rows}
    doc.update(extra or {})
    tmp = a.json + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2)
    os.replace(tmp, a.json)


def check_mode():
    if a.model is None:
        p.error("--check needs --model DIR")
    try:
        model = torch_unet.UNet2DModel(torch_unet.load_config(os.path.join(a.model, "config.json")))
        weights = os.path.join(a.model, "diffusion_pytorch_model.safetensors")
        torch_unet.load_state(model, torch_unet.read_safetensors(weights), weights)
        r = torch_unet.check_parity(model.to(dev), a.check, 1e-5)
    except (OSError, ValueError, KeyError) as e:
        print(f"torch_ref.py: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(r))


def timed_box(fn, iters, deadline, warm=1):
    """ms per call: warm-up, one timed call, then as many back to back as fit before `deadline`
    (at most `iters`); None when the warm-up alone ran past it."""
    for _ in range(warm):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - t0
    n = int(max(0, min(iters - 1, (deadline - time.perf_counter()) / max(one, 1e-6) - 1)))
    if n == 0:
        return one * 1e3, 1
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n * 1e3, n


def share(deadline, rows_left):
    """The deadline of the next row: an equal share of the time left."""
    now = time.perf_counter()
    return now + (deadline - now) / max(1, rows_left)


def model_rows():
    """Training step and DPM++ sampling per preset, the rows of bench/gpu.ts."""
    deadline = time.perf_counter() + a.budget_s
    plan = []
    for item in a.models.split(","):
        name, train_b, sample_b = item.split(":")
        plan.append((name, int(train_b), int(sample_b)))
    for name, train_b, sample_b in plan:
        config = torch_unet.load_config(os.path.join(HERE, "..", "presets", name, "config.json"))
        torch.manual_seed(0)
        model = torch_unet.UNet2DModel(config).to(dev)
        c, s = config["in_channels"], config["sample_size"]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()

        def step():
            x0 = torch.randn(train_b, c, s, s, device=dev)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (train_b,), device=dev)
            loss = torch.nn.functional.mse_loss(model(0.8 * x0 + 0.6 * noise, t), noise)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        ms, n = timed_box(step, a.iters, share(deadline, len(plan) * 2 - len(rows)))
        shape = f"B{train_b} {c}×{s}×{s}"
        row(f"{name} train step (AdamW)", shape, ms, batch=train_b, id=f"{name}/train", iters=n)
        del opt
        model.eval()

        def sample():
            x = torch.randn(sample_b, c, s, s, device=dev)
            torch_unet.sample_dpmpp_2m(model, x, a.steps)

        ms, n = timed_box(sample, a.iters, share(deadline, len(plan) * 2 - len(rows)))
        shape = f"B{sample_b} {c}×{s}×{s}"
        label = f"{name} sample ({a.steps} DPM++ steps)"
        row(label, shape, ms, batch=sample_b, id=f"{name}/sample", iters=n)
        del model
        if dev == "cuda":
            torch.cuda.empty_cache()


print(f"# torch {torch.__version__} on {device_name()}, fp32 (TF32 off)", flush=True)
if a.check is not None:
    check_mode()
    sys.exit(0)
if a.models is not None:
    model_rows()
    write_json({"steps": a.steps})
    sys.exit(0)
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
write_json()
