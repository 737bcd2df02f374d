"""Generate the neural-tangents reference fixture ``proofs/data/neural_tangents_reference.npz``.

An *independent* implementation of the infinite-width kernels: Google's neural-tangents
(``stax.Dense(W_std=sqrt(sigma_w2), b_std=sqrt(sigma_b2), parameterization="ntk")`` with the
``Relu``/``Erf``/``Gelu``/``Sin``/``LeakyRelu`` layers), in float64 (``jax_enable_x64``).  This
script imports nothing from the project; ``tests/theory/test_kernels.py`` and the claim
``kernels.neural_tangents_agreement`` compare ``theory.kernels.analytic_kernels`` against it.

neural-tangents and JAX are NOT project dependencies.  To regenerate (a throwaway venv is fine):

    python -m venv /tmp/ntvenv --system-site-packages
    /tmp/ntvenv/bin/pip install "jax==0.4.30" "jaxlib==0.4.30" absl-py
    /tmp/ntvenv/bin/pip install --no-deps neural-tangents==0.6.5 frozendict
    /tmp/ntvenv/bin/python benchmarks/make_reference_kernels.py

(neural-tangents 0.6.5 is incompatible with jax >= 0.5 (``jax.core.Jaxpr`` moved), and its
package ``__init__`` imports an experimental TensorFlow bridge that needs TensorFlow; the stax
kernels used here do not, so that one submodule is replaced by an empty stub before import.)
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "proofs" / "data" / "neural_tangents_reference.npz"

#: (activation name in theory.activations, depth, sigma_w2, sigma_b2)
CONFIGS = [
    ("relu", 1, 2.0, 0.0),
    ("relu", 3, 2.0, 0.0),
    ("relu", 5, 1.5, 0.1),
    ("relu", 2, 1.0, 0.5),
    ("erf", 1, 1.0, 0.0),
    ("erf", 3, 1.5, 0.1),
    ("erf", 4, 2.5, 0.3),
    ("gelu", 3, 2.0, 0.1),
    ("sin", 3, 1.2, 0.2),
    ("leaky_relu", 3, 2.0, 0.05),
]


def _nt_activation(stax, name):
    return {
        "relu": stax.Relu(),
        "erf": stax.Erf(),
        "gelu": stax.Gelu(approximate=False),
        "sin": stax.Sin(),
        "leaky_relu": stax.LeakyRelu(0.1),
    }[name]


def main() -> None:
    sys.modules.setdefault("neural_tangents.experimental", types.ModuleType("neural_tangents.experimental"))
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents
    from neural_tangents import stax

    rng = np.random.default_rng(20201001)
    X = rng.standard_normal((7, 5))
    X[3] *= 2.5          # varied norms, so the diagonal recursion matters
    X[5] = -0.5 * X[1]   # an antiparallel pair (correlation -1)
    X2 = rng.standard_normal((4, 5))
    X2[0] = X[2]         # a shared point (correlation +1 across the two sets)
    arrays = {"X": X, "X2": X2}
    meta = {"configs": [], "neural_tangents": neural_tangents.__version__, "jax": jax.__version__,
            "numpy": np.__version__, "x64": True}
    for i, (name, depth, sw2, sb2) in enumerate(CONFIGS):
        layers = [stax.Dense(1, W_std=np.sqrt(sw2), b_std=np.sqrt(sb2), parameterization="ntk")]
        for _ in range(depth - 1):
            layers += [_nt_activation(stax, name),
                       stax.Dense(1, W_std=np.sqrt(sw2), b_std=np.sqrt(sb2), parameterization="ntk")]
        kernel_fn = stax.serial(*layers)[2]
        train = kernel_fn(X, None, ("nngp", "ntk"))
        cross = kernel_fn(X, X2, ("nngp", "ntk"))
        arrays[f"c{i}_nngp"] = np.asarray(train.nngp, dtype=np.float64)
        arrays[f"c{i}_ntk"] = np.asarray(train.ntk, dtype=np.float64)
        arrays[f"c{i}_cross_nngp"] = np.asarray(cross.nngp, dtype=np.float64)
        arrays[f"c{i}_cross_ntk"] = np.asarray(cross.ntk, dtype=np.float64)
        meta["configs"].append({"key": f"c{i}", "activation": name, "depth": depth, "sigma_w2": sw2,
                                "sigma_b2": sb2})
    arrays["meta"] = np.array(json.dumps(meta))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT} ({len(CONFIGS)} configs; neural-tangents {meta['neural_tangents']}, jax {meta['jax']})")


if __name__ == "__main__":
    main()
