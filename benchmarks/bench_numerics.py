"""Speed and memory of the finite-width engine, as ratios measured in ONE run (no absolute claims).

    python benchmarks/bench_numerics.py            # everything (the memory case needs ~5 GB and ~1-2 min)
    python benchmarks/bench_numerics.py --quick    # smaller sizes, no memory case (smoke test)
    python benchmarks/bench_numerics.py --out benchmarks/results/bench-numerics.txt

Rows:
1. Layer Gram ``J_l J_l^T`` (Khatri-Rao, width 4096, depth 3, N = 256) as a fraction of this
   machine's DGEMM rate on a GEMM of the same size ((N x M) @ (M x N)); target >= 50%.
2. One NGD step (factors = forward + backward, dual system, preconditioned update, parameter
   update) for exact / block-diagonal / block tri-diagonal / K-FAC at width 4096, depth 3, N = 256,
   as a multiple of one forward + backward pass and of one GEMM of the forward's size
   ((N x M) @ (M x M)); targets (issue 14): block tri-diagonal <= 1.8x, the others <= 3x.
3. Unit-wise with rho > 0 at width 2048, depth 3, N = 128 (batched over units), same ratios; target
   <= 5x (issue 14).  Measured with the idle-spin setting ``ngd-verify`` runs with (the script imports
   numerics before numpy; :mod:`theory._environment`), and again, for reference, in a child process with
   OpenBLAS's default spin (``OPENBLAS_THREAD_TIMEOUT=28``).
4. BLAS threads next to a busy process (issue 14): ``function_space_operator(MLP([64, 2048, 2048, 1]), X,
   "unit_wise")``, N = 300, rho = 0, with the default BLAS threads against one thread, both next to a
   subprocess spinning multi-threaded GEMMs; target: within 1.5x of the one-thread time.
5. Peak resident memory of an exact NGD step at width 16384, depth 3, N = 256 (child process,
   ``resource.getrusage``); target well under 24 GiB, i.e. no O(N P) Jacobian and no O(P^2).
6. Only with ``--unit-wise-multiclass``: one unit-wise NGD step (build at the current parameters + step) on
   the ten-class digits setting of :mod:`proofs.experiments.digits_multiclass` (N = 200, C = 10, depth 3,
   relu, width 2048, rho = 0; M_0 = 64 < N, so layer 1 goes through the SVD path), for each loss: the
   per-unit (N C)-sized systems (``solve_form="dual_full"``) against the projected N-sized ones (default),
   ONE run each (the old path takes minutes), with the relative difference of the two directions.

Every ratio is measured in one run: the candidates are timed round-robin (fwd+bwd, GEMM, step_1, ...)
so that each sees the same machine load, and the MEDIAN over the repeats is reported (the minimum too).
The load average (``os.getloadavg``, as ``uptime`` prints it) is recorded before and after each row: the
machine has 2 cores and other processes may be running.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# numerics before numpy, as ``ngd-verify`` imports them: ``import theory`` sets OPENBLAS_THREAD_TIMEOUT
# before OpenBLAS loads (theory._environment); the footer records the value in effect
import numerics  # noqa: E402,F401  isort: skip
import numpy as np  # noqa: E402

from numerics.approximations import available_approximations, get_approximation  # noqa: E402
from numerics.factors import layer_gram  # noqa: E402
from numerics.network import MLP  # noqa: E402
from numerics.threads import blas_thread_info  # noqa: E402
from numerics.training import ngd_step  # noqa: E402


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def load() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` prints them."""
    return "load %.2f, %.2f, %.2f" % os.getloadavg()


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


def bench_steps(width: int, n: int, names, damping: float, repeats: int, label: str, targets=None):
    """Round-robin over (fwd+bwd, GEMM, step_1, step_2, ...) so every candidate sees the same machine load;
    the median (and minimum) of ``repeats`` rounds."""
    targets = targets or {}
    net, X, Y = problem(width, n)
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((n, width)), rng.standard_normal((width, width))
    jobs = [("fwd+bwd", lambda: net.factors(X)), ("gemm", lambda: A @ B)]
    jobs += [(name, (lambda name=name: one_ngd_step(net, X, Y, name, damping))) for name in names]
    for _, fn in jobs:  # warm-up: imports, caches
        fn()
    times = {key: [] for key, _ in jobs}
    before = load()
    for _ in range(repeats):
        for key, fn in jobs:
            times[key].append(best_time(fn, 1))
    after = load()
    med = {key: float(np.median(v)) for key, v in times.items()}
    low = {key: float(np.min(v)) for key, v in times.items()}
    rows = []
    for name in names:
        rows.append((f"NGD step {name}{label}", f"M={width}, L=3, N={n}, rho={damping:g}",
                     f"median {med[name]:.3f} s (min {low[name]:.3f}); fwd+bwd {med['fwd+bwd']:.3f} s, "
                     f"GEMM (N x M)(M x M) {med['gemm']:.3f} s; {before} -> {after}",
                     f"{med[name] / med['fwd+bwd']:.2f}x fwd+bwd (min/min {low[name] / low['fwd+bwd']:.2f}x), "
                     f"{med[name] / med['gemm']:.2f}x GEMM",
                     targets.get(name, "<= 3x")))
    return rows


BUSY_CHILD = """
import time, numpy as np
a = np.random.default_rng(0).standard_normal((1000, 1000))
end = time.time() + {seconds}
while time.time() < end:
    a @ a
"""


def bench_busy_threads(width: int, n: int, repeats: int):
    """The issue's unit-wise operator next to a busy process: default BLAS threads vs one thread."""
    from numerics.operator import function_space_operator

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover -- a declared dependency
        return []
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 64))
    net = MLP([64, width, width, 1], activation="relu", sigma_w2=2.0, seed=0)

    def run(threads):
        with threadpool_limits(limits=threads, user_api="blas"):
            t0 = time.perf_counter()
            function_space_operator(net, X, "unit_wise")
            return time.perf_counter() - t0

    run(1)
    default = os.cpu_count() or 2
    busy = subprocess.Popen([sys.executable, "-c", BUSY_CHILD.format(seconds=3600)])
    try:
        time.sleep(0.5)
        before = load()
        one, many = [], []
        for _ in range(repeats):
            one.append(run(1))
            many.append(run(default))
        after = load()
    finally:
        busy.kill()
        busy.wait()
    t1, td = float(np.median(one)), float(np.median(many))
    return [("unit-wise operator next to a busy process", f"M={width}, M_0=64, L=3, N={n}, rho=0",
             f"{default} BLAS threads median {td:.2f} s vs 1 thread {t1:.2f} s; {before} -> {after}",
             f"{td / t1:.2f}x one-thread time", "<= 1.5x")]


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


def bench_unit_wise_multiclass(width: int, losses=("mse", "cross_entropy"), forms=("dual_full", "auto")):
    """One unit-wise step per (loss, solve_form) on the digits multiclass setting; one run each."""
    from proofs.experiments.digits_multiclass import load_digits_multiclass

    data = load_digits_multiclass()
    X, Y = data.X_train, data.Y_train
    widths = [X.shape[1], width, width, data.n_classes]
    rows = []
    for loss in losses:
        dirs = {}
        for form in forms:
            net = MLP(widths, activation="relu", sigma_w2=2.0, sigma_b2=0.0, seed=0)
            before = load()
            t0 = time.perf_counter()
            approx = get_approximation("unit_wise")(net, X, loss=loss, solve_form=form)
            t_build = time.perf_counter() - t0
            # the step's work: build + direction (ngd_step adds one axpy on the parameters)
            dirs[form] = np.concatenate([d.ravel() for d in approx.direction(approx.loss_residual(Y))])
            t_step = time.perf_counter() - t0
            forms_used = approx.diagnostics["direction_forms"]
            rows.append((f"unit-wise step, digits C=10, {loss}", f"M={width}, L=3, N={X.shape[0]}, rho=0",
                         f"solve_form={form}: {t_step:.1f} s (build {t_build:.1f} s); forms {forms_used}; "
                         f"{before} -> {load()}", "", "<= ~20 s (MAX_STEPS)" if form == "auto" else ""))
        if len(dirs) == 2:
            a, b = dirs.values()
            rows.append((f"  directions agree ({loss})", "", f"relative difference {np.linalg.norm(a - b) / np.linalg.norm(b):.1e}",
                         "", ""))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, skip the memory and busy cases")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-memory", action="store_true", help="skip the width-16384 memory case")
    parser.add_argument("--skip-busy", action="store_true", help="skip the busy-process BLAS-threads case")
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument("--unit-wise-multiclass", action="store_true",
                        help="only row 6: one unit-wise step on the ten-class digits, (N C)- vs N-sized systems")
    parser.add_argument("--width", type=int, default=2048, help="hidden width of row 6 (default 2048)")
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)  # child of bench_default_spin
    parser.add_argument("--only", nargs="+", metavar="APPROXIMATION",
                        help="time only these steps (e.g. block_tridiagonal unit_wise); skips the Gram row")
    args = parser.parse_args(argv)
    width, n, uw_width, uw_n = (1024, 64, 512, 32) if args.quick else (4096, 256, 2048, 128)
    present = [a for a in available_approximations() if args.only is None or a in args.only]
    start = load()
    if args.unit_wise_multiclass:
        rows = bench_unit_wise_multiclass(args.width)
        return _emit(rows, args, start, "one run per row")
    rows = bench_layer_gram(width, n, args.repeats) if args.only is None else []
    layerwise = [a for a in ("exact", "block_diagonal", "block_tridiagonal", "kfac") if a in present]
    if layerwise:
        rows += bench_steps(width, n, layerwise, 0.0, args.repeats, "", targets={"block_tridiagonal": "<= 1.8x"})
    if "unit_wise" in present:
        rows += bench_steps(uw_width, uw_n, ["unit_wise"], 1e-3, args.repeats, "", targets={"unit_wise": "<= 5x"})
        if not (args.quick or args.rows_json):
            rows += bench_default_spin(args.repeats)
    if not (args.quick or args.skip_busy):
        rows += bench_busy_threads(2048, 300, max(3, args.repeats // 2))
    if not (args.quick or args.skip_memory):
        rows += bench_memory(16384, 256)
    return _emit(rows, args, start, f"median of {args.repeats} round-robin repeats")


def bench_default_spin(repeats: int):
    """Row 3 again in a child process with OpenBLAS's default idle spin (``OPENBLAS_THREAD_TIMEOUT=28``, what a
    script that imports numpy before numerics gets; :mod:`theory._environment`), for comparison."""
    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="28")
    out = subprocess.run([sys.executable, __file__, "--only", "unit_wise", "--skip-busy", "--skip-memory",
                          "--repeats", str(repeats), "--rows-json"], env=env, capture_output=True, text=True,
                         check=True).stdout
    return [(f"{row[0]} (OpenBLAS default spin 2^28)", *row[1:4], "(reference)") for row in json.loads(out)]


def _emit(rows, args, start, how: str) -> int:
    if args.rows_json:
        print(json.dumps(rows))
        return 0
    header = ("case", "size", "measured", "ratio", "target")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [line(header), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    spin = ", ".join(f"2^{v} cycles" for v in sorted({d["thread_timeout"] for d in blas_thread_info()
                                                          if d["thread_timeout"] is not None})) or "unknown"
    lines.append("")
    lines.append(f"(OPENBLAS_NUM_THREADS={threads}; OpenBLAS idle spin {spin}; {os.cpu_count()} CPUs; {how}; "
                 f"{start} at start, {load()} at the end; peak RSS of this process "
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
