"""Speed and memory of the finite-width engine, as ratios measured in ONE run (no absolute claims).

    python benchmarks/bench_numerics.py            # everything (the memory case needs ~5 GB and ~1-2 min)
    python benchmarks/bench_numerics.py --quick    # smaller sizes, no memory case (smoke test)

Rows:
1. Layer Gram ``J_l J_l^T`` (Khatri-Rao, width 4096, depth 3, N = 256) as a fraction of this
   machine's DGEMM rate on a GEMM of the same size ((N x M) @ (M x N)); target >= 50%.
2. One NGD step (factors = forward + backward, dual system, preconditioned update, parameter
   update) for exact / block-diagonal / block tri-diagonal / K-FAC at width 4096, depth 3, N = 256,
   as a multiple of one forward + backward pass; target <= 3x.
3. Unit-wise with rho > 0 at width 2048, depth 3, N = 128 (batched over units), same ratio; no ratio
   target: one damped N x N system per unit costs O(M N^3), against O(N M^2) for forward+backward.
4. Peak resident memory of an exact NGD step at width 16384, depth 3, N = 256 (child process,
   ``resource.getrusage``); target well under 24 GiB, i.e. no O(N P) Jacobian and no O(P^2).

Timings are the minimum over repeats (robust to other processes on a shared machine).  On a loaded
machine OpenBLAS's threads contend for the cores and small BLAS/LAPACK calls slow down ~10x;
``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_numerics.py`` then gives the more stable ratios.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numerics.approximations import available_approximations, get_approximation  # noqa: E402
from numerics.factors import layer_gram  # noqa: E402
from numerics.network import MLP  # noqa: E402
from numerics.training import ngd_step  # noqa: E402


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def problem(width: int, n: int, input_dim: int = 784, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, input_dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = 0.5 * rng.standard_normal((n, 1))
    return MLP([input_dim, width, width, 1], activation="relu", sigma_w2=2.0, seed=seed), X, Y


def bench_layer_gram(width: int, n: int, repeats: int):
    net, X, _ = problem(width, n)
    f = net.factors(X)
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((n, width)), rng.standard_normal((width, n))
    t_gemm = best_time(lambda: A @ B, repeats)
    t_gram = best_time(lambda: layer_gram(f, 2), repeats)  # hidden layer: Delta (N x M), Z (N x M+1)
    flops = 2 * (2.0 * n * n * width)  # two N x N products over ~M columns, counted as GEMMs
    gemm_rate, gram_rate = 2.0 * n * n * width / t_gemm, flops / t_gram
    return [("layer Gram J_2 J_2^T", f"M={width}, L=3, N={n}",
             f"{gram_rate / 1e9:.1f} GF/s (as 2 GEMMs; symmetric products run as syrk) vs DGEMM {gemm_rate / 1e9:.1f} GF/s",
             f"{gram_rate / gemm_rate:.0%} of DGEMM", ">= 50%")]


def one_ngd_step(net, X, Y, name, damping):
    ngd_step(net, X, Y, name, 0.0, damping)  # lr 0: same work, same net


def bench_steps(width: int, n: int, names, damping: float, repeats: int, label: str, target: str = "<= 3x"):
    """Round-robin over (fwd+bwd, step_1, step_2, ...) so every candidate sees the same machine load."""
    net, X, Y = problem(width, n)
    jobs = [("fwd+bwd", lambda: net.factors(X))]
    jobs += [(name, (lambda name=name: one_ngd_step(net, X, Y, name, damping))) for name in names]
    best = {key: float("inf") for key, _ in jobs}
    for _ in range(repeats):
        for key, fn in jobs:
            best[key] = min(best[key], best_time(fn, 1))
    t_fb = best["fwd+bwd"]
    return [(f"NGD step {name}{label}", f"M={width}, L=3, N={n}, rho={damping:g}",
             f"{best[name]:.2f} s vs fwd+bwd {t_fb:.2f} s", f"{best[name] / t_fb:.2f}x fwd+bwd", target)
            for name in names]


MEMORY_CHILD = """
import resource, sys, time, numpy as np
sys.path.insert(0, {root!r})
from numerics.network import MLP
from numerics.training import ngd_step
rng = np.random.default_rng(0)
X = rng.standard_normal(({n}, 784)); X /= np.linalg.norm(X, axis=1, keepdims=True)
Y = 0.5 * rng.standard_normal(({n}, 1))
net = MLP([784, {width}, {width}, 1], seed=0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
ngd_step(net, X, Y, "exact", 1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base, net.n_params, time.perf_counter() - t0)
"""


def bench_memory(width: int, n: int):
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD.format(root=root, n=n, width=width)],
                         capture_output=True, text=True, check=True).stdout.split()
    peak_kib, base_kib, n_params, seconds = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    params_gib = n_params * 8 / 2 ** 30
    jac_gib = n * n_params * 8 / 2 ** 30
    return [("peak memory, exact NGD step", f"M={width}, L=3, N={n}, P={n_params:,}",
             f"{peak_kib / 2 ** 20:.2f} GiB peak ({base_kib / 2 ** 20:.2f} GiB after init; "
             f"params {params_gib:.2f} GiB; a dense J would be {jac_gib:.0f} GiB); step {seconds:.0f} s",
             f"{peak_kib / 2 ** 20 / 24:.0%} of 24 GiB", "well under 24 GiB")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, skip the memory case")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true", help="skip the width-16384 memory case")
    args = parser.parse_args(argv)
    width, n, uw_width, uw_n = (1024, 64, 512, 32) if args.quick else (4096, 256, 2048, 128)
    present = available_approximations()
    rows = bench_layer_gram(width, n, args.repeats)
    rows += bench_steps(width, n, [a for a in ("exact", "block_diagonal", "block_tridiagonal", "kfac")
                                   if a in present], 0.0, args.repeats, "")
    if "unit_wise" in present:
        # no ratio target: one N x N damped system per unit is inherently O(M N^3) against the
        # O(N M^2) of a forward+backward pass (ratio ~ N^2 / M); the requirement is batching over units
        rows += bench_steps(uw_width, uw_n, ["unit_wise"], 1e-3, args.repeats, "",
                            target=f"batched over units; O(M N^3) vs O(N M^2): N^2/M = {uw_n**2 / uw_width:g}")
    if not (args.quick or args.skip_memory):
        rows += bench_memory(16384, 256)
    header = ("case", "size", "measured", "ratio", "target")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"\n(OPENBLAS_NUM_THREADS={threads}; min of {args.repeats} repeats; peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
