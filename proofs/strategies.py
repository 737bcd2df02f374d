"""Hypothesis strategies for architectures, data sets, approximations and assumption sets.

Reusable outside the test suite (``ngd-verify falsify`` searches with them; users can write their
own properties with them).  Every example is a :class:`Scenario`: a small, frozen, printable
description -- depth, widths, activation, bias, outputs, approximation, damping, block pattern and
a data recipe -- whose random parts (inputs, weights) come from two integer seeds through a
``numpy.random.Generator``.  Hypothesis therefore shrinks the *structure* (depth, N, widths, the
number of outputs, the seeds towards 0) to a minimal counterexample, and a scenario is rebuilt
exactly from its printed fields.

Sizes are kept small (N <= 12, widths <= 128, depth <= 9) so one example costs milliseconds.

Data recipes (``Scenario.inputs``):

* ``"sphere"``: i.i.d. uniform on the unit sphere of ``R^{M_0}`` (distinct, general position);
* ``"raw"``: the same directions with unequal norms in [0.3, 3] (not in isotropic position);
* ``"forster"``: unit-sphere inputs put in radial isotropic position by the Forster transform, fitted
  once to the training inputs and applied to the test inputs (:mod:`numerics.forster`);
* ``"duplicate"``: the last input repeats the first (the NTK and every layer Gram are singular);
* ``"near_duplicate"``: the last input is the first moved by 1e-13 (numerically singular);
* ``"positive"``: unit-norm inputs in the positive orthant; with ``dead_units = k`` the first ``k``
  units of layer 1 get all-negative fan-in weights, so they are dead relu units on every input.

>>> from hypothesis import find
>>> s = find(scenarios("block_diagonal", depth=st.integers(2, 5)), lambda s: s.depth >= 3)
>>> s.depth, s.n_samples, s.widths
(3, 2, (2, 8, 8, 1))
>>> s.build_inputs().shape
(2, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import numpy as np
from hypothesis import strategies as st

#: Largest sizes any strategy here draws (keeps one example in the millisecond range).
MAX_N = 12
MAX_WIDTH = 128
MAX_DEPTH = 9

INPUT_KINDS = ("sphere", "raw", "forster", "duplicate", "near_duplicate", "positive")
#: Activations the architectures draw from by default (closed-form duals or smooth, see theory.activations).
DEFAULT_ACTIVATIONS = ("relu", "tanh", "erf")


@dataclass(frozen=True)
class Scenario:
    """One architecture + data set + approximation, rebuilt deterministically from its fields.

    ``widths = (M_0, M_1, ..., M_{L-1}, C)``; ``sigma_b2 > 0`` means biases; ``pattern`` (a tuple of
    tuples) only for ``approximation="pattern"``; ``data_seed``/``weight_seed`` seed the inputs and
    the initial weights; ``learning_rate`` is the NGD step size (claims about dynamics).
    """

    approximation: str
    widths: Tuple[int, ...]
    n_samples: int
    activation: str = "relu"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    damping: float = 0.0
    inputs: str = "sphere"
    pattern: Optional[Tuple[Tuple[int, ...], ...]] = None
    dead_units: int = 0
    data_seed: int = 0
    weight_seed: int = 0
    learning_rate: float = 1.0

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def input_dim(self) -> int:
        return self.widths[0]

    @property
    def hidden_widths(self) -> Tuple[int, ...]:
        return self.widths[1:-1]

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    @property
    def forster(self) -> bool:
        return self.inputs == "forster"

    def with_(self, **changes) -> "Scenario":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def describe(self) -> str:
        """One line: the architecture and a data summary.

        >>> Scenario("exact", (4, 8, 1), 3).describe()
        'exact: depth 2, widths [4, 8, 1], relu, no bias, N = 3 unit-sphere inputs, data seed 0, weight seed 0'
        """
        data = {"sphere": "unit-sphere inputs", "raw": "raw inputs (norms 0.3-3, not isotropic)",
                "forster": "Forster (radial isotropic) inputs", "duplicate": "inputs with a duplicate (x_N = x_1)",
                "near_duplicate": "inputs with a near-duplicate (|x_N - x_1| = 1e-13)",
                "positive": "unit-norm inputs in the positive orthant"}[self.inputs]
        parts = [f"{self.approximation}: depth {self.depth}, widths {list(self.widths)}, {self.activation}",
                 f"bias sigma_b2 = {self.sigma_b2:g}" if self.sigma_b2 > 0 else "no bias",
                 f"N = {self.n_samples} {data}"]
        if self.damping > 0:
            parts.append(f"damping rho = {self.damping:g}")
        if self.pattern is not None:
            parts.append(f"pattern {[list(r) for r in self.pattern]}")
        if self.dead_units:
            parts.append(f"{self.dead_units} dead relu unit(s) in layer 1")
        if self.learning_rate != 1.0:
            parts.append(f"learning rate {self.learning_rate:g}")
        parts.append(f"data seed {self.data_seed}, weight seed {self.weight_seed}")
        return ", ".join(parts)

    def data_summary(self) -> str:
        """The training inputs in numbers: size, norms, closest pair, rank, leverage-score spread.

        >>> Scenario("exact", (3, 8, 1), 4, inputs="duplicate").data_summary()
        'N = 4 inputs in R^3, norms 1.00-1.00, closest pair 0 apart, rank 3, leverage scores 0.500-1.000'
        """
        X = self.build_inputs()
        norms = np.linalg.norm(X, axis=1)
        sq = norms ** 2
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
        closest = float(np.sqrt(np.min(d2[np.triu_indices(len(X), 1)]))) if len(X) > 1 else float("nan")
        rank = int(np.linalg.matrix_rank(X))
        U = np.linalg.svd(X, full_matrices=False)[0][:, :rank]
        lev = np.sum(U * U, axis=1)  # leverage scores x_n^T (X^T X)^+ x_n: equal iff isotropic position
        return (f"N = {len(X)} inputs in R^{X.shape[1]}, norms {norms.min():.2f}-{norms.max():.2f}, closest pair "
                f"{closest:.2g} apart, rank {rank}, leverage scores {lev.min():.3f}-{lev.max():.3f}")

    # -- builders ---------------------------------------------------------------------------
    def build_inputs(self) -> np.ndarray:
        """The ``(N, M_0)`` training inputs of the recipe ``self.inputs`` (seeded by ``data_seed``)."""
        rng = np.random.default_rng(self.data_seed)
        n, m = self.n_samples, self.input_dim
        X = rng.standard_normal((n, m))
        if self.inputs == "positive":
            X = np.abs(X)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        if self.inputs == "raw":
            X *= rng.uniform(0.3, 3.0, (n, 1))
        elif self.inputs in ("duplicate", "near_duplicate") and n >= 2:
            X[-1] = X[0]
            if self.inputs == "near_duplicate":
                X[-1, 0] += 1e-13
        elif self.inputs == "forster":
            X = self._forster_map(X).inputs
        return X

    def _forster_map(self, X_sphere: np.ndarray):
        from numerics.forster import forster_transform

        return forster_transform(X_sphere)  # raises ForsterError (a ValueError) when N < M_0

    def build_test_inputs(self, n_test: int = 4) -> np.ndarray:
        """``(n_test, M_0)`` unit-sphere test inputs (their own stream of ``data_seed``); for Forster
        inputs, mapped by the transform fitted to the training inputs."""
        X = np.random.default_rng([self.data_seed, 1]).standard_normal((n_test, self.input_dim))
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        if self.inputs == "forster":
            rng = np.random.default_rng(self.data_seed)
            raw = rng.standard_normal((self.n_samples, self.input_dim))
            X = self._forster_map(raw / np.linalg.norm(raw, axis=1, keepdims=True)).transform(X)
        return X

    def build_targets(self) -> np.ndarray:
        """``(N, C)`` targets ``+-0.5`` (the authors' binary labels; their own stream of ``data_seed``)."""
        return np.random.default_rng([self.data_seed, 2]).choice(np.array([-0.5, 0.5]),
                                                                 size=(self.n_samples, self.n_outputs))

    def build_network(self):
        """The :class:`numerics.network.MLP` (seeded by ``weight_seed``), dead units applied."""
        from numerics.network import MLP

        net = MLP(list(self.widths), activation=self.activation, sigma_w2=self.sigma_w2, sigma_b2=self.sigma_b2,
                  seed=self.weight_seed)
        if self.dead_units:
            # all-negative fan-in on positive inputs: u_{1,i}(x) < 0 for every input, relu' = 0
            W = net.params[0]
            k = min(self.dead_units, W.shape[0])
            W[:k, :self.input_dim] = -np.abs(W[:k, :self.input_dim]) - 0.1
            if net.has_bias:
                W[:k, -1] = -np.abs(W[:k, -1])
        return net

    def options(self) -> dict:
        """Keyword options for the numerics approximation (``pattern``; Forster is in the inputs), on top of
        the verifier's measurement options (:data:`proofs.evidence.MEASUREMENT_OPTIONS`)."""
        from proofs.evidence import measurement_options

        out = {}
        if self.pattern is not None:
            out["pattern"] = np.array(self.pattern, dtype=float)
        return measurement_options(self.approximation, out)


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def seeds() -> st.SearchStrategy[int]:
    """Seeds for inputs/weights; shrink towards 0."""
    return st.integers(0, 2**31 - 1)


def activations(names: Sequence[str] = DEFAULT_ACTIVATIONS) -> st.SearchStrategy[str]:
    """Activation names (the first one is the shrink target)."""
    return st.sampled_from(tuple(names))


def dampings(low: float = 1e-3, high: float = 10.0) -> st.SearchStrategy[float]:
    """Damping ``rho`` on a log grid in ``[low, high]`` (a grid keeps examples printable and shrinkable)."""
    grid = tuple(float(x) for x in np.logspace(np.log10(low), np.log10(high), 9))
    return st.sampled_from(grid)


@st.composite
def block_patterns(draw, depth: int, one_in_range: Optional[bool] = None):
    """Symmetric 0/1 ``L x L`` patterns with unit diagonal, optionally filtered on ``1 in range(S)``.

    The filter uses :func:`theory.patterns.analyze_pattern` (exact rational arithmetic).
    """
    from hypothesis import assume

    from theory.patterns import analyze_pattern

    upper = draw(st.lists(st.booleans(), min_size=depth * (depth - 1) // 2, max_size=depth * (depth - 1) // 2))
    S = np.eye(depth, dtype=int)
    S[np.triu_indices(depth, 1)] = upper
    S = np.triu(S) + np.triu(S, 1).T
    if one_in_range is not None:
        assume(bool(analyze_pattern(S.tolist()).one_in_range) == one_in_range)
    return tuple(tuple(int(v) for v in row) for row in S)


@st.composite
def architectures(draw, depth=st.integers(2, 5), min_width=1, width_extra=st.integers(0, 32),
                  input_dim=st.integers(2, 16), n_outputs=st.just(1), activation=st.just("relu"),
                  bias=st.just(False)):
    """``(widths, activation, sigma_b2)``: hidden widths ``min_width + extra_l`` (capped at
    :data:`MAX_WIDTH`), input dimension and outputs from the given strategies.

    ``min_width`` may be an int or a callable of nothing -- pass the bound you need (e.g. ``2 N``).

    >>> from hypothesis import find
    >>> find(architectures(), lambda a: True)
    ((2, 1, 1), 'relu', 0.0)
    """
    L = draw(depth)
    hidden = tuple(min(MAX_WIDTH, int(min_width) + draw(width_extra)) for _ in range(L - 1))
    widths = (draw(input_dim),) + hidden + (draw(n_outputs),)
    return widths, draw(activation), (1.0 if draw(bias) else 0.0)


@st.composite
def datasets(draw, n=st.integers(2, MAX_N), input_dim=st.integers(2, 16), kind=st.just("sphere")):
    """``(X, recipe)``: a data set as an array plus its :class:`Scenario` recipe fields
    (``n_samples``, ``input_dim``, ``inputs``, ``data_seed``) -- for properties of data alone.

    >>> from hypothesis import find
    >>> X, recipe = find(datasets(kind=st.just("raw")), lambda d: True)
    >>> X.shape, recipe["inputs"]
    ((2, 2), 'raw')
    """
    recipe = {"n_samples": draw(n), "input_dim": draw(input_dim), "inputs": draw(kind), "data_seed": draw(seeds())}
    s = Scenario("exact", (recipe["input_dim"], 1), recipe["n_samples"], inputs=recipe["inputs"],
                 data_seed=recipe["data_seed"])
    return s.build_inputs(), recipe


# ---------------------------------------------------------------------------------------------
# scenarios: the search spaces' examples
# ---------------------------------------------------------------------------------------------
def _int_range(value, name):
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, int):
        return st.just(value)
    lo, hi = value
    return st.integers(int(lo), int(hi))


@st.composite
def scenarios(draw, approximation="exact", *, depth=st.integers(2, 5), n=st.integers(2, 8),
              hidden="wide", input_dim="wide", n_outputs=st.just(1), activation=st.just("relu"),
              bias=st.just(False), damping=st.just(0.0), inputs=st.just("sphere"), pattern=None,
              dead_units=st.just(0), width_extra=st.integers(0, 16), learning_rate=st.just(1.0)):
    """A :class:`Scenario` whose sizes are drawn *relative to N* so that an assumption holds or
    fails by construction:

    * ``hidden``: ``"wide"`` (every hidden width ``>= 2 N C + 4``: relu layer Grams positive definite
      with high probability), ``"at_least_n"`` (``>= N C``), ``"three_nc"`` (``>= 3 N C``: the relu
      margin the finite-width claims use; relu K-FAC factors still lose rank on a few percent of
      draws there, more for small N and deep nets), ``"narrow"`` (the last hidden width
      ``< N``; the output layer's Gram is then singular), or an int range ``(lo, hi)``;
    * ``input_dim``: ``"wide"`` (``M_0 >= N``), ``"narrow"`` (``3 <= M_0 < N``, needs ``N >= 4``),
      or an int range;
    * ``approximation``: a name or a strategy of names; ``pattern``: ``None``, or ``True`` /
      ``False`` for a random block pattern with / without ``1 in range(S)``.

    Every part shrinks towards the smallest: depth, N, width extras, outputs, seeds.
    """
    name = draw(approximation if isinstance(approximation, st.SearchStrategy) else st.just(approximation))
    L = draw(_int_range(depth, "depth"))
    C = draw(n_outputs)
    narrow_input = input_dim == "narrow"
    N = draw(_int_range(n, "n").filter(lambda v: v >= 4) if narrow_input else _int_range(n, "n"))
    if input_dim == "wide":
        M0 = N + draw(st.integers(0, 8))
    elif narrow_input:
        M0 = N - 1 - draw(st.integers(0, max(0, N - 4)))
    else:
        M0 = draw(_int_range(input_dim, "input_dim"))
    if hidden in ("wide", "at_least_n", "three_nc"):
        base = {"wide": 2 * N * C + 4, "at_least_n": N * C, "three_nc": 3 * N * C}[hidden]
        widths_h = [min(MAX_WIDTH, base + draw(width_extra)) for _ in range(L - 1)]
    elif hidden == "narrow":
        widths_h = [min(MAX_WIDTH, 2 * N * C + draw(width_extra)) for _ in range(L - 2)]
        widths_h.append(max(1, N - 1 - draw(st.integers(0, max(0, N - 2)))))  # M_{L-1} < N
    else:
        rng = _int_range(hidden, "hidden")
        widths_h = [draw(rng) for _ in range(L - 1)]
    S = None
    if pattern is not None:
        S = draw(block_patterns(L, one_in_range=pattern))
    return Scenario(
        approximation=name, widths=(M0, *widths_h, C), n_samples=N, activation=draw(activation),
        sigma_b2=1.0 if draw(bias) else 0.0, damping=float(draw(damping)), inputs=draw(inputs), pattern=S,
        dead_units=draw(dead_units), data_seed=draw(seeds()), weight_seed=draw(seeds()),
        learning_rate=float(draw(learning_rate)))


# ---------------------------------------------------------------------------------------------
# analytic-kernel and matrix cases
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelCase:
    """Inputs and hyper-parameters for the analytic kernels (``zero_input``: the last input is 0)."""

    depth: int
    n_samples: int
    input_dim: int
    activation: str = "relu"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    zero_input: bool = False
    data_seed: int = 0

    def describe(self) -> str:
        return (f"analytic kernels: depth {self.depth}, {self.activation}, sigma_w2 = {self.sigma_w2:g}, "
                f"sigma_b2 = {self.sigma_b2:g}, N = {self.n_samples} Gaussian inputs in R^{self.input_dim}"
                + (" (the last one is 0)" if self.zero_input else "") + f", data seed {self.data_seed}")

    def build_inputs(self) -> np.ndarray:
        X = np.random.default_rng(self.data_seed).standard_normal((self.n_samples, self.input_dim))
        if self.zero_input:
            X[-1] = 0.0
        return X


@st.composite
def kernel_cases(draw, zero_input=False, activation=st.sampled_from(("relu", "erf", "tanh", "gelu", "linear")),
                 input_dim=st.integers(1, 8)):
    """:class:`KernelCase` examples (depth 1-6, N 2-8, several sigma_w2 / sigma_b2)."""
    return KernelCase(depth=draw(st.integers(1, 6)), n_samples=draw(st.integers(2, 8)),
                      input_dim=draw(input_dim), activation=draw(activation),
                      sigma_w2=draw(st.sampled_from((2.0, 1.0, 0.5, 3.0))),
                      sigma_b2=draw(st.sampled_from((0.0, 0.1, 1.0))), zero_input=zero_input,
                      data_seed=draw(seeds()))




@dataclass(frozen=True)
class MatrixCase:
    """``A`` (m x k, full column rank), ``B`` (k x k; rank ``rank_b``, or invertible when ``rank_b`` is
    None: ``G + 3 I``, well conditioned), ``C`` (k x n, full row rank), Gaussian from ``seed``."""

    k: int
    extra_rows: int = 0
    extra_cols: int = 0
    rank_b: Optional[int] = None
    seed: int = 0

    def describe(self) -> str:
        b = "invertible (G + 3 I)" if self.rank_b is None else f"of rank {self.rank_b}"
        return (f"A {self.k + self.extra_rows}x{self.k}, B {self.k}x{self.k} {b}, C {self.k}x{self.k + self.extra_cols}"
                f" (Gaussian, seed {self.seed})")

    def build(self):
        rng = np.random.default_rng(self.seed)
        k = self.k
        A = rng.standard_normal((k + self.extra_rows, k))
        C = rng.standard_normal((k, k + self.extra_cols))
        if self.rank_b is None:
            B = rng.standard_normal((k, k)) + 3.0 * np.eye(k)
        else:
            B = rng.standard_normal((k, self.rank_b)) @ rng.standard_normal((self.rank_b, k))
        return A, B, C


@st.composite
def matrix_cases(draw, singular_b: bool = False):
    k = draw(st.integers(2, 5))
    return MatrixCase(k, draw(st.integers(0, 2)), draw(st.integers(0, 2)),
                      draw(st.integers(1, k - 1)) if singular_b else None, draw(seeds()))


def learning_rate_factors(factors: Sequence[float] = (1.0, 0.5, 1.5, 0.25, 1.9, 2.1, 2.5)) -> st.SearchStrategy[float]:
    """Step sizes as multiples of ``1/alpha`` (inside and outside the stable interval ``(0, 2)``);
    the first, ``eta = 1/alpha``, is the shrink target."""
    return st.sampled_from(tuple(float(f) for f in factors))


def depths_mod3(residue: int, low: int = 2, high: int = MAX_DEPTH) -> st.SearchStrategy[int]:
    """Depths ``L`` in ``[low, high]`` with ``L = residue (mod 3)`` (e.g. 2 for singular ``T``).

    >>> from hypothesis import find
    >>> find(depths_mod3(2), lambda L: True)
    2
    """
    return st.sampled_from([L for L in range(low, high + 1) if L % 3 == residue])


def assumption_set(claim_id: str, relax: Optional[str] = None) -> st.SearchStrategy:
    """The scenarios of ``claim_id`` with every assumption holding (``relax`` None / ``"none"``) or
    with the assumption ``relax`` violated (the claim's space, declared next to the claim in
    ``proofs/claims/``; ``ngd-verify list`` names the relaxations).

    >>> from hypothesis import find
    >>> find(assumption_set("ngd.kfac.alpha_definition", "M_0 >= N"), lambda s: True).widths
    (3, 12, 1)
    """
    from proofs.registry import load_claims

    spaces = {c.id: c.space for c in load_claims() if c.space is not None}
    if claim_id not in spaces:
        raise ValueError(f"claim_id={claim_id!r} has no assumption space; allowed: {', '.join(sorted(spaces))}")
    return spaces[claim_id].strategy(relax)


__all__ = [
    "MAX_N",
    "MAX_WIDTH",
    "MAX_DEPTH",
    "INPUT_KINDS",
    "DEFAULT_ACTIVATIONS",
    "Scenario",
    "seeds",
    "activations",
    "dampings",
    "block_patterns",
    "architectures",
    "datasets",
    "scenarios",
    "KernelCase",
    "kernel_cases",
    "MatrixCase",
    "matrix_cases",
    "learning_rate_factors",
    "depths_mod3",
    "assumption_set",
]
