"""Cross-entropy (categorical likelihood): what replaces the isotropy condition, derived per approximation.

Definitions (``../shared/conventions.md`` "Cross-entropy"): logits ``f(x_n) in R^C`` (``C >= 2``),
``p_n = softmax(f(x_n))``, one-hot ``y_n``, loss ``(1/N) sum_n -y_n^T log p_n``, gradient ``J^T (p - y) / N``,
Fisher ``F = J^T H J / N``, ``H = blockdiag_n(H_n)``, ``H_n = diag(p_n) - p_n p_n^T``; every approximation
``G`` keeps blocks of this ``F`` (K-FAC: ``B_l = sum_n Delta_n^T H_n Delta_n / N``).  ``Pi_H`` is the
orthogonal projector onto ``range(H)`` (per sample ``1^perp``), ``Theta_G = J G^+ J^T / N``.

Derived here (each a checked :class:`~theory.derivation.Derivation`):

1. :func:`factorisation_derivation` -- ``H_n = S_n^T S_n`` with ``S_n = U_n^T diag(sqrt p_n)`` (``C - 1`` rows),
   ``null(H_n) = span(1)``, ``p - y in range(H)``, and the residual map ``M_n`` with ``S_n^T M_n = Pi``.  So
   ``F = J~^T J~ / N`` for ``J~ = S J``: every approximation under cross-entropy is its squared-loss self on
   the transformed Jacobian (``N (C-1)`` rows), and ``J^T Pi r = J~^T M r``.
2. :func:`probability_space_derivation` -- ``H Theta_G Pi_H = S^T Theta~ M`` with ``Theta~ = J~ G^+ J~^T / N``;
   whenever the squared-loss theorem gives ``Theta~ = alpha I`` (every layer Jacobian of full row rank,
   hence ``J~_l`` of rank ``N (C-1)``), ``H Theta_G = alpha Pi_H`` on ``range(H)``, exactly at finite width,
   with the squared-loss constants: 1 (exact), L (block-diagonal), ``1^T T^+ 1`` (block tri-diagonal),
   ``1^T S^+ 1`` (any pattern with ``1 in range(S)``).
3. :func:`newton_step_derivation` -- then ``Pi Theta_G Pi_H = alpha H^+``: modulo the all-ones direction
   (a logit shift softmax cannot see) the first-order logit step is the per-sample Newton step
   ``-eta alpha H^+ (p - y)``, independent of the kernel and the width; softmax's Jacobian is ``H_n``, so
   ``p_{t+1} - y = (1 - eta alpha)(p_t - y) + O(|Delta f|^2)``.
4. :func:`no_one_step_derivation` -- finite logits give ``p_n`` in the open simplex, so one-hot targets are
   never reached and the loss after one step at ``eta = 1/alpha`` is positive: binary, one Newton step from
   margin ``m`` gives ``m + 1/sigma(m)`` (``p_1 = sigma(2) = 0.881`` from ``m = 0``).
5. :func:`kfac_cross_entropy_derivation` -- K-FAC's output layer has ``Delta~_L[n] = S_n``, so its backward
   factor is ``mean_n H_n =: Hbar`` and ``H Theta_KFAC Pi_H = N (L - 1) Pi_H + blockdiag_n(H_n Hbar^+) Pi_H``:
   the mean eigenvalue is ``N (L - 1) + 1`` exactly, isotropy needs equal ``H_n``, and the isotropy error is
   ``||blockdiag_n((H_n - Hbar) Hbar^+)||_F / (alpha sqrt(N (C - 1)))`` (:func:`kfac_deviation`) -- for
   ``C = 2`` the coefficient of variation of ``p_n0 p_n1`` over ``alpha``; to first order in the spread of
   small outputs (:func:`kfac_deviation_first_order`) linear for ``C >= 3`` and zero for ``C = 2``.
6. :func:`unit_wise_cross_entropy_derivation` -- output unit ``c`` contributes ``u u^T``,
   ``u = S_n e_c / sqrt(p_c (1 - p_c))``: in probability space ``H_n diag(1/(p (1-p))) Pi``; hidden units
   contribute ``H_n delta delta^T Pi / (delta^T H_n delta)``.  ``C = 2``: every term is ``Pi`` (rank one),
   ``alpha = gamma sum_{l<L} M_l + 2`` (exact for tanh).  ``C >= 3``: isotropic only for uniform ``p_n``
   (then ``gamma sum M_l / (C - 1) + C / (C - 1)`` as M -> infinity); the infinite-width operator for any
   ``p`` is :func:`unit_wise_limit_operator` (normalised-Gaussian moments, :func:`normalised_gaussian_moments`).
7. EKFAC and the diagonal Fisher are not isotropic for squared loss; on the transformed factors the same
   reasons apply (EKFAC: the Hadamard frame of the factor Grams' eigenvectors, :mod:`theory.approximations.ekfac`).
8. :func:`authors_variants_derivation` -- the authors' "exact" update ``-eta J^T (H Theta + rho I)^{-1} r``
   moves the logits by ``-eta (H + rho Theta^{-1})^{-1} r``; "exact_plus_mse" ``-eta J^T Theta^{-1}
   (H + rho I)^{-1} r`` by ``-eta (H + rho I)^{-1} r``; both give ``Delta p = -eta r`` to first order as
   ``rho -> 0+`` and differ only by a logit shift along 1.

:func:`cross_entropy_isotropy` is what :func:`theory.isotropy.isotropy_result` returns for
``loss="cross_entropy"``: the squared-loss registry entry applied to the transformed network (``C - 1``
outputs), with the corrections of items 5-6.

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("block_diagonal", depth=4, n_outputs=3, loss="cross_entropy")
4
>>> isotropy_constant("kfac", depth=3, n_samples=6, input_dim=12, n_outputs=3, loss="cross_entropy")
13
>>> isotropy_constant("unit_wise", widths=[8, 64, 64, 2], activation="tanh", loss="cross_entropy")
130
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.non_isotropic import IsotropyResult, NotIsotropic, cached_derivation
from theory.tolerances import EXACT_TOL, RANK_RTOL
from theory.validation import check_matrix

__all__ = [
    "cross_entropy_isotropy", "factorisation_derivation", "probability_space_derivation", "newton_step_derivation",
    "no_one_step_derivation", "kfac_cross_entropy_derivation", "kfac_output_operator", "kfac_probability_operator",
    "kfac_deviation", "kfac_deviation_first_order", "kfac_cross_entropy_test_operator",
    "kfac_cross_entropy_test_operator_from_grams", "unit_wise_cross_entropy_derivation",
    "unit_wise_output_operator", "normalised_gaussian_moments", "unit_wise_limit_operator",
    "authors_variants_derivation", "binary_newton_margin", "CE_CONDITIONS", "projector"
]

CE_CONDITIONS = ("C >= 2 classes, p_n in the open simplex (finite logits): rank H_n = C - 1, null(H_n) = span(1)",
                 "statement in probability space: H Theta_G = alpha Pi_H on range(H) (p - y lies there)")


# ---------------------------------------------------------------------------------------------
# small numeric helpers (random instances for the checkers; definitions written out)
# ---------------------------------------------------------------------------------------------
def projector(n_samples: int, n_classes: int) -> np.ndarray:
    """``Pi_H = blockdiag_n(I - 1 1^T / C)``."""
    c = int(n_classes)
    return np.kron(np.eye(int(n_samples)), np.eye(c) - np.full((c, c), 1.0 / c))


def _hessians(p: np.ndarray) -> np.ndarray:
    return np.einsum("nc,cd->ncd", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]


def _blockdiag(blocks: np.ndarray) -> np.ndarray:
    n, a, b = blocks.shape
    out = np.zeros((n * a, n * b))
    for i in range(n):
        out[i * a:(i + 1) * a, i * b:(i + 1) * b] = blocks[i]
    return out


def _pinv(A: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    lam, V = np.linalg.eigh((A + A.T) / 2)
    keep = np.abs(lam) > rtol * np.abs(lam).max()
    return (V[:, keep] / lam[keep]) @ V[:, keep].T


def _thin(p: np.ndarray) -> np.ndarray:
    """A thin factor ``S_n`` (``C-1`` rows) with ``S_n^T S_n = H_n``: orthonormal basis of sqrt(p)^perp."""
    out = []
    for row in p:
        q = np.sqrt(row)
        U = np.linalg.svd(np.eye(len(q)) - np.outer(q, q))[0][:, :len(q) - 1]
        out.append(U.T * q[None, :])
    return np.array(out)


def _random_instance(seed: int, n: int, c: int, layer_params=(7, 9, 8)):
    """Random logits (scale 1.5) and a random dense Jacobian split into layers (columns), rows (n, c)."""
    rng = np.random.default_rng(seed)
    f = 1.5 * rng.standard_normal((n, c))
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    blocks = [rng.standard_normal((n * c, k)) for k in layer_params]
    return p, blocks


def _pattern_G(blocks, S, H, n: int) -> np.ndarray:
    L = len(blocks)
    return np.block([[S[l][k] * (blocks[l].T @ H @ blocks[k]) for k in range(L)] for l in range(L)]) / n


# ---------------------------------------------------------------------------------------------
# 1. factorisation and residual map
# ---------------------------------------------------------------------------------------------
@cached_derivation
def factorisation_derivation(n_classes: int = 3) -> Derivation:
    """``H_n = S_n^T S_n``, ``null H_n = span 1``, ``p - y in 1^perp``, ``S_n^T M_n = Pi`` (symbolic, C classes)."""
    c = int(n_classes)
    d = Derivation(f"Cross-entropy Fisher factorisation (C = {c})",
                   r"H_n = \mathrm{diag}(p_n) - p_np_n^T = S_n^TS_n,\quad S_n = U_n^T\mathrm{diag}(\sqrt{p_n}),\quad"
                   r" S_n^T M_n = \Pi,\quad F = \tilde J^T\tilde J/N,\ \tilde J = SJ",
                   ["C >= 2, p_n > 0 entrywise, sum_c p_nc = 1 (softmax of finite logits)"])
    q = sp.symbols(f"q1:{c + 1}", positive=True)            # q = sqrt(p): every identity below is polynomial
    p = [qi ** 2 for qi in q]
    D, Dh, Dih = sp.diag(*p), sp.diag(*q), sp.diag(*[1 / qi for qi in q])
    qv, pv, one = sp.Matrix(q), sp.Matrix(p), sp.ones(c, 1)
    H = D - pv * pv.T
    P = sp.eye(c) - qv * qv.T
    norm = (qv.T * qv)[0]                                     # = sum_c p_c = 1 on the simplex
    last = {q[-1] ** 2: 1 - sum(p[:-1])}                      # p_C = 1 - sum of the others

    def expand(M):
        return sp.expand(M) if not isinstance(M, sp.MatrixBase) else M.applyfunc(sp.expand)

    d.add_step("H = D^{1/2} (I - q q^T) D^{1/2}, q = sqrt(p)", expand(Dh * P * Dh), expand(H), "D^{1/2} q = p")
    d.add_step("(I - q q^T)^2 = (I - q q^T) + q q^T (|q|^2 - 1): a projector since |q|^2 = sum p = 1",
               expand(P * P), expand(P + qv * qv.T * (norm - 1)), "so H = (P D^{1/2})^T (P D^{1/2}); S = U^T D^{1/2} "
               "with U an orthonormal basis of q^perp (U U^T = P) gives S^T S = D^{1/2} P D^{1/2} = H")
    d.add_step("H 1 = p (1 - sum p) = 0 on the simplex (null(H) contains the all-ones direction: a logit shift)",
               expand(H * one).subs(last).applyfunc(sp.expand), sp.zeros(c, 1), "p_C = 1 - sum of the others")
    y = sp.Matrix([1] + [0] * (c - 1))
    d.add_step("p - y in 1^perp = range(H) for a one-hot y", sp.expand((one.T * (pv - y))[0]).subs(last), 0,
               "both sum to 1")
    Pi = sp.eye(c) - one * one.T / c
    d.add_step("residual map: S^T M = D^{1/2} P D^{-1/2} Pi = (I - p 1^T) Pi = Pi for M = U^T D^{-1/2} Pi",
               expand(Dh * P * Dih * Pi), expand((sp.eye(c) - pv * one.T) * Pi), "D^{1/2} q q^T D^{-1/2} = p 1^T; "
               "and p 1^T Pi = 0 since 1^T Pi = 0")
    d.add_step("1^T Pi = 0", expand(one.T * Pi), sp.zeros(1, c), "Pi = I - 1 1^T / C")

    def rank_check() -> bool:
        rng = np.random.default_rng(1)
        for _ in range(5):
            f = rng.standard_normal(c) * 2
            pp = np.exp(f - f.max())
            pp /= pp.sum()
            S = _thin(pp[None])[0]
            lam = np.linalg.eigvalsh(S @ S.T)        # the C - 1 eigenvalues are >= ~ min p > 1e-6 here
            if not (lam.min() > RANK_RTOL * lam.max() and np.allclose(S.T @ S, _hessians(pp[None])[0], atol=1e-14)):
                return False
        return True

    d.add_step("rank S_n = C - 1: S S^T has the C - 1 positive eigenvalues of H (x^T H x > 0 for x not in span 1, "
               "Cauchy-Schwarz); so rank J~ = N (C - 1) and rank J~_l = N (C - 1) when J, J_l have full row rank NC",
               "rank(S_n)", c - 1, "random instances, 5 draws", checker=rank_check)
    d.conclusion = "F = J~^T J~ / N, J~ = S J; J^T Pi r = J~^T M r"
    d.check()
    return d


# ---------------------------------------------------------------------------------------------
# 2.-3. probability-space isotropy and the Newton form
# ---------------------------------------------------------------------------------------------
_PATTERNS = {"exact": lambda L: np.ones((L, L)), "block_diagonal": lambda L: np.eye(L),
             "block_tridiagonal": lambda L: (np.abs(np.subtract.outer(np.arange(L), np.arange(L))) <= 1) * 1.0}


def _pattern_check(name: str, alpha: float, seed: int = 0, n: int = 3, c: int = 3) -> bool:
    """Random dense instance: H J G_S^+ J^T Pi / N = alpha Pi and Pi Theta_G Pi = alpha H^+."""
    p, blocks = _random_instance(seed, n, c)
    H = _blockdiag(_hessians(p))
    J = np.hstack(blocks)
    S = _PATTERNS[name](len(blocks))
    G = _pattern_G(blocks, S, H, n)
    Pi = projector(n, c)
    theta = J @ _pinv(G) @ J.T / n
    prob = H @ theta @ Pi
    newton = Pi @ theta @ Pi
    return (np.linalg.norm(prob - alpha * Pi) <= 1e-8 * alpha * np.linalg.norm(Pi)
            and np.linalg.norm(newton - alpha * _pinv(H)) <= 1e-8 * alpha * np.linalg.norm(_pinv(H)))


@cached_derivation
def probability_space_derivation() -> Derivation:
    """``H Theta_G Pi_H = S^T Theta~ M = alpha Pi_H`` when the squared-loss theorem gives ``Theta~ = alpha I``."""
    d = Derivation("Cross-entropy NGD: isotropy in probability space",
                   r"H\,J G^+ J^T\Pi_H/N = S^T\big(\tilde J G^+\tilde J^T/N\big) M = \alpha\,\Pi_H",
                   list(CE_CONDITIONS) + ["every layer Jacobian J_l has full row rank N C (so J~_l = S J_l has "
                                          "full row rank N (C - 1))", "pseudo-inverse (rho -> 0+) limit"])
    a = sp.Symbol("alpha", positive=True)
    St, Mt, Th, Pi = sp.symbols("S^T M Theta~ Pi", commutative=False)
    d.add_step("H Theta_G Pi = S^T S J G^+ J^T S^T M / N = S^T Theta~ M", "H J G^+ J^T Pi / N",
               "S^T (S J G^+ J^T S^T / N) M", "H = S^T S and Pi = S^T M (factorisation); G keeps blocks of "
               "J~^T J~ / N, so it is the squared-loss G of J~", checker=lambda: _pattern_check("exact", 1.0, seed=3))
    d.add_step("squared-loss theorem on J~ (rank N (C-1) per layer): Theta~ = alpha I", "J~ G_S^+ J~^T / N",
               "(1^T S^+ 1) I", "theory.patterns: exact 1, block-diagonal L, block tri-diagonal 1^T T^+ 1",
               checker=lambda: all(_pattern_check(k, v, seed=s) for s, (k, v) in
                                   enumerate({"exact": 1.0, "block_diagonal": 3.0, "block_tridiagonal": 1.0}.items())))
    d.add_step("S^T (alpha I) M = alpha S^T M = alpha Pi", (St * (a * Mt)).subs(St * Mt, Pi),
               a * Pi, "factorisation: S^T M = Pi",
               checker=lambda: sp.expand(St * (a * Mt) - a * St * Mt) == 0)
    d.conclusion = "H Theta_G Pi_H = alpha Pi_H (exact at finite width)"
    d.check()
    return d


def binary_newton_margin(m, c=1):
    """One Newton step ``f <- f - c H^+ (p - y)`` in binary cross-entropy (class 0 true) moves the margin
    ``m = f_0 - f_1`` to ``m + c / sigma(m)``.

    >>> round(float(binary_newton_margin(0.0)), 12)
    2.0
    """
    return m + c * (1 + sp.exp(-m)) if isinstance(m, sp.Basic) else m + c * (1.0 + np.exp(-m))


@cached_derivation
def newton_step_derivation() -> Derivation:
    """``Pi Theta_G Pi = alpha H^+``; softmax's Jacobian is H; first-order ``p_{t+1} - y = (1 - eta alpha)(p_t - y)``."""
    d = Derivation("Cross-entropy NGD moves the logits by a per-sample Newton step (modulo logit shifts)",
                   r"\Pi\,\Delta f = -\eta\alpha H^+(p - y),\qquad p_{t+1} - y = (1-\eta\alpha)(p_t - y)"
                   r" + O(|\Delta f|^2)",
                   list(CE_CONDITIONS) + ["H Theta_G Pi_H = alpha Pi_H (probability-space isotropy)"])
    d.add_step("Pi Theta_G Pi = H^+ (H Theta_G Pi) = alpha H^+ Pi = alpha H^+", "Pi J G^+ J^T Pi / N", "alpha H^+",
               "H^+ H = Pi and H^+ Pi = H^+ (random instance, exact/BD/BTD)",
               checker=lambda: all(_pattern_check(k, v, seed=10 + s) for s, (k, v) in
                                   enumerate({"exact": 1.0, "block_diagonal": 3.0, "block_tridiagonal": 1.0}.items())))
    f = sp.symbols("f1:4", real=True)
    Z = sum(sp.exp(x) for x in f)
    soft = sp.Matrix([sp.exp(x) / Z for x in f])
    jac = soft.jacobian(sp.Matrix(f))
    d.add_step("d softmax / d f = diag(p) - p p^T = H_n (C = 3)", jac, sp.diag(*soft) - soft * soft.T,
               "quotient rule")
    def second_order_remainder() -> bool:
        # p(f - c H^+ r) - y - (1 - c)(p - y) shrinks like c^2 (C = 4, random logits, one-hot y)
        rng = np.random.default_rng(2)
        f0 = rng.standard_normal(4)
        y = np.eye(4)[1]
        p = np.exp(f0) / np.exp(f0).sum()
        step = _pinv(_hessians(p[None])[0]) @ (p - y)
        rem = []
        for c_ in (1e-2, 5e-3):
            f1 = f0 - c_ * step
            p1 = np.exp(f1) / np.exp(f1).sum()
            rem.append(np.linalg.norm(p1 - y - (1 - c_) * (p - y)))
        return 3.5 < rem[0] / rem[1] < 4.5

    d.add_step("first order: Delta p = H Delta f = -eta H Theta_G Pi r = -eta alpha r", "p_{t+1} - y",
               "(1 - eta alpha)(p_t - y) + O(|Delta f|^2)", "the remainder is softmax's curvature: width-independent, "
               "O(c^2 |p - y|) for eta = c / alpha (checked: halving c divides it by 4)",
               checker=second_order_remainder)
    d.conclusion = "Pi Delta f = -eta alpha H^+ (p - y): the kernel and the width drop out"
    d.check()
    return d


@cached_derivation
def no_one_step_derivation() -> Derivation:
    """No one-step convergence to one-hot targets: finite logits; the binary Newton margin update."""
    d = Derivation("Cross-entropy: no one-step convergence to one-hot targets",
                   r"p_1 = \mathrm{softmax}(f_0 - H^+(p_0 - y)) \ne y,\qquad \mathcal L(\theta_1) > 0",
                   list(CE_CONDITIONS) + ["eta = 1/alpha, the step of the linearised network"])
    m = sp.Symbol("m", real=True)
    sig = 1 / (1 + sp.exp(-m))
    p0, p1 = sig, 1 - sig
    H = sp.Matrix([[p0 * p1, -p0 * p1], [-p0 * p1, p0 * p1]])
    Hp = sp.Matrix([[1, -1], [-1, 1]]) / (4 * p0 * p1)
    r = sp.Matrix([p0 - 1, p1])
    step = -Hp * r
    d.add_step("binary: H^+ = [[1,-1],[-1,1]] / (4 p0 p1)", sp.simplify(H * Hp * H - H), sp.zeros(2, 2),
               "Moore-Penrose: H H^+ H = H")
    d.add_step("Newton step on the margin m = f0 - f1: Delta m = 1 / sigma(m)", sp.simplify(step[0] - step[1]),
               sp.simplify(1 / sig), "Delta f = -H^+ (p - y), class 0 true")
    d.add_step("from m = 0: p_1 = sigma(2) < 1", sp.simplify((1 / (1 + sp.exp(-binary_newton_margin(m)))).subs(m, 0)),
               1 / (1 + sp.exp(-2)), "the first-order prediction says p_1 = y; the loss after the step is "
               "log(1 + e^-2) = 0.127 against log 2 = 0.693 before: ratio 0.18, not 0")
    d.add_step("softmax of finite logits is in the open simplex: -log p_{y} > 0", sp.exp(m) / (sp.exp(m) + 1) < 1,
               sp.true, "e^m < e^m + 1", checker=lambda: bool(sp.simplify(sp.exp(m) / (sp.exp(m) + 1) - 1).is_negative))
    d.conclusion = "one-hot targets are reached only as the logits diverge; no one-step convergence"
    d.check()
    return d


# ---------------------------------------------------------------------------------------------
# 5. K-FAC
# ---------------------------------------------------------------------------------------------
def _check_hessians(hessians) -> np.ndarray:
    Hs = np.asarray(hessians, dtype=float)
    if Hs.ndim != 3 or Hs.shape[1] != Hs.shape[2] or Hs.shape[1] < 2:
        raise ValueError(f"hessians has shape {Hs.shape}: expected (N, C, C) with C >= 2")
    if not np.all(np.isfinite(Hs)):
        raise ValueError("hessians contains non-finite values")
    return Hs


def kfac_output_operator(hessians) -> np.ndarray:
    """``blockdiag_n(H_n Hbar^+)`` (``N C x N C``, times ``Pi_H`` on the right it is K-FAC's output layer in
    probability space), ``Hbar = mean_n H_n`` (pseudo-inverse on ``1^perp``)."""
    Hs = _check_hessians(hessians)
    Hbar_pinv = _pinv(Hs.mean(axis=0))
    return _blockdiag(Hs @ Hbar_pinv[None])


def kfac_probability_operator(hessians, depth: int, n_samples: Optional[int] = None) -> np.ndarray:
    """``H Theta_KFAC Pi_H = N (L - 1) Pi_H + blockdiag_n(H_n Hbar^+) Pi_H`` (rank conditions of K-FAC on the
    transformed factors: ``rank Delta~_l = N (C - 1)``, ``rank Z_l = N``)."""
    Hs = _check_hessians(hessians)
    n, c = Hs.shape[0], Hs.shape[1]
    Pi = projector(n, c)
    return n * (int(depth) - 1) * Pi + kfac_output_operator(Hs) @ Pi


def kfac_deviation(hessians, depth: int) -> float:
    """K-FAC's probability-space isotropy error ``||blockdiag_n((H_n - Hbar) Hbar^+)||_F / (alpha sqrt(N (C-1)))``,
    ``alpha = N (L - 1) + 1`` -- zero iff every ``H_n`` equals their mean.

    >>> H = np.array([[[0.25, -0.25], [-0.25, 0.25]]] * 3)
    >>> kfac_deviation(H, 3)
    0.0
    """
    Hs = _check_hessians(hessians)
    n, c = Hs.shape[0], Hs.shape[1]
    alpha = n * (int(depth) - 1) + 1
    Hbar = Hs.mean(axis=0)
    E = (Hs - Hbar[None]) @ _pinv(Hbar)[None]
    return float(np.sqrt(np.sum(E * E)) / (alpha * np.sqrt(n * (c - 1))))


def kfac_deviation_first_order(logits, depth: int) -> float:
    """First order in the spread of small outputs (``p_n`` near uniform): with
    ``d_n = Pi (f_n - fbar) / C`` (``fbar`` the mean logits), ``(H_n - Hbar) Hbar^+ = C diag(d_n) Pi - 1 d_n^T
    + O(|f|^2)``, so the deviation is ``sqrt(sum_n ||C diag(d_n) Pi - 1 d_n^T||_F^2) / (alpha sqrt(N (C-1)))``:
    linear in the output spread for ``C >= 3``, identically 0 for ``C = 2`` (there it is second order).

    >>> kfac_deviation_first_order(np.array([[0.1, -0.1], [0.3, 0.0]]), 3)
    0.0
    """
    F = np.asarray(logits, dtype=float)
    n, c = F.shape
    Pi1 = np.eye(c) - np.full((c, c), 1.0 / c)
    d = (F - F.mean(axis=0)) @ Pi1 / c
    E = c * d[:, :, None] * Pi1[None] - np.ones(c)[None, :, None] * d[:, None, :]
    alpha = n * (int(depth) - 1) + 1
    return float(np.sqrt(np.sum(E * E)) / (alpha * np.sqrt(n * (c - 1))))


def _finite_matrix(name: str, value, shape=None, min_rows: int = 0) -> np.ndarray:
    """:func:`theory.validation.check_matrix` (finite, real, 2-D; ``TypeError``/``ValueError`` naming
    ``name``), and ``shape`` when given."""
    A = check_matrix(name, value, min_rows=min_rows)
    if shape is not None and A.shape != tuple(shape):
        raise ValueError(f"{name} has shape {A.shape}: expected {tuple(shape)}")
    return A


def kfac_cross_entropy_test_operator_from_grams(backward_train, backward_test, nngp_train, nngp_test) -> np.ndarray:
    """K-FAC's ``J_l(X') G_l^+ J~_l^T / N`` summed over layers, from the factor Grams (exact at finite width).

    Per layer ``l``: ``backward_train[l]`` is ``Delta~_l Delta~_l^T`` (``N (C-1) x N (C-1)``, rows ``(n, k)``,
    the transformed backward signals ``Delta~_l[n] = S_n Delta_l[n]``), ``backward_test[l]`` is
    ``Delta_l(X') Delta~_l^T`` (``N' C x N (C-1)``), ``nngp_train[l]`` is ``Z_{l-1} Z_{l-1}^T`` (``N x N``) and
    ``nngp_test[l]`` is ``Z_{l-1}(X') Z_{l-1}^T`` (``N' x N``).  With ``B~_l = Delta~_l^T Delta~_l / N``,
    ``A_l = Z^T Z / N`` and ``(A^T A)^+ A^T = A^T (A A^T)^+``::

        J_l(X') (B~_l (x) A_l)^+ J~_l^T / N = N [Delta(X') Delta~^T (Delta~ Delta~^T)^+] o [Z(X') Z^T (Z Z^T)^+ (x) 1 1^T]

    (the squared-loss K-FAC test kernel, :func:`theory.kfac_theory.kfac_test_kernel`, on the transformed factors),
    each pseudo-inverse with the eigenvalue cut ``RANK_RTOL`` relative to the Gram's largest eigenvalue -- the
    cut the finite-width K-FAC numerics use.  Returns ``(N' C, N (C-1))``; times the transformed residual
    ``M r`` it is K-FAC's first-order logit move at ``X'`` per unit learning rate.

    Raises ``ValueError`` naming the argument on inconsistent layer counts or shapes (every layer must have
    the first layer's ``N``, ``N'``, ``C``) and on non-finite entries; ``TypeError`` on non-real arrays.
    """
    from theory.kfac_theory import factor_regression

    L = len(backward_train)
    if not (len(backward_test) == len(nngp_train) == len(nngp_test) == L) or L == 0:
        raise ValueError("backward_train, backward_test, nngp_train, nngp_test must all have the same number "
                         f"L >= 1 of layers (got {L}, {len(backward_test)}, {len(nngp_train)}, {len(nngp_test)})")
    n = _finite_matrix("nngp_train[0]", nngp_train[0], min_rows=1).shape[0]
    n_test = _finite_matrix("nngp_test[0]", nngp_test[0]).shape[0]
    if n_test == 0:                                                         # no test points
        return np.zeros((0, _finite_matrix("backward_train[0]", backward_train[0]).shape[0]))
    rows, cols = _finite_matrix("backward_test[0]", backward_test[0]).shape
    if cols % n or rows % n_test or cols // n < 1 or rows // n_test != cols // n + 1:
        raise ValueError(f"backward_test[0] has shape {(rows, cols)}: expected (N' C, N (C-1)) with N = {n}, "
                         f"N' = {n_test} and C >= 2")
    c, a = rows // n_test, cols // n
    out = np.zeros((rows, cols))
    for l in range(L):
        Kb = _finite_matrix(f"backward_train[{l}]", backward_train[l], (n * a, n * a))
        Kb_x = _finite_matrix(f"backward_test[{l}]", backward_test[l], (n_test * c, n * a))
        Kz = _finite_matrix(f"nngp_train[{l}]", nngp_train[l], (n, n))
        Kz_x = _finite_matrix(f"nngp_test[{l}]", nngp_test[l], (n_test, n))
        rb = factor_regression(Kb_x, Kb)
        rz = factor_regression(Kz_x, Kz)
        out += n * rb * np.kron(rz, np.ones((c, a)))
    return out


def _ce_backward_regression(K_test: np.ndarray, K: np.ndarray, S: np.ndarray, layer: int) -> np.ndarray:
    """``Delta(X') Delta~^T (Delta~ Delta~^T)^+`` (``(N' C, N (C-1))``) at infinite width, where
    ``Delta~ Delta~^T = S (K (x) I_C) S^T`` and ``Delta(X') Delta~^T = (K' (x) I_C) S^T`` with
    ``S = blockdiag(S_n)``, computed without forming that Gram: its eigenvalues scale with the smallest
    probabilities (``S_n`` has singular values ``~ sqrt(p)``), so a relative eigenvalue cut would drop true
    directions of saturated samples.

    * ``K`` positive definite (hidden layers): ``S_n = A_n W^T`` with ``W`` an orthonormal basis of
      ``1^perp`` (the row space of every ``S_n``) and ``A_n = S_n W`` invertible, so
      ``(S (K (x) I) S^T)^{-1} = A^{-T} (K^{-1} (x) I) A^{-1}`` and the regression is
      ``[K' K^{-1}]_{x'm} (S_m^+)_{ck}`` with ``S_m^+ = W A_m^{-1}``.
    * ``K = w v v^T`` of rank one (the output layer, ``b_L = 1``): with ``F = sqrt(w) v (x) I_C`` and
      ``T = S F = A~ W^T`` (``N (C-1) x C``, ``A~`` the stacked ``sqrt(w) v_n A_n``, of full column rank),
      the regression is ``(K' v / sqrt(w) (x) I) T^+`` with ``T^+ = W A~^+`` from an SVD of ``A~`` (never
      the normal equations ``T^T T = w sum_n v_n^2 H_n``, whose small eigenvalues -- every sample saturated
      in the same class -- a relative cut would drop); ``ValueError`` naming the condition number when
      ``A~`` is singular to working precision.
    * anything else (a singular ``K`` of rank > 1, e.g. duplicate inputs): ``ValueError`` with the rank.
    """
    from theory.kfac_theory import factor_regression

    n, a, c = S.shape
    scale = float(np.abs(K).max())
    if np.abs(K - K.T).max() > 1e-10 * scale:
        raise ValueError(f"backward_train[{layer}] is not symmetric (max |K - K^T| = {np.abs(K - K.T).max():.3g}, "
                         f"max |K| = {scale:.3g}): expected a kernel matrix")
    w, V = np.linalg.eigh((K + K.T) / 2)
    top = max(float(w[-1]), 0.0)
    if top <= 0.0:
        raise ValueError(f"backward_train[{layer}] is zero on the training inputs: no direction to regress on")
    if w[0] < -1e-10 * top:
        raise ValueError(f"backward_train[{layer}] is not positive semidefinite (eigenvalues {w[0]:.3g} .. {top:.3g}): "
                         "expected a kernel matrix")
    W = np.linalg.svd(np.eye(c) - 1.0 / c)[0][:, : c - 1]                  # orthonormal basis of 1^perp
    A = S @ W                                                              # N x (C-1) x (C-1), A_n = S_n W
    if w[0] > RANK_RTOL * top:
        R = factor_regression(K_test, K)                                   # N' x N, K well enough conditioned
        Sp = np.einsum("ck,nkj->ncj", W, np.linalg.inv(A))                 # S_n^+ = W A_n^{-1}, N x C x (C-1)
        return np.einsum("pm,mck->pcmk", R, Sp).reshape(K_test.shape[0] * c, n * a)
    rank = int(np.sum(w > RANK_RTOL * top))
    if rank == 1:
        v, lam = V[:, -1], float(w[-1])
        if np.abs(K_test - np.outer(K_test @ v, v)).max() > 1e-8 * max(np.abs(K_test).max(), 1e-300):
            raise ValueError(f"backward_test[{layer}] is not in the row space of the rank-one backward_train[{layer}]: "
                             "the regression is not defined")
        At = (v[:, None, None] * A).reshape(n * a, a)                     # A~ / sqrt(w): rows (m, k)
        P, sig, Qt = np.linalg.svd(At, full_matrices=False)
        if sig[-1] <= 64 * np.finfo(float).eps * max(n * a, 1) * sig[0]:
            raise ValueError(f"backward_train[{layer}] (rank one) with these outputs gives a transformed backward Gram "
                             f"that is singular to working precision (condition number "
                             f"{sig[0] / max(sig[-1], 1e-300):.3g}): every sample saturated in the same class "
                             "direction")
        At_pinv = (Qt.T / sig) @ P.T                                       # (C-1) x N (C-1)
        T_pinv = (W @ At_pinv).reshape(c, n, a) / lam                      # T^+ / sqrt(w), columns (m, k)
        return np.einsum("p,cmk->pcmk", K_test @ v, T_pinv).reshape(K_test.shape[0] * c, n * a)
    raise ValueError(f"backward_train[{layer}] has rank {rank} < N = {n} (eigenvalues {w[0]:.3g} .. {top:.3g}; "
                     f"condition number {top / max(float(w[0]), 1e-300):.3g}): the cross-entropy K-FAC regression "
                     "is computed stably only for a positive definite or rank-one backward kernel (duplicate inputs?)")


def kfac_cross_entropy_test_operator(nngp_train, backward_train, nngp_test, backward_test, S) -> np.ndarray:
    """Infinite-width K-FAC cross-entropy operator ``J(X') G_KFAC^+ J~^T / N`` (``(N' C, N (C-1))``) from the
    analytic per-layer kernels (C = 1 scalars, as in :func:`theory.kernels.analytic_kernels`: ``.nngp_layers``
    ``Sigma^(l-1)``, ``.backward`` ``b_l``, train ``N x N`` and test ``N' x N``) and the thin factors ``S``
    (``N x (C-1) x C``, ``S_n^T S_n = H_n``) at the current outputs.

    At infinite width the backward signals of different output channels are independent,
    ``Delta_l[n] Delta_l[m]^T -> b_l(x_n, x_m) I_C``, so ``Delta~ Delta~^T = [b_l(x_n, x_m) S_n S_m^T]`` and
    ``Delta(x') Delta~^T = [b_l(x', x_m) S_m^T]``; the output layer has ``b_L = 1``, which makes its term the
    ``blockdiag(H_n Hbar^+)`` of :func:`kfac_output_operator` on the training set.  The backward regression is
    computed in factored form (:func:`_ce_backward_regression`), accurate for saturated softmax outputs
    (probabilities down to the smallest float64) where the Gram's eigenvalues span more than ``1 / RANK_RTOL``.
    Source: arXiv:2010.00879 Sec. 4.3 (K-FAC) with the cross-entropy Fisher of its appendix;
    ``../shared/paper.md`` R7.

    Raises ``ValueError`` naming the argument on bad shapes, non-finite entries, ``S`` rows that are not thin
    factors of a softmax Hessian with every probability positive (``S_n 1 != 0`` or rank ``< C-1``), and on a
    backward kernel that is neither positive definite nor of rank one.
    """
    from theory.kfac_theory import factor_regression

    S = np.asarray(S)
    if S.dtype.kind not in "biuf":
        raise TypeError(f"S has dtype {S.dtype}: expected a real (float) array")
    S = S.astype(float)
    if S.ndim != 3 or S.shape[2] != S.shape[1] + 1 or S.shape[1] < 1:
        raise ValueError(f"S has shape {S.shape}: expected (N, C-1, C) with C >= 2")
    if not np.all(np.isfinite(S)):
        raise ValueError("S has non-finite entries: expected finite thin factors")
    n, a, c = S.shape
    L = len(backward_train)
    if not (len(backward_test) == len(nngp_train) == len(nngp_test) == L) or L == 0:
        raise ValueError("nngp_train, backward_train, nngp_test, backward_test must all have the same number "
                         f"L >= 1 of layers (got {len(nngp_train)}, {L}, {len(nngp_test)}, {len(backward_test)})")
    row_scale = np.abs(S).max(axis=(1, 2))
    off = np.abs(S.sum(axis=2)).max(axis=1)
    if np.any(off > 1e-8 * np.maximum(row_scale, 1e-300)):
        bad = int(np.argmax(off / np.maximum(row_scale, 1e-300)))
        raise ValueError(f"S[{bad}] rows do not sum to 0 (|S_n 1| = {off[bad]:.3g}, max |S_n| = {row_scale[bad]:.3g}): "
                         "expected thin factors of softmax Hessians (S_n^T S_n = diag(p_n) - p_n p_n^T)")
    sv = np.linalg.svd(S, compute_uv=False)                      # N x (C-1), ~ sqrt of the probabilities
    if np.any(sv[:, -1] <= 0.0):
        bad = int(np.argmin(sv[:, -1]))
        raise ValueError(f"S[{bad}] has rank < C-1 = {a} (a probability of exactly 0): the cross-entropy Fisher "
                         "of that sample is singular on 1^perp")
    if np.any(sv[:, -1] < 1e-150):
        bad = int(np.argmin(sv[:, -1]))
        raise ValueError(f"S[{bad}] has a singular value {sv[bad, -1]:.3g} < 1e-150 (a probability below ~1e-300): "
                         "the operator's entries ~ 1/sqrt(p) overflow float64; clip the logits")
    n_test = _finite_matrix("nngp_test[0]", nngp_test[0]).shape[0]
    if n_test == 0:
        return np.zeros((0, n * a))
    out = np.zeros((n_test * c, n * a))
    for l in range(L):
        Kb = _finite_matrix(f"backward_train[{l}]", backward_train[l], (n, n))
        Kb_x = _finite_matrix(f"backward_test[{l}]", backward_test[l], (n_test, n))
        Kz = _finite_matrix(f"nngp_train[{l}]", nngp_train[l], (n, n))
        Kz_x = _finite_matrix(f"nngp_test[{l}]", nngp_test[l], (n_test, n))
        rb = _ce_backward_regression(Kb_x, Kb, S, l)
        rz = factor_regression(Kz_x, Kz)
        out += n * rb * np.kron(rz, np.ones((c, a)))
    if not np.all(np.isfinite(out)):
        raise ValueError(f"the operator overflows float64 (largest finite entry {np.abs(out[np.isfinite(out)]).max():.3g}; "
                         f"smallest singular value of the S_n {sv[:, -1].min():.3g}): rescale the kernels or clip the logits")
    return out


@cached_derivation
def kfac_cross_entropy_derivation() -> Derivation:
    """K-FAC under cross-entropy: hidden layers N Pi, output layer blockdiag(H_n Hbar^+) Pi, mean alpha exact."""
    d = Derivation("K-FAC under cross-entropy: the output factor is the mean of the H_n",
                   r"H\,\Theta_{\rm KFAC}\Pi_H = N(L-1)\,\Pi_H + \mathrm{blockdiag}_n(H_n\bar H^+)\,\Pi_H,\quad"
                   r"\bar H = \tfrac1N\textstyle\sum_n H_n",
                   list(CE_CONDITIONS) + ["rank Delta~_l = N (C - 1) (M_l >= N (C - 1)) for hidden layers, "
                                          "rank Z_l = N for every layer", "pseudo-inverse factors (rho -> 0+)"])
    n, c, L = 4, 3, 3
    rng = np.random.default_rng(7)
    f = 1.2 * rng.standard_normal((n, c))
    p = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    Hs = _hessians(p)
    S = _thin(p)
    Pi = projector(n, c)

    def output_layer() -> bool:
        # Delta~_L[n] = S_n: backward Gram N Hbar; with P_Z = I only the diagonal sample blocks survive
        Dt = S.reshape(n * (c - 1), c)
        proj = n * Dt @ _pinv(Dt.T @ Dt) @ Dt.T
        mask = np.kron(np.eye(n), np.ones((c - 1, c - 1)))
        M = np.array([np.linalg.pinv(Sn.T) @ (np.eye(c) - 1.0 / c) for Sn in S])  # any M with S^T M = Pi
        prob = _blockdiag(S.transpose(0, 2, 1)) @ (proj * mask) @ _blockdiag(M)
        return np.allclose(prob, kfac_output_operator(Hs) @ Pi, atol=1e-12)

    d.add_step("output layer (Delta~_L[n] = S_n, P_Z = I): S^T [N Delta~ (Delta~^T Delta~)^+ Delta~^T o (I (x) 1 1^T)] M"
               " = blockdiag_n(H_n Hbar^+) Pi", "H Theta_L Pi", "blockdiag_n(H_n Hbar^+) Pi",
               "Delta~^T Delta~ = sum_n S_n^T S_n = N Hbar (random instance N = 4, C = 3)", checker=output_layer)
    def hidden_layer() -> bool:
        # transformed backward signals of a hidden layer (M = 12 >= N (C-1) units), inputs of rank N
        Dt = rng.standard_normal((n, c - 1, 12)).reshape(n * (c - 1), 12)
        Z = rng.standard_normal((n, 7))
        PD = Dt @ _pinv(Dt.T @ Dt) @ Dt.T
        PZ = Z @ _pinv(Z.T @ Z) @ Z.T
        op = n * PD * np.kron(PZ, np.ones((c - 1, c - 1)))
        M = np.array([np.linalg.pinv(Sn.T) @ (np.eye(c) - 1.0 / c) for Sn in S])
        return (np.allclose(op, n * np.eye(n * (c - 1)), atol=1e-10)
                and np.allclose(_blockdiag(S.transpose(0, 2, 1)) @ op @ _blockdiag(M), n * Pi, atol=1e-10))

    d.add_step("hidden layers: N P_Delta~ o (P_Z (x) 1 1^T) = N I (ranks N (C - 1), N), so S^T (N I) M = N Pi",
               "H Theta_l Pi", "N Pi", "the squared-loss K-FAC identity on the transformed factors (random "
               "instance)", checker=hidden_layer)
    h, hb = sp.symbols("h_n hbar", positive=True)
    B = sp.Matrix([[1, -1], [-1, 1]])
    d.add_step("C = 2: H_n = h_n [[1,-1],[-1,1]], H_n Hbar^+ = (h_n / hbar) Pi", h * B * (B / (4 * hb)),
               (h / hb) * B / 2, "Hbar^+ = [[1,-1],[-1,1]] / (4 hbar); the isotropy error is the coefficient of "
               "variation of p_n0 p_n1 over alpha")
    d.add_step("mean eigenvalue: tr(sum_n H_n Hbar^+) = N tr(Hbar Hbar^+) = N (C - 1), so alpha = N (L - 1) + 1",
               float(np.trace(kfac_output_operator(Hs))), float(n * (c - 1)), "exact at finite width",
               checker=lambda: abs(np.trace(kfac_output_operator(Hs)) - n * (c - 1)) < 1e-10)
    d.add_step("isotropic iff H_n = Hbar for every n (then H_n Hbar^+ = Pi)", "blockdiag_n(H_n Hbar^+) Pi",
               "Pi", "equal softmax outputs; otherwise the error is ||blockdiag((H_n - Hbar) Hbar^+)||_F / "
               "(alpha sqrt(N (C-1)))",
               checker=lambda: np.allclose(kfac_output_operator(np.repeat(Hs[:1], n, axis=0)) @ Pi, Pi, atol=1e-12))

    def first_order() -> bool:
        errs = []
        g = rng.standard_normal((n, c))
        for s in (1e-3, 1e-4):
            q = np.exp(s * g) / np.exp(s * g).sum(axis=1, keepdims=True)
            errs.append(abs(kfac_deviation(_hessians(q), L) / kfac_deviation_first_order(s * g, L) - 1))
        return errs[1] < errs[0] < 1e-2 and errs[1] < 1e-3

    d.add_step("first order in the output spread: the deviation / first-order formula -> 1 as the outputs -> 0",
               "kfac_deviation(H(s g))", "kfac_deviation_first_order(s g) (1 + O(s))",
               "H(u + delta p) - H(u) = diag(delta p) - u delta p^T - delta p u^T, delta p = Pi delta f / C, "
               "Hbar^+ -> C Pi", checker=first_order)
    d.conclusion = "alpha = N (L - 1) + 1 (mean, exact); isotropic only for equal H_n"
    d.check()
    return d


# ---------------------------------------------------------------------------------------------
# 6. unit-wise
# ---------------------------------------------------------------------------------------------
def unit_wise_output_operator(hessians) -> np.ndarray:
    """Unit-wise output layer in probability space: ``blockdiag_n(H_n diag(1/(p_c (1 - p_c))) Pi)`` (unit ``c``:
    ``u = S_n e_c / |S_n e_c|``, ``|S_n e_c|^2 = H_n[c, c] = p_c (1 - p_c)``)."""
    Hs = _check_hessians(hessians)
    n, c = Hs.shape[:2]
    Pi1 = np.eye(c) - np.full((c, c), 1.0 / c)
    diag = np.einsum("ncc->nc", Hs)
    return _blockdiag((Hs / diag[:, None, :]) @ Pi1[None])


def normalised_gaussian_moments(eigenvalues) -> np.ndarray:
    """``m_i = E[g_i^2 lam_i / sum_j lam_j g_j^2]`` for ``g ~ N(0, I)``: the eigenvalues of ``E[x x^T / |x|^2]``,
    ``x ~ N(0, diag(lam))``, ``m_i = int_0^inf lam_i / (1 + 2 lam_i t) prod_j (1 + 2 lam_j t)^{-1/2} dt``
    (``1/|x|^2 = int_0^inf e^{-t |x|^2} dt``; Gaussian integrals).  They sum to 1; equal lam give 1/k each.

    >>> normalised_gaussian_moments([2.0, 2.0, 2.0]).round(12).tolist()
    [0.333333333333, 0.333333333333, 0.333333333333]
    """
    from scipy.integrate import quad

    lam = np.asarray(eigenvalues, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or np.any(lam <= 0):
        raise ValueError(f"eigenvalues={lam.tolist()} is not allowed: expected positive numbers")
    scale = lam.max()
    lam = lam / scale

    def integrand(t, i):
        return lam[i] / (1 + 2 * lam[i] * t) * np.prod((1 + 2 * lam * t) ** -0.5)

    return np.array([quad(integrand, 0, np.inf, args=(i,), epsabs=0, epsrel=1e-12, limit=200)[0]
                     for i in range(lam.size)])


def unit_wise_limit_operator(hessians, hidden_total) -> np.ndarray:
    """Infinite-width unit-wise probability-space operator under cross-entropy:
    ``blockdiag_n(A_n sum-part + H_n diag(1/(p(1-p))) Pi)`` with the hidden part ``hidden_total * V_n diag(m) V_n^T``
    (``H_n = V_n diag(lam) V_n^T`` on ``1^perp``, ``m`` = :func:`normalised_gaussian_moments` of ``lam``):
    hidden backward signals ``delta in R^C`` of active units are isotropic Gaussians (output weights i.i.d.,
    gradient independence), and a unit contributes ``H delta delta^T Pi / (delta^T H delta)``.
    ``hidden_total = gamma sum_{l<L} M_l`` (the expected number of active hidden units)."""
    Hs = _check_hessians(hessians)
    n, c = Hs.shape[:2]
    blocks = []
    for H in Hs:
        lam, V = np.linalg.eigh(H)
        lam, V = lam[1:], V[:, 1:]       # drop the null direction (smallest eigenvalue 0, eigenvector 1/sqrt C)
        m = normalised_gaussian_moments(lam)
        blocks.append(float(hidden_total) * (V * m) @ V.T)
    return _blockdiag(np.array(blocks)) + unit_wise_output_operator(Hs)


@cached_derivation
def unit_wise_cross_entropy_derivation() -> Derivation:
    """Unit-wise under cross-entropy: per-unit rank-one terms; C = 2 exact count + 2; C >= 3 only uniform p."""
    d = Derivation("Unit-wise NGD under cross-entropy",
                   r"C = 2:\ H\Theta_{\rm unit}\Pi_H = \mathrm{diag}_n\big(\#\{\text{active hidden}\} + 2\big)\Pi_H;"
                   r"\quad C\ge3:\ \text{isotropic only for uniform } p_n",
                   list(CE_CONDITIONS) + ["Z_l full row rank (as for squared loss)", "pseudo-inverse per unit block"])
    rng = np.random.default_rng(5)

    def term_check() -> bool:
        c = 4
        f = rng.standard_normal(c)
        p = np.exp(f) / np.exp(f).sum()
        H = _hessians(p[None])[0]
        S = _thin(p[None])[0]
        M = np.linalg.pinv(S.T) @ (np.eye(c) - 1.0 / c)
        delta = rng.standard_normal(c)
        u = S @ delta / np.linalg.norm(S @ delta)
        lhs = S.T @ np.outer(u, u) @ M
        rhs = H @ np.outer(delta, delta) @ (np.eye(c) - 1.0 / c) / (delta @ H @ delta)
        return np.allclose(lhs, rhs, atol=1e-12)

    d.add_step("a unit with backward signal delta (C-vector) contributes u u^T, u = S delta / |S delta|; in "
               "probability space S^T u u^T M = H delta delta^T Pi / (delta^T H delta)", "S^T u u^T M",
               "H delta delta^T Pi / (delta^T H delta)", "S^T S = H, S^T M = Pi (random instance, C = 4)",
               checker=term_check)
    p0 = sp.Symbol("p", positive=True)
    H2 = sp.Matrix([[p0 * (1 - p0), -p0 * (1 - p0)], [-p0 * (1 - p0), p0 * (1 - p0)]])
    Pi2 = sp.Matrix([[1, -1], [-1, 1]]) / 2
    dl = sp.Matrix(sp.symbols("a b", real=True))
    d.add_step("C = 2: every term is Pi (range(H_n) is one-dimensional)",
               sp.simplify(H2 * dl * dl.T * Pi2 / (dl.T * H2 * dl)[0]), Pi2, "H = h (e0 - e1)(e0 - e1)^T")
    d.add_step("C = 2, output layer: two units (rows of W_L), each delta~ = S_n e_c != 0: contributes 2 Pi",
               sp.simplify(H2 * sp.diag(1 / (p0 * (1 - p0)), 1 / (p0 * (1 - p0))) * Pi2), 2 * Pi2,
               "so alpha = (number of active hidden units) + 2 per sample: gamma sum M_l + 2, exact for tanh")
    c = sp.Symbol("C", positive=True, integer=True)
    d.add_step("uniform p = 1/C: H = Pi / C, the output layer gives H diag(1/(p(1-p))) Pi = C/(C-1) Pi",
               (1 / c) * (c ** 2 / (c - 1)), c / (c - 1), "p_c (1 - p_c) = (C - 1)/C^2")
    d.add_step("uniform p: hidden terms average to Pi / (C - 1) (isotropic Gaussian delta, H = Pi/C)",
               float(np.sum(normalised_gaussian_moments([1.0, 1.0, 1.0]))), 1.0,
               "normalised Gaussian moments m_i = 1/(C-1) for equal eigenvalues: alpha -> gamma sum M_l/(C-1) + "
               "C/(C-1) as M -> infinity")

    def non_uniform() -> bool:
        p = np.array([[0.6, 0.3, 0.1]])
        Hs = _hessians(p)
        T = unit_wise_limit_operator(Hs, 100.0)
        Pi = projector(1, 3)
        a = np.trace(T) / 2
        return np.linalg.norm(T - a * Pi) > 1e-2 * a

    d.add_step("C >= 3, non-uniform p: the limit blockdiag_n(gamma sum M_l V diag(m) V^T + H diag(1/(p(1-p))) Pi) "
               "is not a multiple of Pi", "unit_wise_limit_operator(H(0.6, 0.3, 0.1))", "a Pi",
               "the normalised moments of unequal eigenvalues differ: not isotropic even at infinite width",
               checker=non_uniform)
    d.conclusion = "C = 2: gamma sum M_l + 2; C >= 3: not isotropic unless p uniform"
    d.check()
    return d


# ---------------------------------------------------------------------------------------------
# 8. the authors' variants
# ---------------------------------------------------------------------------------------------
@cached_derivation
def authors_variants_derivation() -> Derivation:
    """Function-space steps of the authors' "exact" and "exact_plus_mse" updates (random dense instance)."""
    d = Derivation("The authors' cross-entropy updates in function space",
                   r"\text{exact: }\Delta f = -\eta(H + \rho\Theta^{-1})^{-1}r;\quad "
                   r"\text{exact\_plus\_mse: }\Delta f = -\eta(H+\rho I)^{-1}r",
                   list(CE_CONDITIONS) + ["J has full row rank N C (Theta = J J^T / N invertible)"])
    n, c, P, rho = 3, 3, 30, 1e-3
    rng = np.random.default_rng(11)
    f = rng.standard_normal((n, c))
    p = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    J = rng.standard_normal((n * c, P))
    H = _blockdiag(_hessians(p))
    Theta = J @ J.T / n
    r = (p - np.eye(c)[[0, 1, 2]]).ravel()

    def push_through() -> bool:
        lhs = np.linalg.solve(J.T @ H @ J / n + rho * np.eye(P), J.T @ r / n)
        rhs = J.T @ np.linalg.solve(H @ Theta + rho * np.eye(n * c), r) / n
        return np.allclose(lhs, rhs, rtol=1e-8, atol=1e-12 * np.abs(lhs).max())

    d.add_step("push-through: (J^T H J / N + rho I)^{-1} J^T r / N = J^T (H Theta + rho I)^{-1} r / N",
               "(J^T H J/N + rho I)^{-1} J^T r / N", "J^T (H Theta + rho I)^{-1} r / N",
               "(A B + rho I)^{-1} A = A (B A + rho I)^{-1}", checker=push_through)

    def exact_fs() -> bool:
        lhs = Theta @ np.linalg.solve(H @ Theta + rho * np.eye(n * c), r)
        rhs = np.linalg.solve(H + rho * np.linalg.inv(Theta), r)
        return np.allclose(lhs, rhs, rtol=1e-8, atol=1e-12 * np.abs(rhs).max())

    d.add_step("exact: Delta f = -eta Theta (H Theta + rho I)^{-1} r = -eta (H + rho Theta^{-1})^{-1} r",
               "Theta (H Theta + rho I)^{-1}", "(H + rho Theta^{-1})^{-1}", "Theta invertible", checker=exact_fs)

    def limit() -> bool:
        out = []
        for eps in (1e-6, 1e-8):
            g = Theta @ np.linalg.solve(H @ Theta + eps * np.eye(n * c), r)
            out.append(np.linalg.norm(H @ g - r) / np.linalg.norm(r))
        Pi = projector(n, c)
        g = Theta @ np.linalg.solve(H @ Theta + 1e-8 * np.eye(n * c), r)
        return out[1] < out[0] < 1e-3 and np.allclose(Pi @ g, _pinv(H) @ r, rtol=1e-4, atol=1e-6)

    d.add_step("rho -> 0+: H Delta f -> -eta r (Delta p = -eta r to first order) and Pi Delta f -> -eta H^+ r",
               "lim H Theta (H Theta + rho I)^{-1} r", "r", "r in range(H); the part along 1 depends on Theta",
               checker=limit)

    def plus_mse() -> bool:
        K = J @ J.T
        dtheta = J.T @ np.linalg.solve(K, np.linalg.solve(H + rho * np.eye(n * c), r))
        return np.allclose(J @ dtheta, np.linalg.solve(H + rho * np.eye(n * c), r), rtol=1e-8)

    d.add_step("exact_plus_mse: J J^T K^{-1} (H + rho I)^{-1} r = (H + rho I)^{-1} r (exactly, any width)",
               "J J^T (J J^T)^{-1} (H + rho I)^{-1} r", "(H + rho I)^{-1} r", "K = J J^T invertible",
               checker=plus_mse)
    def damped_eigenvalues() -> bool:
        lam = np.linalg.eigvalsh(H)
        lam = lam[lam > 1e-12]
        got = np.sort(np.linalg.eigvals(H @ np.linalg.inv(H + rho * np.eye(n * c))).real)[-lam.size:]
        return np.allclose(got, np.sort(lam / (lam + rho)), rtol=1e-9)

    d.add_step("exact_plus_mse in probability space: H (H + rho I)^{-1} has eigenvalues lambda/(lambda + rho) "
               "on range(H): isotropic only as rho -> 0+", "H (H + rho I)^{-1}", "Pi + O(rho / lambda_min(H))",
               "lambda_min(H_n) ~ min_c p_nc (random instance)", checker=damped_eigenvalues)
    d.conclusion = "both move p by -eta (p - y) to first order as rho -> 0+; they differ by a logit shift along 1"
    d.check()
    return d


# ---------------------------------------------------------------------------------------------
# the registry hook: isotropy_result(..., loss="cross_entropy")
# ---------------------------------------------------------------------------------------------
def _classes(setting):
    C = setting.n_outputs
    if isinstance(setting.widths, (list, tuple)):
        C = setting.widths[-1]
    C = sp.sympify(C)
    if (C - 2).is_negative:
        raise ValueError(f"loss='cross_entropy' needs C >= 2 outputs (softmax over one logit is constant), got C = {C}")
    return C


def _transformed(setting, C):
    widths = setting.widths
    if isinstance(widths, (list, tuple)):
        widths = list(widths[:-1]) + [C - 1]
    return dataclasses.replace(setting, n_outputs=C - 1, widths=widths, loss="mse")


def _combined(title: str, first: Derivation, *rest: Optional[Derivation]) -> Derivation:
    d = Derivation(title, first.statement, list(first.assumptions))
    d.steps = list(first.steps)
    for other in rest:
        if other is not None:
            d.steps += [dataclasses.replace(s, name=f"[{other.title}] {s.name}") for s in other.steps]
    d.conclusion = first.conclusion
    return d


def cross_entropy_isotropy(entry, setting) -> IsotropyResult:
    """The probability-space constant of ``entry`` (a :class:`theory.registry.TheoryEntry`) under cross-entropy:
    ``H Theta_G Pi_H = alpha Pi_H`` (module docstring).  Raises :class:`NotIsotropic` where there is none."""
    C = _classes(setting)
    name = entry.name
    transformed = _transformed(setting, C)
    if name == "unit_wise":
        if C != 2:
            raise NotIsotropic(
                f"unit-wise NGD under cross-entropy with C = {C} >= 3: each unit contributes H_n delta delta^T Pi / "
                "(delta^T H_n delta) and the output layer H_n diag(1/(p(1-p))) Pi; their sum is a multiple of Pi only "
                "for uniform p_n (then gamma sum M_l/(C-1) + C/(C-1) as M -> infinity), not for the softmax outputs "
                "of a generic network, not even at infinite width (the squared-loss condition C = 1 applies to the "
                "transformed Jacobian J~ = S J, which has C - 1 rows per sample: C = 2)", "C = 1",
                unit_wise_cross_entropy_derivation())
        base = entry.derive(transformed)     # C' = 1: gamma sum M_l + 1 (the output unit of C = 1)
        value = sp.expand(base.value + 1)     # the C = 2 output layer has two units, each contributing Pi
        d = _combined("Unit-wise NGD under cross-entropy (C = 2): alpha = gamma sum_(l<L) M_l + 2",
                      unit_wise_cross_entropy_derivation(), factorisation_derivation(2), base.derivation)
        return IsotropyResult(name, value, list(CE_CONDITIONS) + [c for c in base.conditions if "C = 1" not in c]
                              + ["C = 2 (binary cross-entropy)"], d, base.exact_at_finite_width,
                              list(base.notes) + ["output layer: two units, each contributing Pi (not 1 as for C = 1)"])
    try:
        base = entry.derive(transformed)
    except NotIsotropic as exc:
        raise NotIsotropic(f"under cross-entropy (the squared-loss statement of the transformed Jacobian J~ = S J, "
                           f"C - 1 = {C - 1} rows per sample): {exc.reason}", exc.failed_assumption,
                           exc.derivation) from None
    conditions = list(CE_CONDITIONS) + [c.replace("N C", "N (C - 1)") for c in base.conditions]
    notes = list(base.notes)
    if name == "kfac":
        d = _combined("K-FAC under cross-entropy: alpha = N(L-1)+1 is the mean; isotropic iff the H_n agree",
                      kfac_cross_entropy_derivation(), factorisation_derivation(3), base.derivation)
        conditions.append("H_n equal across samples (equal softmax outputs); otherwise alpha is the mean eigenvalue "
                          "and the isotropy error is ||blockdiag_n((H_n - Hbar) Hbar^+)||_F / (alpha sqrt(N (C-1)))")
        notes.append("the output layer's backward factor is Hbar = mean_n H_n (theory.cross_entropy.kfac_deviation)")
        return IsotropyResult(name, base.value, conditions, d, base.exact_at_finite_width, notes)
    d = _combined(f"{entry.label} under cross-entropy: H Theta_G Pi_H = {base.value} Pi_H",
                  probability_space_derivation(), factorisation_derivation(3), newton_step_derivation(),
                  base.derivation)
    return IsotropyResult(name, base.value, conditions, d, base.exact_at_finite_width, notes)
