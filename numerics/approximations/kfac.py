"""K-FAC: each Fisher layer block replaced by a Kronecker product of two small factors, in dual form.

For layer ``l`` with inputs ``Z = Z_l`` (``N x m``, bias coordinate included) and backward signals
``Delta = Delta_l`` flattened to ``N C x M_l`` (rows ``delta_{n,c}``):

    A_{l-1} = Z^T Z / N,     B_l = Delta^T Delta / N,     G_l = B_l (x) A_{l-1}

(``(x)`` = Kronecker product in the contract's order ``theta_l = Wb_l.ravel()``, whose Jacobian row is
``kron(delta, z)``), and ``G = blockdiag(G_1, ..., G_L)``.

Damping (``rho > 0``), option ``damping_mode``:

* ``"exact"`` (default): ``(B (x) A + rho I)^{-1}``, literally the contract's ``(G + rho I)^{-1}``.
* ``"factored"``: ``(B + sqrt(rho) I)^{-1} (x) (A + sqrt(rho) I)^{-1}``, the usual practical K-FAC
  damping.  It equals ``(G' + rho I)^{-1}`` for ``G' = (B + sqrt(rho) I) (x) (A + sqrt(rho) I) - rho I``,
  which is what :meth:`dense_matrix` returns in this mode, so the dense reference matches exactly.

Both modes have the same ``rho -> 0+`` limit ``B^+ (x) A^+ = (B (x) A)^+``.

Dual (thin) computation, never an ``M x M`` inverse.  With the eigendecompositions of the two small
Grams ``Delta Delta^T = V diag(s^2) V^T`` (``N C x N C``) and ``Z Z^T = W diag(t^2) W^T`` (``N x N``),
kept on their numerical ranges, the factors are ``B = U_B diag(s^2/N) U_B^T``,
``U_B = Delta^T V diag(1/s)``, and ``A = U_A diag(t^2/N) U_A^T``, ``U_A = Z^T W diag(1/t)``.  The
gradient ``J_l^T r / N`` lies in ``range(B) (x) range(A)``, so with ``w_ij = 1/(b_i a_j + rho)`` (exact) or
``1/((b_i + sqrt rho)(a_j + sqrt rho))`` (factored), ``b = s^2/N``, ``a = t^2/N``:

    direction_l = Delta^T V [ (V^T R W) o w / N ] W^T Z,      R[(n,c), n'] = r_{nc} [n = n'],
    Theta_G,l(X2, X)[(a,c),(n,d)] = (1/N) sum_ij P2[(a,c),i] P[(n,d),i] Q2[a,j] Q[n,j] w_ij,
    P = V, Q = W,  P2 = Delta(X2) Delta^T V,  Q2 = Z(X2) Z^T W   (train set: P2 = V diag(s^2), Q2 = W diag(t^2)).

The numerical ranges are cut per factor (eigenvalues of each Gram below ``rank_rtol`` times its own
largest), so every product ``b_i a_j`` of kept eigenvalues is kept, as in the exact identity
``(B (x) A)^+ = B^+ (x) A^+``; a dense ``pinv`` of ``B (x) A`` with one global cut would drop products far
below the largest (e.g. ``1e-6 * 1e-5``).

For separable ``w`` (``rho = 0`` or factored damping) the operator is a Hadamard product of two
Grams; at ``rho = 0`` it is the paper's identity
``Theta_G,l = N [Delta (Delta^T Delta)^+ Delta^T] o [(Z (Z^T Z)^+ Z^T) (x) 1 1^T]``, a Hadamard product of
two projections.  Hidden layers with ``M_l >= N C`` and ``M_{l-1} + b >= N`` contribute ``N I``, the
output layer (``Delta_L`` rows ``e_c``) contributes ``I``: ``alpha = N (L - 1) + 1`` exactly at finite
width.  Cost per layer: two Grams (``(NC)^2 M_l``, ``N^2 m``), two ``eigh`` of ``N C``/``N`` size and
one ``M_l x N C x m`` GEMM for the direction -- the same order as computing the gradient.

When is K-FAC exact?  ``F_ll = (1/N) sum_n S_n (x) z_n z_n^T`` with ``S_n = sum_c delta_{n,c} delta_{n,c}^T``,
so ``F_ll - B (x) A = (1/N) sum_n (S_n - S_bar) (x) z_n z_n^T`` (``S_bar`` the mean): K-FAC is exact iff
this sample covariance between the backward outer products and the input outer products vanishes --
in particular for ``N = 1``, for the output layer (``delta_{n,c} = e_c`` for every sample), and for
every layer of a deep *linear* network (the backward pass is a fixed product of weight matrices, so
``S_n`` does not depend on ``n``).

Inputs with ``M_0 < N`` (no bias): layer 1 contributes ``N diag(h)`` with ``h`` the leverage scores of
``X``; they are constant (``M_0 / N``) iff the rows are in radial isotropic position, and then layer 1
contributes ``M_0 I`` and ``alpha = M_0 + N (L - 2) + 1``.  Putting the inputs there is a transform of
the DATA, applied once by the caller (:func:`numerics.forster.forster_transform`: fit on the training
inputs, apply ``.transform`` to test inputs); K-FAC only checks the leverage scores of what it is given.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([8, 64, 64, 1], activation="relu", seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 8))
>>> theta_G = KFACApproximation(net, X).operator()
>>> bool(np.allclose(theta_G, (6 * 2 + 1) * np.eye(6), atol=1e-9))    # alpha = N (L - 1) + 1
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np

from theory.assumptions import KFAC_INPUTS, KFAC_RANK, RHO_TO_ZERO, WELL_CONDITIONED, Flag
from theory.tolerances import CHUNK_ENTRIES, ILL_CONDITIONED
from theory.validation import check_choice, check_nonnegative

from ..forster import DEFAULT_TOL, leverage_scores
from ..linalg import PINV_RTOL
from ..diagnosis import Diagnosis, diagnose_factor, relation, svd_rank
from .base import Approximation, reject_options, register_approximation

DAMPING_MODES = ("exact", "factored")

# Kept-range condition numbers of a factor Gram beyond ILL_CONDITIONED (theory.tolerances) are reported.

#: Relative leverage-score spread ``(max h - min h) / mean h`` a rank-deficient input Gram may have and
#: still count as isotropic (layer contributes ``N mean(h) I = rank(Z) I``), per ``sqrt(M_0)``.  Inputs in
#: radial isotropic position up to the relative error ``e`` (:func:`numerics.forster.radial_isotropy_error`)
#: have ``Z^T Z = (N/M_0)(I + E)`` with ``||E||_2 <= ||E||_F = sqrt(M_0) e``, hence
#: ``h_n = (M_0/N)(1 - z_n^T E z_n + O(e^2))`` and a relative spread ``<= 2 sqrt(M_0) e``.  With the
#: Forster default ``e < 1e-10`` that is ``2 sqrt(M_0) 1e-10``; we allow twice that (second-order terms,
#: inputs transformed at up to twice the default tolerance): measured spreads of Forster inputs are
#: 1.6e-10..3.6e-10 relative (M_0 = 4..48), of raw Gaussian inputs 0.5..1.
LEVERAGE_SPREAD_PER_SQRT_M0 = 4 * DEFAULT_TOL

#: Rounding floor of leverage scores from an SVD: a backward-stable SVD perturbs the left singular
#: subspace by ``~ eps cond(Z)``, so ``h`` carries errors ``~ c eps cond(Z)``; ``c = 64`` is generous.
LEVERAGE_ROUNDING_FACTOR = 64


def leverage_tolerance(Z: np.ndarray) -> float:
    """Relative leverage-score spread below which ``Z``'s rows count as isotropic:
    ``4 sqrt(M) 1e-10 + 64 eps cond(Z)`` (``cond`` over the numerical range of ``Z``).

    >>> 8e-10 < leverage_tolerance(np.eye(4)) < 8.001e-10
    True
    """
    s = np.linalg.svd(Z, compute_uv=False)
    s = s[s > PINV_RTOL * s[0]] if s.size and s[0] > 0 else s[:0]
    cond = float(s[0] / s[-1]) if s.size else float("inf")
    return float(LEVERAGE_SPREAD_PER_SQRT_M0 * np.sqrt(Z.shape[1])
                 + LEVERAGE_ROUNDING_FACTOR * np.finfo(float).eps * cond)


#: Memory budget (float64 entries) for the intermediate tensors of the exactly damped operator.
OPERATOR_CHUNK_ENTRIES = CHUNK_ENTRIES


@dataclass(frozen=True)
class ThinGram:
    """Thin eigendecomposition ``rows rows^T = V diag(lam) V^T``.

    The numerical rank counts ``lam > rtol * max(lam)`` (:data:`numerics.linalg.PINV_RTOL`); the
    factor ``rows^T rows / N`` has the nonzero eigenvalues ``lam / N`` with eigenvectors
    ``rows^T V diag(lam^{-1/2})``.  ``V``/``lam`` hold the *working* basis: the rank-``rtol`` range for
    pseudo-inverses, or (``keep_positive=True``, used with damping, where the inverse is bounded)
    every positive eigenvalue -- cutting genuine small eigenvalues there would lose components of
    relative size ``sqrt(lam / lam_max) (b a + rho) / rho``, while keeping rounding-level ones costs
    only ``eps``-level terms (the formulas never divide by ``lam`` when ``rho > 0``).
    """

    V: np.ndarray
    lam: np.ndarray
    size: int
    rank: int                    # numerical rank (eigenvalues above rtol * max)
    condition_number: float      # lam_max / lam_min over the rank-rtol range
    dropped_ratio: float         # largest eigenvalue below the cut / lam_max (0 if none)

    @property
    def full_rank(self) -> bool:
        return self.rank == self.size


def thin_gram(rows: np.ndarray, rtol: float = PINV_RTOL, keep_positive: bool = False) -> ThinGram:
    """:class:`ThinGram` of ``rows rows^T`` (one GEMM and one ``eigh``).

    >>> g = thin_gram(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    >>> g.rank, g.lam.round(12).tolist(), g.full_rank
    (2, [2.0, 4.0], False)
    """
    gram = rows @ rows.T
    lam, V = np.linalg.eigh(gram)
    top = float(lam[-1]) if lam.size else 0.0
    keep = lam > rtol * top if top > 0 else np.zeros(lam.shape, dtype=bool)
    kept = lam[keep]
    dropped = lam[~keep]
    cond = float(kept[-1] / kept[0]) if kept.size else float("inf")
    dropped_ratio = float(max(0.0, dropped.max()) / top) if dropped.size and top > 0 else 0.0
    work = lam > 0 if keep_positive else keep
    return ThinGram(V=V[:, work], lam=lam[work], size=lam.size, rank=int(keep.sum()), condition_number=cond,
                    dropped_ratio=dropped_ratio)


def expand_outputs(gram: np.ndarray, n_outputs: int) -> np.ndarray:
    """``gram (x) 1_C 1_C^T`` in sample-major order.

    >>> expand_outputs(np.array([[1.0, 2.0]]), 2).tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    """
    if n_outputs == 1:
        return gram
    return np.repeat(np.repeat(gram, n_outputs, axis=0), n_outputs, axis=1)


def kfac_weights(b: np.ndarray, a: np.ndarray, rho: float, mode: str) -> np.ndarray:
    """``w_ij`` of the inverse on ``range(B) (x) range(A)``: ``1/(b_i a_j + rho)`` or
    ``1/((b_i + sqrt rho)(a_j + sqrt rho))``.

    >>> kfac_weights(np.array([2.0]), np.array([4.0]), 1.0, "factored").tolist()
    [[0.06666666666666667]]
    """
    if mode == "factored":
        root = np.sqrt(rho)
        return np.outer(1.0 / (b + root), 1.0 / (a + root))
    return 1.0 / (np.outer(b, a) + rho)


@register_approximation("kfac")
class KFACApproximation(Approximation):
    """K-FAC preconditioner (layer blocks ``B_l (x) A_{l-1}``), dual form.

    Options: ``damping_mode`` (``"exact"`` or ``"factored"``, see module docstring), ``rank_rtol``
    (eigenvalue cut of the factor Grams).  Inputs with ``M_0 < N`` must be in radial isotropic
    position for isotropy (module docstring); transform them with :mod:`numerics.forster` first.
    """


    # -- setup ------------------------------------------------------------------------------
    def _prepare(self, damping_mode: str = "exact", rank_rtol: float = PINV_RTOL, **options: Any) -> None:
        reject_options(self.name, options)
        self.damping_mode = check_choice("damping_mode", damping_mode, DAMPING_MODES)
        self.rank_rtol = check_nonnegative("rank_rtol", rank_rtol, allow_zero=False)
        n, c = self.n_samples, self.n_outputs
        self.backward_grams: List[ThinGram] = []
        self.input_grams: List[ThinGram] = []
        layers, problems, contributions = [], [], []
        self._leverage: dict = {}
        for l in range(1, self.depth + 1):
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            Z = self.factors.Z[l - 1]
            keep_all = self.damping > 0
            gb, ga = thin_gram(delta, self.rank_rtol, keep_all), thin_gram(Z, self.rank_rtol, keep_all)
            self.backward_grams.append(gb)
            self.input_grams.append(ga)
            info = {"layer": l, "backward_gram_rank": gb.rank, "backward_gram_size": gb.size,
                    "backward_gram_condition": gb.condition_number, "backward_gram_dropped": gb.dropped_ratio,
                    "input_gram_rank": ga.rank, "input_gram_size": ga.size,
                    "input_gram_condition": ga.condition_number, "input_gram_dropped": ga.dropped_ratio}
            for label, g in (("backward", gb), ("input", ga)):
                if g.condition_number > ILL_CONDITIONED:
                    problems.append(Flag("factor_gram_ill_conditioned",
                                         f"layer {l}: {label} factor Gram is ill-conditioned on its kept range "
                                         f"({relation('condition number', g.condition_number, 'limit', ILL_CONDITIONED)}): "
                                         "pseudo-inverse results keep few digits", WELL_CONDITIONED))
            contribution, problem = self._layer_contribution(l, gb, ga)
            info["contribution"] = contribution
            if l in self._leverage:
                info["leverage"] = self._leverage[l]
            contributions.append(contribution)
            problems.extend(problem or [])
            layers.append(info)
        self.diagnostics.update(
            damping_mode=self.damping_mode, layers=layers,
            predicted_alpha=(float(sum(contributions)) if all(x is not None for x in contributions) else None),
        )
        if self.damping > 0:
            problems.append(Flag("damping_positive", f"damping rho = {self.damping:g} > 0: eigenvalues "
                                 "b_i a_j / (b_i a_j + rho) differ, so Theta_G is not a multiple of I", RHO_TO_ZERO))
        self.set_flags(problems)

    def _layer_contribution(self, l: int, gb: ThinGram, ga: ThinGram):
        """The multiple of I layer ``l`` adds to ``Theta_G`` at ``rho = 0`` (None if not isotropic) and the
        flags saying why not (one per deficient factor).

        Two separate rank conditions (the layer Gram ``J_l J_l^T`` being invertible is NOT enough):
        ``rank(Delta_l) = N C`` (hidden layers; ``C`` for the output layer, true by construction) and
        ``rank(Z_l) = N``.  Ranks are those the operator uses (factor-Gram eigenvalues above
        ``rank_rtol`` times the largest); the cause of a deficiency is named by
        :func:`numerics.diagnosis.diagnose_factor` (failure path only), each flag with the cause's code.
        """
        n, c, L = self.n_samples, self.n_outputs, self.depth
        last = l == L
        problems = []
        backward_ok = (gb.rank == c) if last else gb.full_rank
        if not backward_ok:
            problems.append(diagnose_factor(self.net, self.factors, self.X, "backward", l, gb.rank, self.rank_rtol))
        if ga.full_rank:
            if problems:
                return None, self._rank_flags(l, problems)
            return (1.0 if last else float(n)), []
        fan_in = self.factors.Z[l - 1].shape[1]
        cause = diagnose_factor(self.net, self.factors, self.X, "input", l, ga.rank, self.rank_rtol)
        if last or problems:
            tail = (": it contributes the projection Z (Z^T Z)^+ Z^T (x) I_C, not I" if last and not problems
                    else ": its projection P_Z is not I")
            problems.append(cause.with_message(cause.message + tail))
            return None, self._rank_flags(l, problems)
        lev = leverage_scores(self.factors.Z[l - 1])
        mean = float(lev.mean())
        spread = float(lev.max() - lev.min()) / mean if mean > 0 else float("inf")
        tol = leverage_tolerance(self.factors.Z[l - 1])
        self._leverage[l] = {"relative_spread": spread, "tolerance": tol}
        if spread <= tol:
            # N diag(h) with constant h = rank/N: the layer contributes rank(Z_l) I (e.g. Forster inputs)
            return float(ga.rank), []
        hint = (" (inputs not in radial isotropic position: transform them with numerics.forster.forster_transform)"
                if l == 1 and fan_in < n else "")
        # a narrow input (M_0 + bias < N) is allowed for K-FAC with Forster inputs: then the failure is the spread
        code = "leverage_spread" if cause.code == "narrow_layer" else cause.code
        return None, [Flag(code, cause.message + ": the layer contributes N diag(leverage scores), "
                           + relation("relative spread", spread, "tolerance", tol) + f" (isotropic-position rounding), "
                           f"not a multiple of I{hint}", KFAC_INPUTS if l == 1 and fan_in < n else KFAC_RANK,
                           () if code == "leverage_spread" else cause.roots)]

    def _rank_flags(self, l: int, problems: List[Diagnosis]) -> List[Flag]:
        """The flags of a rank-deficient layer ``l`` (one per deficient factor, the code of its cause):
        ``M_0 + bias < N`` is the input condition of K-FAC (``M_0 >= N or Forster inputs``), anything else
        the rank condition ``rank Delta_l = N C``, ``rank Z_l = N``."""
        narrow_input = l == 1 and self.factors.Z[0].shape[1] < self.n_samples
        return [d.flag(assumption=KFAC_INPUTS if narrow_input else KFAC_RANK) for d in problems]

    # -- per-layer pieces -----------------------------------------------------------------------
    def _factor_eigenvalues(self, l: int):
        n = self.n_samples
        return self.backward_grams[l - 1].lam / n, self.input_grams[l - 1].lam / n

    def _weights(self, l: int) -> np.ndarray:
        b, a = self._factor_eigenvalues(l)
        return kfac_weights(b, a, self.damping, self.damping_mode)

    def _separable_weights(self, l: int):
        """``(beta, gamma)`` with ``w_ij = beta_i gamma_j`` when ``w`` factorises, else None."""
        b, a = self._factor_eigenvalues(l)
        if self.damping == 0:
            return 1.0 / b, 1.0 / a
        if self.damping_mode == "factored":
            root = np.sqrt(self.damping)
            return 1.0 / (b + root), 1.0 / (a + root)
        return None

    # -- public interface -----------------------------------------------------------------------
    def direction(self, residual) -> List[np.ndarray]:
        """``(G + rho I)^{-1} J^T r / N`` per layer: ``Delta^T V [(V^T R W) o w / N] W^T Z``."""
        r = self.residual_matrix(residual)
        n, c = self.n_samples, self.n_outputs
        out = []
        for l in range(1, self.depth + 1):
            gb, ga = self.backward_grams[l - 1], self.input_grams[l - 1]
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            Z = self.factors.Z[l - 1]
            core = np.einsum("nci,nc,nj->ij", gb.V.reshape(n, c, -1), r, ga.V, optimize=True)
            middle = gb.V @ ((core * self._weights(l)) @ ga.V.T) / n          # (N C, N)
            out.append(delta.T @ (middle @ Z))                                  # (M_l, m)
        return out

    def operator(self, X2=None) -> np.ndarray:
        """``Theta_G(X2, X)`` summed over layers, shape ``(N2 C, N C)``."""
        n, c = self.n_samples, self.n_outputs
        f2 = self.factors_at(X2)
        n2 = f2.n_samples
        total = np.zeros((n2 * c, n * c))
        for l in range(1, self.depth + 1):
            gb, ga = self.backward_grams[l - 1], self.input_grams[l - 1]
            # the (i, j) term is (Delta2 Delta^T v_i v_i^T) o (Z2 Z^T y_j y_j^T (x) 1 1^T) w_ij: no division by lam
            P, Q = gb.V, ga.V
            if X2 is None:
                P2, Q2 = gb.V * gb.lam, ga.V * ga.lam
            else:
                delta = self.factors.Delta[l - 1].reshape(n * c, -1)
                delta2 = f2.Delta[l - 1].reshape(n2 * c, -1)
                P2 = delta2 @ (delta.T @ gb.V)
                Q2 = f2.Z[l - 1] @ (self.factors.Z[l - 1].T @ ga.V)
            separable = self._separable_weights(l)
            if separable is not None:
                beta, gamma = separable
                total += ((P2 * beta) @ P.T) * expand_outputs((Q2 * gamma) @ Q.T, c) / n
            else:
                total += _nonseparable_operator(P2, P, Q2, Q, self._weights(l), c) / n
        return total

    def kronecker_factors(self, l: int):
        """``(B_l, A_{l-1})`` explicitly (``M_l x M_l`` and ``m x m``: small nets / tests only)."""
        l = self.factors.check_layer(l)
        n, c = self.n_samples, self.n_outputs
        delta = self.factors.Delta[l - 1].reshape(n * c, -1)
        Z = self.factors.Z[l - 1]
        return delta.T @ delta / n, Z.T @ Z / n

    def dense_matrix(self) -> np.ndarray:
        """``blockdiag_l(B_l (x) A_{l-1})`` (``"factored"`` with ``rho > 0``: ``(B+sqrt(rho)I) (x) (A+sqrt(rho)I) - rho I``)."""
        from ..dense import _check_small

        _check_small(self.net.n_params)
        blocks = []
        for l in range(1, self.depth + 1):
            B, A = self.kronecker_factors(l)
            if self.damping_mode == "factored" and self.damping > 0:
                root = np.sqrt(self.damping)
                G = np.kron(B + root * np.eye(B.shape[0]), A + root * np.eye(A.shape[0]))
                G[np.diag_indices_from(G)] -= self.damping
            else:
                G = np.kron(B, A)
            blocks.append(G)
        P = sum(b.shape[0] for b in blocks)
        out = np.zeros((P, P))
        offset = 0
        for b in blocks:
            k = b.shape[0]
            out[offset:offset + k, offset:offset + k] = b
            offset += k
        return out


def diagnose_backward_rank(net, factors, X, l: int, rank: int, rank_rtol: float = PINV_RTOL) -> str:
    """One sentence: ``rank(Delta_l) = rank < N C`` (``< C`` for the output layer) and its real cause
    (:func:`numerics.diagnosis.diagnose_factor`; the order of the causes is documented there)."""
    return diagnose_factor(net, factors, X, "backward", l, rank, rank_rtol).message


def diagnose_input_rank(net, factors, X, l: int, rank: int, rank_rtol: float = PINV_RTOL) -> str:
    """One sentence: ``rank(Z_l) = rank < N`` and its real cause (:func:`numerics.diagnosis.diagnose_factor`)."""
    return diagnose_factor(net, factors, X, "input", l, rank, rank_rtol).message


def _nonseparable_operator(P2, P, Q2, Q, w, n_outputs):
    """``T[(a,c),(n,d)] = sum_ij P2[(a,c),i] P[(n,d),i] Q2[a,j] Q[n,j] w_ij`` in chunks of rows ``a``.

    Per chunk: ``S[a,n,i] = sum_j Q2[a,j] Q[n,j] w_ij`` (one GEMM of the pairwise products), then a
    batched GEMM over ``n``.  Cost ``N2 N (r_A r_B + C^2 r_B)``.
    """
    c = n_outputs
    n2, n = Q2.shape[0], Q.shape[0]
    rb, ra = w.shape
    P2 = P2.reshape(n2, c, rb)
    Pt = P.reshape(n, c, rb).transpose(0, 2, 1)                                  # (n, rB, C)
    out = np.empty((n2, c, n, c))
    chunk = max(1, OPERATOR_CHUNK_ENTRIES // max(1, n * (ra + c * rb)))
    for start in range(0, n2, chunk):
        stop = min(n2, start + chunk)
        k = stop - start
        pairs = (Q2[start:stop, None, :] * Q[None, :, :]).reshape(k * n, ra)
        S = (pairs @ w.T).reshape(k, n, rb)                                      # (k, n, rB)
        Y = S[:, :, None, :] * P2[start:stop, None, :, :]                         # (k, n, C, rB)
        Y = Y.transpose(1, 0, 2, 3).reshape(n, k * c, rb)
        block = np.matmul(Y, Pt).reshape(n, k, c, c)                              # [n, a, c, d]
        out[start:stop] = block.transpose(1, 2, 0, 3)
    return out.reshape(n2 * c, n * c)


#: Short alias.
KFAC = KFACApproximation

__all__ = ["DAMPING_MODES", "KFAC", "KFACApproximation", "ThinGram", "diagnose_backward_rank",
           "diagnose_input_rank", "expand_outputs", "kfac_weights", "svd_rank", "thin_gram"]
