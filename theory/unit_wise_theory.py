"""Unit-wise NGD: one Fisher block per unit (its fan-in weights and bias), derived.

C = 1.  Unit ``i`` of layer ``l``: ``J_{l,i} = diag_n(delta_{l,i}(x_n)) Z_l`` (N x (M_{l-1}+bias)).  If
``Z_l`` has full row rank N (``M_{l-1} + bias >= N``, distinct inputs) then
``range(J_{l,i}) = span{e_n : delta_{l,i}(x_n) != 0}``, so ``J_{l,i} J_{l,i}^+ = diag(1[delta_{l,i}(x_n) != 0])``
and ``Theta_G = sum_{l,i} J_{l,i} J_{l,i}^+ = diag_n(number of units active on x_n)``.  The output unit
is always active (1); a hidden unit is active with probability ``gamma = P(phi'(u) != 0)``:

    ``alpha = gamma * sum_{l<L} M_l + 1``,   count variance ``gamma (1 - gamma) sum_{l<L} M_l``

(independent Bernoulli indicators in the wide limit), so ``Theta_G = alpha I`` exactly when
``gamma = 1`` (tanh, erf: phi' vanishes only on a null set) and with relative spread
``sqrt(gamma(1-gamma) sum M_l) / alpha = O(M^{-1/2})`` for relu.

C > 1 (:func:`multi_output_derivation`): rows ``(n, c)`` give ``J_{l,i} = diag(delta) (Z (x) 1_C)``, whose
range is ``span{e_n (x) delta_{l,i}(x_n)}`` -- dimension <= N, not NC -- so each unit projects each sample's
C-block onto the single direction ``delta_{l,i}(x_n)``; the sum of these rank-one projections is not a
multiple of ``I_C`` at any finite width (for any activation), and its trace gives ``gamma sum M_l / C + 1``.

>>> unit_wise_alpha([784, 512, 512, 1], "tanh")
1025
>>> unit_wise_alpha([784, 512, 512, 1], "relu")
513
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import scipy.linalg
import sympy as sp

from theory.activations import get_activation
from theory.derivation import Derivation
from theory.non_isotropic import cached_derivation, IsotropyResult, NotIsotropic
from theory.validation import check_matrix, check_signals
from theory.tolerances import RANK_RTOL

__all__ = [
    "unit_wise_isotropy", "unit_wise_alpha", "unit_wise_derivation", "multi_output_derivation",
    "unit_wise_operator", "unit_wise_operator_predicted", "active_fraction", "active_count_moments"
]


# ---------------------------------------------------------------------------------------------
# numeric constructions
# ---------------------------------------------------------------------------------------------
def unit_wise_operator(Deltas: Sequence[np.ndarray], Zs: Sequence[np.ndarray], rtol: float = RANK_RTOL) -> np.ndarray:
    """``sum_{l,i} J_{l,i} J_{l,i}^+`` computed from the factors (batched SVD over the units of a layer).

    ``Deltas[l]``: (N, C, M_l) or (N, M_l); ``Zs[l]``: (N, m_l).  Row ``(n, c)`` of ``J_{l,i}`` is
    ``delta_{l,n,c,i} z_{l,n}``.  Reference path for tests (cost ~ sum_l M_l N C m_l min(NC, m_l)).
    """
    if len(Deltas) != len(Zs):
        raise ValueError(f"Deltas and Zs must have one entry per layer, got {len(Deltas)} and {len(Zs)}")
    total = None
    for l, (Delta, Z) in enumerate(zip(Deltas, Zs)):
        Z = check_matrix(f"Zs[{l}]", Z)
        D = check_signals(f"Deltas[{l}]", Delta, n_samples=Z.shape[0])
        N, C, M = D.shape
        J = np.einsum("nci,nm->incm", D, Z).reshape(M, N * C, Z.shape[1])  # one block per unit
        U, s, _ = np.linalg.svd(J, full_matrices=False)
        keep = s > rtol * np.maximum(s[:, :1], np.finfo(float).tiny)
        Uk = U * keep[:, None, :]
        block = np.einsum("iak,ibk->ab", Uk, Uk)
        total = block if total is None else total + block
    if total is None:
        raise ValueError("Deltas must hold at least one layer, got an empty sequence")
    return total


def unit_wise_operator_predicted(Deltas: Sequence[np.ndarray]) -> np.ndarray:
    """The derived form (valid when every ``Z_l`` has full row rank N):
    ``blockdiag_n sum_{l,i} delta_{l,i}(x_n) delta_{l,i}(x_n)^T / ||delta_{l,i}(x_n)||^2`` (zero-norm terms
    dropped); for C = 1 this is ``diag_n(#{(l,i): delta_{l,i}(x_n) != 0})``.

    >>> unit_wise_operator_predicted([np.array([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])]).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    blocks = None
    for l, Delta in enumerate(Deltas):
        D = check_signals(f"Deltas[{l}]", Delta)
        norms = np.einsum("nci,nci->ni", D, D)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        b = np.einsum("nci,ndi,ni->ncd", D, D, inv)
        blocks = b if blocks is None else blocks + b
    if blocks is None:
        raise ValueError("Deltas must hold at least one layer, got an empty sequence")
    return scipy.linalg.block_diag(*blocks)


# ---------------------------------------------------------------------------------------------
# symbolic results
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def active_fraction(activation) -> sp.Expr:
    """``gamma = P(phi'(u) != 0)`` derived by :meth:`Activation.active_fraction` (cached: the symbolic
    derivation takes ~0.5 s for tanh).  ``active_fraction("relu") == 1/2``."""
    return get_activation(activation).active_fraction()


def active_count_moments(hidden_widths, gamma, n_outputs=1):
    """THE unit-wise alpha formula (every other place calls this one): mean ``gamma sum M_l / C + 1``
    and variance ``gamma(1-gamma) sum M_l`` of a sample's active-unit count.

    C = 1: the mean is ``alpha = gamma sum_{l<L} M_l + 1`` (each hidden unit active with probability
    gamma, the output unit always).  C > 1: the mean diagonal of ``Theta_G`` (trace identity: each
    active unit contributes a rank-one projection of trace 1 to a sample's C x C block, the output
    layer C), ``gamma sum M_l / C + 1``; the variance is that of the count itself.
    ``hidden_widths`` may be a list of widths or a symbolic total.

    >>> active_count_moments([512, 512], sp.Rational(1, 2))
    (513, 256)
    >>> active_count_moments([512, 512], 1, n_outputs=2)[0]
    513
    """
    if isinstance(hidden_widths, (list, tuple)):
        total = sum((sp.sympify(m) for m in hidden_widths), sp.Integer(0))
    else:
        total = sp.sympify(hidden_widths)
    g = sp.sympify(gamma)
    return sp.expand(g * total / sp.sympify(n_outputs) + 1), g * (1 - g) * total


@cached_derivation
def unit_wise_derivation(activation="relu") -> Derivation:
    """Checked steps: per-unit projection, count mean/variance, O(M^-1/2) spread, exactness iff gamma = 1."""
    act = get_activation(activation)
    gamma = active_fraction(act)
    d = Derivation(f"Unit-wise NGD ({act.name}): alpha = gamma sum_(l<L) M_l + 1, gamma = {gamma}",
                   r"J G_{unit}^+ J^T/N = \mathrm{diag}_n\big(\#\{(l,i): \delta_{l,i}(x_n)\neq 0\}\big)"
                   r" \approx (\gamma \textstyle\sum_{l<L} M_l + 1) I",
                   ["C = 1", "Z_l full row rank, rank Z_l = N (layer 1: linearly independent inputs, rank X = N); "
                    "M_l + bias >= N is necessary for it, not sufficient",
                    "wide limit: activity indicators of distinct units independent (for gamma < 1)"])
    delta = sp.Matrix([2, 0, -1])
    Z = sp.Matrix([[1, 2, 0, 1], [0, 1, 1, 3], [1, 0, 2, 1]])
    Jli = sp.diag(*delta) * Z
    d.add_step("J_{l,i} J_{l,i}^+ = diag(1[delta != 0]) (Z full row rank; N = 3)", sp.simplify(Jli * Jli.pinv()),
               sp.diag(1, 0, 1), "range(diag(delta) Z) = range(diag(delta)) when Z Z^T is invertible")
    M, g, k = sp.symbols("M gamma k", positive=True)
    d.add_step("gamma = P(phi'(u) != 0) derived from phi'", gamma, act.active_fraction(),
               f"$\\phi'(u) = {sp.latex(act.derivative_expr)}$", display=sp.Eq(sp.Symbol(r"\gamma"), gamma))
    d.add_step("indicator moments: E[b^2] - E[b]^2 = gamma(1-gamma)", g - g ** 2, g * (1 - g), "b in {0, 1}: b^2 = b")
    import sympy.stats as stats
    K = stats.Binomial("K", 4, g)
    d.add_step("binomial count (M = 4 units): mean and variance", sp.Matrix([stats.E(K), stats.variance(K)]),
               sp.Matrix([4 * g, 4 * g * (1 - g)]), "sum of independent Bernoulli(gamma)",
               display=r"\begin{bmatrix}\mathbb{E}[K] \\ \operatorname{Var}[K]\end{bmatrix} = "
                       + sp.latex(sp.Matrix([4 * g, 4 * g * (1 - g)])),
               checker=lambda: sp.expand(sp.Matrix([stats.E(K), stats.variance(K)]) - sp.Matrix([4 * g, 4 * g * (1 - g)]))
               == sp.zeros(2, 1))
    Lm1 = sp.Symbol("L_h", positive=True)  # number of hidden layers L - 1
    mean, var = active_count_moments([M] * 1, g)
    mean, var = mean.subs(M, Lm1 * M), var.subs(M, Lm1 * M)
    spread = sp.sqrt(var) / mean
    d.add_step("relative spread times sqrt(M) tends to sqrt((1-gamma)/(gamma (L-1)))",
               sp.limit(spread * sp.sqrt(M), M, sp.oo), sp.sqrt((1 - g) / (g * Lm1)),
               "spread = sqrt(gamma(1-gamma)(L-1)M)/(gamma(L-1)M + 1) = O(M^-1/2)")
    d.add_step(f"variance at gamma = {gamma}", var.subs(g, gamma), sp.Integer(0) if gamma == 1 else var.subs(g, gamma),
               "gamma = 1: every unit active on every sample, exact isotropy at finite width"
               if gamma == 1 else "gamma < 1: isotropy only after dividing by M, as M -> infinity")
    d.conclusion = mean.subs(g, gamma)
    d.check()
    return d


@cached_derivation
def multi_output_derivation() -> Derivation:
    """Why unit-wise NGD loses isotropy for C > 1 (exact rational instance N = 2, C = 2)."""
    d = Derivation("Unit-wise NGD with C > 1 is not isotropic at finite width",
                   r"J_{l,i}J_{l,i}^+ = \mathrm{blockdiag}_n\big(\hat\delta_{l,i}(x_n)\hat\delta_{l,i}(x_n)^T\big)",
                   ["C > 1", "Z_l full row rank"])
    dlt = sp.Matrix([[1, 2], [3, -1]])  # delta_{l,i}(x_n) in R^C, rows n
    Z = sp.Matrix([[1, 2, 1], [0, 1, 2]])
    rows = [dlt[n, c] * Z[n, :] for n in range(2) for c in range(2)]
    J = sp.Matrix.vstack(*rows)  # rows (n, c) = delta_{n,c} z_n
    proj = sp.simplify(J * J.pinv())
    blocks = sp.diag(*[dlt[n, :].T * dlt[n, :] / (dlt[n, :] * dlt[n, :].T)[0, 0] for n in range(2)])
    d.add_step("rank of J_{l,i} (= rank of (delta delta^T) o (Z Z^T (x) 11^T)) is N = 2, not N C = 4",
               sp.Integer(J.rank()), 2, "range(diag(delta)(Z (x) 1_C)) = span{e_n (x) delta(x_n)}")
    d.add_step("per-unit projection = blockdiag_n(delta_n delta_n^T / |delta_n|^2)", proj, blocks,
               "each sample's C-block is projected onto the one direction delta_{l,i}(x_n)")
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((50, 2))  # 50 hidden units, generic backward directions in R^C
    frame = sum(np.outer(v, v) / (v @ v) for v in dirs) + np.eye(2)

    def not_multiple_of_identity():
        return abs(frame[0, 1]) > 1e-6 or abs(frame[0, 0] - frame[1, 1]) > 1e-6
    d.add_step("sum of rank-one projections over units is not a multiple of I_C (generic directions)",
               "sum_i P_{delta_i} + I_C", "a I_C", display=r"\sum_i P_{\delta_i} + I_C \neq a\, I_C",
               justification="a multiple of I_C only for a tight frame of directions; "
               "trace = #active units + C, so the mean diagonal is gamma sum M_l / C + 1, not gamma sum M_l + 1; "
               "off-diagonal entries are O(sqrt(M)) (random directions), i.e. relative O(M^-1/2)",
               checker=not_multiple_of_identity)
    th = sp.Symbol("theta", real=True)
    avg = lambda f: sp.integrate(f, (th, 0, 2 * sp.pi)) / (2 * sp.pi)  # noqa: E731 - uniform angle
    d.add_step("rotation invariance (C = 2): E[u u^T] = I_C / C for a uniformly distributed unit direction u",
               sp.Matrix([[avg(sp.cos(th) ** 2), avg(sp.cos(th) * sp.sin(th))],
                          [avg(sp.cos(th) * sp.sin(th)), avg(sp.sin(th) ** 2)]]), sp.eye(2) / 2,
               "the law of the output weights W_L is invariant under rotations of R^C, hence so is the law of "
               "each backward direction delta_(l,i)(x_n): the blocks average to (gamma sum M_l / C + 1) I_C")
    d.add_step("fluctuation of an off-diagonal term: E[u_1^2 u_2^2] = 1/8 (C = 2)",
               avg(sp.cos(th) ** 2 * sp.sin(th) ** 2), sp.Rational(1, 8),
               "a sum over ~gamma M independent units has std sqrt(gamma M / 8) against a diagonal gamma M / 2: "
               "relative O(M^-1/2), so C > 1 unit-wise NGD is isotropic only asymptotically (as relu with C = 1)")
    d.conclusion = blocks
    d.check()
    return d


def unit_wise_isotropy(widths, activation="relu", n_outputs=1, n_samples=None, bias=False,
                       depth=None, allow_multi_output_asymptotic: bool = False) -> IsotropyResult:
    """alpha = gamma sum_{l<L} M_l + 1 with conditions; :class:`NotIsotropic` for C > 1.

    ``widths``: the full list ``[M_0, M_1, ..., M_{L-1}, C]`` (numbers or symbols), or a single
    hidden width ``M`` together with ``depth`` (all hidden widths equal M).
    ``allow_multi_output_asymptotic=True`` returns, for C > 1, the *asymptotic* constant
    ``gamma sum M_l / C + 1`` (flagged not exact at finite width) instead of raising.
    """
    act = get_activation(activation)
    gamma = active_fraction(act)
    C = sp.sympify(n_outputs)
    if isinstance(widths, (list, tuple)):
        ws = [sp.sympify(w) for w in widths]
        if len(ws) < 2:
            raise ValueError(f"widths={widths!r} must list [M_0, ..., C] (at least input and output)")
        if depth is not None and sp.sympify(depth) != len(ws) - 1:
            raise ValueError(f"depth={depth} disagrees with widths={widths!r} (len(widths) - 1 = {len(ws) - 1})")
        if C != 1 and ws[-1] != C:
            raise ValueError(f"n_outputs={n_outputs} disagrees with widths[-1]={ws[-1]} (the output width C)")
        C = ws[-1]  # the widths list carries the number of outputs
        hidden, input_dim, L = ws[1:-1], ws[0], len(ws) - 1
    else:
        if depth is None:
            raise ValueError("widths given as a single hidden width needs depth=L")
        L = sp.sympify(depth)
        hidden, input_dim = None, None
        M = sp.sympify(widths)
    d = unit_wise_derivation(act.name)
    total = sum(hidden, sp.Integer(0)) if hidden is not None else (L - 1) * M
    if C != 1:
        asymptotic = active_count_moments(total, gamma, C)[0]
        if allow_multi_output_asymptotic:
            return IsotropyResult("unit_wise", asymptotic, ["C > 1: only asymptotically (M -> infinity)"],
                                  multi_output_derivation(), False,
                                  ["per-sample C x C blocks are sums of rank-one projections; relative "
                                   "deviation O(M^-1/2)"])
        raise NotIsotropic(
            f"unit-wise NGD with C = {C} > 1: each unit's block J_(l,i) has range span{{e_n (x) delta_(l,i)(x_n)}} "
            f"of dimension N, not N C, so it projects each sample's C-block onto one direction; summed over units "
            f"this is blockdiag_n(sum_i P_(delta_i(x_n))), not a multiple of I at any finite width "
            f"(for any activation, {act.name} included); its trace gives mean diagonal gamma*sum(M_l)/C + 1 = {asymptotic} (the C = 1 constant "
            f"does not apply). Off-diagonal entries are O(sqrt(M)): only an asymptotic, relative O(M^-1/2) isotropy.",
            "C = 1 (single output)", multi_output_derivation())
    conditions = ["C = 1 (single output)",
                  "linearly independent inputs, rank X = N (input Gram X X^T invertible; theory checks only the "
                  "necessary M_0 + bias >= N, numerics checks rank Z_1 = N)",
                  "Z_l full row rank for hidden layers (M_l + bias >= N necessary, not sufficient)",
                  "distinct inputs; pseudo-inverse per unit block (rho -> 0+)"]
    if n_samples is not None and hidden is not None:
        N = sp.sympify(n_samples)
        b = 1 if bias else 0
        for l, m in enumerate([input_dim] + list(hidden)):
            gap = m + b - N
            if gap.is_negative:
                raise NotIsotropic(
                    f"unit-wise NGD: layer {l + 1} input width M_{l} + bias = {m + b} < N = {N}: Z_{l + 1} has rank "
                    f"< N, so the per-unit projections onto range(diag(delta) Z) are not the diagonal indicator "
                    f"matrices (M_{l} + bias >= N is necessary for rank Z_{l + 1} = N; it is not sufficient: the "
                    f"inputs must also be linearly independent, which only numerics can check)", f"M_{l} + bias >= N", d)
    value, variance = active_count_moments(total, gamma)
    exact = gamma == 1
    notes = [] if exact else [
        f"not exact at finite width: per-sample active counts fluctuate; relative spread "
        f"sqrt(gamma(1-gamma) sum M_l)/alpha = {sp.sqrt(variance) / value}, O(M^-1/2)"]
    if not exact:
        conditions.append("infinite width (concentration of the active-unit counts)")
    return IsotropyResult("unit_wise", value, conditions, d, exact, notes)


def unit_wise_alpha(widths, activation="relu", **kwargs) -> sp.Expr:
    """``unit_wise_isotropy(widths, activation).value``."""
    return unit_wise_isotropy(widths, activation, **kwargs).value
