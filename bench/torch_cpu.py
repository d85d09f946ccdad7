"""The PyTorch side of `npm run bench:torch` (bench/torch-cpu.ts): the same work on the CPU.

    /usr/bin/python3 bench/torch_cpu.py --model models/mnist-small/unet [--threads 2] --serve
    /usr/bin/python3 bench/torch_cpu.py --model models/mnist-small/unet [--iters N]

With --serve it answers one JSON request per stdin line with one JSON line on stdout:
  {"cmd": "info"}                                   -> torch version, threads, BLAS library
  {"cmd": "check", "file": F}                       -> relative L2 of the output and gradients
                                                       against Sumi's, written by the TS side
  {"cmd": "time", "row": R, "n": N, "inner": K, "warm": W}
                                                    -> N samples in ms, each the mean of K calls
Without it, it times every row N times and prints them. The model is bench/torch_unet.py's plain
copy of diffusers' UNet2DModel with Sumi's safetensors weights (f16 -> f32).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import (  # noqa: E402
    UNet2DModel,
    check_parity,
    load_config,
    load_state,
    read_safetensors,
)

WEIGHTS = "diffusion_pytorch_model.safetensors"
# Relative L2 that the output and the gradients must meet against Sumi's.
PARITY_TOL = 1e-5
# The demo (`npm run demo`): 64 digits in 20 DPM-Solver++ steps.
SAMPLE_IMAGES = 64
SAMPLE_STEPS = 20


def dpm_solver_schedule(path, steps):
    """α_t, σ_t of a DDPMScheduler config (linear β) and diffusers' DPM-Solver timesteps for its
    timestep_spacing ('leading': multiples of T // (steps + 1); 'linspace', 'trailing')."""
    with open(path) as fh:
        cfg = json.load(fh)
    T = cfg["num_train_timesteps"]
    if cfg.get("beta_schedule", "linear") != "linear":
        raise ValueError(f"{path}: the benchmark reads linear β schedules only")
    betas = torch.linspace(cfg["beta_start"], cfg["beta_end"], T, dtype=torch.float64)
    acp = torch.cumprod(1 - betas, 0)
    spacing = cfg.get("timestep_spacing", "linspace")
    if spacing == "leading":
        ratio = T // (steps + 1)
        ts = [i * ratio + cfg.get("steps_offset", 0) for i in range(steps + 1)][::-1][:-1]
    elif spacing == "trailing":
        ts = [round(T - i * T / steps) - 1 for i in range(steps)]
    else:
        ts = [round((T - 1) * (1 - i / steps)) for i in range(steps)]
    return acp.sqrt().float(), (1 - acp).sqrt().float(), ts


def blas_library():
    """The BLAS shared library this process has mapped (Debian's torch uses the system libblas)."""
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "blas" in line.lower()}
    except OSError:
        return "unknown"
    names = sorted(os.path.basename(p) for p in libs)
    return ", ".join(names) if names else "none mapped"


class Work:
    """The benchmarked rows; each `run_<row>()` is one call."""

    def __init__(self, model_dir):
        self.model = UNet2DModel(load_config(os.path.join(model_dir, "config.json")))
        path = os.path.join(model_dir, WEIGHTS)
        load_state(self.model, read_safetensors(path), path)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.seed = 0
        m = 512
        self.a, self.b = torch.randn(m, m), torch.randn(m, m)
        self.x = torch.randn(32, 64, 16, 16, requires_grad=True)
        self.w = torch.randn(64, 64, 3, 3, requires_grad=True)
        self.dy = torch.randn(32, 64, 16, 16)
        self.sampling = dpm_solver_schedule(
            os.path.join(model_dir, "..", "scheduler", "scheduler_config.json"), SAMPLE_STEPS
        )

    def run_train(self):
        self.model.train()
        self.seed += 1
        g = torch.Generator().manual_seed(self.seed)
        x0 = torch.randn(32, 1, 28, 28, generator=g)
        noise = torch.randn(32, 1, 28, 28, generator=g)
        t = torch.tensor([(i * 31 + self.seed) % 1000 for i in range(32)])
        loss = F.mse_loss(self.model(0.8 * x0 + 0.6 * noise, t), noise)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def run_forward(self):
        self.model.eval()
        with torch.no_grad():
            self.model(torch.randn(64, 1, 28, 28), 500)

    def run_sample(self):
        """SAMPLE_IMAGES images in SAMPLE_STEPS steps of DPM-Solver++(2M) (ε-prediction, the last
        step first order to σ = 0, as diffusers' DPMSolverMultistepScheduler): the demo's work."""
        self.model.eval()
        alpha, sigma, timesteps = self.sampling
        with torch.no_grad():
            x = torch.randn(SAMPLE_IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            lam = lambda i: torch.log(alpha[i]) - torch.log(sigma[i])  # noqa: E731
            prev = None  # (x0, h) of the previous step
            for i, t in enumerate(timesteps):
                eps = self.model(x, int(t))
                x0 = (x - sigma[t] * eps) / alpha[t]
                if i == len(timesteps) - 1:
                    x = x0  # σ_next = 0, first order
                    break
                s = int(timesteps[i + 1])
                h = lam(s) - lam(t)
                d = x0 if prev is None else x0 + 0.5 * (x0 - prev[0]) * (h / prev[1])
                x = (sigma[s] / sigma[t]) * x - alpha[s] * torch.expm1(-h) * d
                prev = (x0, h)
        return x

    def run_matmul(self):
        self.a @ self.b

    def run_conv_fwd(self):
        with torch.no_grad():
            F.conv2d(self.x, self.w, padding=1)

    def run_conv_fwdbwd(self):
        F.conv2d(self.x, self.w, padding=1).backward(self.dy)
        self.x.grad = None
        self.w.grad = None

    def time(self, row, n, inner, warm):
        fn = getattr(self, "run_" + row.replace("-", "_"), None)
        if fn is None:
            raise ValueError(f"unknown row {row!r}")
        for _ in range(warm):
            fn()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            out.append((time.perf_counter() - t0) / inner * 1e3)
        return out

    def check(self, path):
        return check_parity(self.model, path, PARITY_TOL)


def serve(work, threads):
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "info":
                reply = {
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "requestedThreads": threads,
                    "blas": blas_library(),
                }
            elif cmd == "check":
                reply = work.check(req["file"])
            elif cmd == "time":
                n, inner, warm = int(req["n"]), int(req["inner"]), int(req.get("warm", 0))
                reply = {"ms": work.time(req["row"], n, inner, warm)}
            elif cmd == "quit":
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
            reply["ok"] = True
        except Exception as e:  # reported to the driver, which prints it and stops
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="a UNet2DModel folder (config.json, safetensors)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true")
    p.add_argument("--iters", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        work = Work(a.model)
    except (OSError, ValueError) as e:
        print(f"torch_cpu.py: {e}", file=sys.stderr)
        sys.exit(1)
    if a.serve:
        sys.stdout.write(json.dumps({"ok": True, "ready": True}) + "\n")
        sys.stdout.flush()
        serve(work, a.threads)
        return
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, BLAS: {blas_library()}")
    rows = [
        ("train", 1),
        ("forward", 1),
        ("sample", 1),
        ("matmul", 10),
        ("conv-fwd", 4),
        ("conv-fwdbwd", 2),
    ]
    for row, inner in rows:
        ms = sorted(work.time(row, a.iters, inner, warm=1))
        print(f"{row:<12} {ms[len(ms) // 2]:10.3f} ms (median of {a.iters})")


if __name__ == "__main__":
    main()
