"""Reference values for src/eval/metrics (Fréchet distance, KID, precision/recall) from numpy.

Writes test/fixtures/metrics/metrics_ref.json. Usage (numpy only, no scipy):

    python3 scripts/ref/metrics_ref.py && npx prettier --write test/fixtures/metrics

The inputs are not stored: both this script and the tests rebuild them from the same integer
hash (`hash_normal` here, `hashNormal` in test/eval/metrics/test-data.ts). Scales and shifts are dyadic, so every input
value is a multiple of 2^-21 of magnitude below 2^9, computed exactly in float64 in any order:
both sides hold the same bits. The fixture records sums of the inputs to confirm it.
"""

import json
import math
import os

import numpy as np

M32 = 0xFFFFFFFF


def mix32(x):
    """A 32-bit integer hash (xor-shift-multiply, constants 0x7feb352d and 0x846ca68b)."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def hash_uniform(stream, i):
    """u = (h + 1/2) / 2^32 with h = mix32(mix32(stream) + i mod 2^32): in (0, 1)."""
    return (mix32((mix32(stream) + i) & M32) + 0.5) / 2**32


def hash_normal(stream, i):
    """Box-Muller from uniforms 2i and 2i+1, rounded to a multiple of 2^-8."""
    u1 = hash_uniform(stream, 2 * i)
    u2 = hash_uniform(stream, 2 * i + 1)
    z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    return math.floor(z * 256 + 0.5) / 256


def normals(stream, rows, cols):
    return np.array(
        [[hash_normal(stream, r * cols + c) for c in range(cols)] for r in range(rows)],
        dtype=np.float64,
    )


def gaussian_sample(stream, rows, cols, scale, shift):
    """Z A + m: Z [rows, cols] standard, A [cols, cols] = scale · standard / 4, m = shift · standard."""
    z = normals(stream, rows, cols)
    a = normals(stream + 1, cols, cols) * (scale / 4)
    m = normals(stream + 2, 1, cols) * shift
    return z @ a + m


def frechet(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    lam, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(lam, 0, None))) @ v.T
    m = root @ s2 @ root
    mu = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(mu, 0, None)).sum())
    mean_term = float(((mu1 - mu2) ** 2).sum())
    fd = mean_term + float(np.trace(s1) + np.trace(s2)) - 2 * tr_sqrt
    return {
        "distance": fd,
        "meanTerm": mean_term,
        "traceSqrtProduct": tr_sqrt,
        "minEigenvalueSigma1": float(lam.min()),
        "cov00": float(s1[0, 0]),
        "cov01": float(s1[0, 1]),
    }


def mmd2_unbiased(x, y):
    d = x.shape[1]
    m, n = len(x), len(y)
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.sum() / (m * n)
    )


def subset_indices(stream, n, m):
    """m distinct indices of 0..n-1: the m smallest hash keys (any fixed rule will do)."""
    keys = [mix32((mix32(stream) + i) & M32) for i in range(n)]
    return sorted(range(n), key=lambda i: keys[i])[:m]


def precision_recall(real, gen, k):
    def sq(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    # Column k of the partitioned row: the self distance 0 sits at 0, so this is the k-th other.
    r_rad = np.partition(sq(real, real), k, axis=1)[:, k]
    g_rad = np.partition(sq(gen, gen), k, axis=1)[:, k]
    precision = float((sq(gen, real) <= r_rad[None, :]).any(1).mean())
    recall = float((sq(real, gen) <= g_rad[None, :]).any(1).mean())
    return precision, recall, r_rad, g_rad


def main():
    out = {"generator": "mix32 hash, Box-Muller, 2^-8 grid; see scripts/ref/metrics_ref.py"}

    # Fréchet distance: two correlated 20-dim Gaussian samples, and a singular Σ₁ (12 rows).
    x = gaussian_sample(100, 50, 20, 1.0, 0.5)
    y = gaussian_sample(200, 60, 20, 1.25, 0.5)
    out["frechet"] = {
        "x": {"stream": 100, "rows": 50, "cols": 20, "scale": 1.0, "shift": 0.5, "sum": float(x.sum())},
        "y": {"stream": 200, "rows": 60, "cols": 20, "scale": 1.25, "shift": 0.5, "sum": float(y.sum())},
        "full": frechet(x, y),
        "singular": {"rows": 12, **frechet(x[:12], y)},
    }

    # KID: fixed subsets of 20 rows from 40 and 50 rows of 16 features.
    kx = gaussian_sample(300, 40, 16, 1.0, 0.25)
    ky = gaussian_sample(400, 50, 16, 1.125, 0.25)
    subsets = [
        {"x": subset_indices(1000 + s, 40, 20), "y": subset_indices(2000 + s, 50, 20)}
        for s in range(5)
    ]
    values = [mmd2_unbiased(kx[s["x"]], ky[s["y"]]) for s in subsets]
    out["kid"] = {
        "x": {"stream": 300, "rows": 40, "cols": 16, "scale": 1.0, "shift": 0.25, "sum": float(kx.sum())},
        "y": {"stream": 400, "rows": 50, "cols": 16, "scale": 1.125, "shift": 0.25, "sum": float(ky.sum())},
        "subsets": subsets,
        "values": values,
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "allRows": mmd2_unbiased(kx, ky),
    }

    # Improved precision and recall, k = 3.
    pr_real = gaussian_sample(500, 60, 8, 1.0, 0.375)
    pr_gen = gaussian_sample(600, 70, 8, 1.5, 0.375)
    p, r, r_rad, g_rad = precision_recall(pr_real, pr_gen, 3)
    out["precisionRecall"] = {
        "real": {"stream": 500, "rows": 60, "cols": 8, "scale": 1.0, "shift": 0.375, "sum": float(pr_real.sum())},
        "generated": {"stream": 600, "rows": 70, "cols": 8, "scale": 1.5, "shift": 0.375, "sum": float(pr_gen.sum())},
        "k": 3,
        "precision": p,
        "recall": r,
        "realRadii2": [float(v) for v in r_rad],
        "generatedRadii2": [float(v) for v in g_rad],
    }

    root = os.path.join(os.path.dirname(__file__), "..", "..")
    path = os.path.join(root, "test", "fixtures", "metrics", "metrics_ref.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
