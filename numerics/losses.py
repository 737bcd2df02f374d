"""The two losses: squared error (``"mse"``) and softmax cross-entropy (``"cross_entropy"``).

Definitions (``../shared/conventions.md``, "Loss" and "Cross-entropy"):

* ``"mse"``: ``Loss = 1/(2N) sum_n ||f(x_n) - y_n||^2``, residual ``r = f - Y``, Fisher ``F = J^T J / N``.
* ``"cross_entropy"``: logits ``f(x_n) in R^C`` (``C >= 2``), ``p_n = softmax(f(x_n))``, targets one-hot
  (or probability vectors), ``Loss = (1/N) sum_n -y_n^T log p_n``, residual ``r = p - Y`` (so the gradient is
  ``J^T r / N``), Fisher ``F = J^T H J / N`` with ``H = blockdiag_n(H_n)``, ``H_n = diag(p_n) - p_n p_n^T``.

Cross-entropy as a transformation of the Jacobian factors
---------------------------------------------------------
``H_n`` is PSD of rank ``C - 1`` (null space: the all-ones direction, a logit shift softmax cannot see).
With ``q = sqrt(p_n)`` (a unit vector) ``H_n = D^{1/2} (I - q q^T) D^{1/2}``, ``D = diag(p_n)``; with
``U_n`` (``C x (C-1)``) an orthonormal basis of ``q^perp`` (a Householder reflection, no cancellation)
the *thin factor*

    S_n = U_n^T diag(sqrt p_n)        ((C-1) x C),       S_n^T S_n = H_n,

is computed to relative accuracy from ``sqrt(p)`` (no eigendecomposition).  Hence
``F = J~^T J~ / N`` with ``J~ = S J`` (``S = blockdiag_n S_n``): every block of the cross-entropy Fisher
is the same block of the squared-loss Fisher of a network whose backward signals are

    Delta~_l[n] = S_n Delta_l[n]        ((C-1) x M_l per sample),

i.e. **every approximation under cross-entropy is its squared-loss self on the transformed factors**
(:func:`transform_factors`; K-FAC's ``B_l = Delta~^T Delta~ / N = sum_n Delta_n^T H_n Delta_n / N``).
``S_n`` differs from the PSD root ``H_n^{1/2}`` (:func:`hessian_sqrt`) only by a per-sample rotation of
its row space, ``S_n = V_n H_n^{1/2}`` with ``V_n`` orthonormal on ``range(H_n)`` -- invisible to every
approximation, which only sees ``J~^T J~`` (tested) -- and, having ``C - 1`` rows, keeps the
transformed layer Grams invertible, so the squared-loss solvers apply unchanged.

The residual ``p - y`` lies in ``range(H_n) = 1^perp`` (p interior); the *residual map*
``M_n = U_n^T diag(1/sqrt p_n) Pi`` (``Pi = I - 1 1^T / C``) satisfies ``S_n^T M_n = Pi``, so
``J^T Pi r = J~^T M r``: the cross-entropy step is the squared-loss step of the transformed factors on the
transformed residual ``M r`` (:meth:`CrossEntropyGeometry.transform_residual`).

Operators.  With ``Theta~ = J~ G^+ J~^T / N`` (the squared-loss operator of the transformed factors):

* probability space (training set): ``H Theta_G Pi = S^T Theta~ M`` -- it equals ``alpha Pi`` iff
  ``Theta~ = alpha I`` (:meth:`CrossEntropyGeometry.probability_operator`);
* logit space: ``Theta_G Pi = J G^+ J^T Pi / N``, the map from the residual ``p - y`` to the first-order
  logit change ``-Delta f / eta``; it is the only part of ``J G^+ J^T / N`` with a ``rho -> 0+`` limit
  (along the all-ones directions ``(G + rho I)^{-1} J^T`` diverges like ``1/rho``).

>>> import numpy as np
>>> p = softmax(np.array([[0.0, 1.0, -1.0]]))
>>> S = thin_factor(p)
>>> bool(np.allclose(S[0].T @ S[0], hessian(p)[0], atol=1e-15))
True
>>> round(cross_entropy_loss(np.zeros((2, 3)), np.eye(3)[:2]), 12) == round(float(np.log(3)), 12)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from theory.validation import check_choice, check_matrix

from .factors import JacobianFactors

__all__ = [
    "LOSSES", "check_loss", "softmax", "log_softmax", "hessian", "hessian_sqrt", "hessian_pinv_sqrt",
    "thin_factor", "residual_map", "check_targets", "loss_value", "mse_loss", "cross_entropy_loss", "residual",
    "accuracy", "newton_residual", "CrossEntropyGeometry", "transform_factors", "TARGET_ATOL",
    "RANGE_RTOL"
]

LOSSES = ("mse", "cross_entropy")

#: Probability-vector targets must have entries >= -TARGET_ATOL and rows summing to 1 within
#: ``TARGET_ATOL * C``: a one-hot row is exact, a row of floats summing to 1 is off by a few eps.
TARGET_ATOL = 1e-9

#: A cross-entropy residual must lie in ``range(H) = 1^perp`` per sample: ``|sum_c r_nc| <= RANGE_RTOL *
#: (1 + max_c |r_nc|)``.  ``p - y`` meets it to rounding (``softmax`` rows sum to 1 within ``C eps``); a
#: squared-loss residual ``f - y`` misses it by O(1).
RANGE_RTOL = 1e-9


def check_loss(loss) -> str:
    """``"mse"`` or ``"cross_entropy"`` (``ValueError`` naming the allowed names).

    >>> check_loss("xent")
    Traceback (most recent call last):
    ...
    ValueError: loss='xent' is unknown; allowed: mse, cross_entropy
    """
    return check_choice("loss", loss, LOSSES)


def log_softmax(logits) -> np.ndarray:
    """``log softmax`` per row, shifted by the row maximum (no overflow; exact for any finite logits)."""
    F = np.asarray(logits, dtype=float)
    shifted = F - F.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def softmax(logits) -> np.ndarray:
    """``p_n = softmax(f(x_n))`` per row, ``(N, C)``.

    >>> softmax(np.array([[1000.0, 1000.0]])).tolist()
    [[0.5, 0.5]]
    """
    return np.exp(log_softmax(logits))


def _probabilities(p, name: str = "p") -> np.ndarray:
    p = check_matrix(name, p)
    if p.shape[1] < 2:
        raise ValueError(f"{name} has {p.shape[1]} column(s): cross-entropy needs C >= 2 classes")
    if np.any(p <= 0.0):
        n, c = np.argwhere(p <= 0.0)[0]
        raise ValueError(f"{name}[{n}, {c}] = {float(p[n, c])!r}: softmax probabilities must be > 0 (a zero probability "
                         "means a logit gap beyond ~745, where H_n loses rank beyond the all-ones direction)")
    return p


def hessian(p) -> np.ndarray:
    """``H_n = diag(p_n) - p_n p_n^T`` for every row of ``p``: ``(N, C, C)``.

    >>> hessian(np.array([[0.5, 0.5]]))[0].tolist()
    [[0.25, -0.25], [-0.25, 0.25]]
    """
    p = _probabilities(p)
    H = -p[:, :, None] * p[:, None, :]
    # diagonal p_c (1 - p_c) with 1 - p_c = the sum of the OTHER probabilities (prefix + suffix sums, which
    # never contain p_c): relatively accurate also when p_c ~ 1
    idx = np.arange(p.shape[1])
    zero = np.zeros((p.shape[0], 1))
    before = np.hstack([zero, np.cumsum(p, axis=1)[:, :-1]])
    after = np.hstack([np.cumsum(p[:, ::-1], axis=1)[:, ::-1][:, 1:], zero])
    H[:, idx, idx] = p * (before + after)
    return H


def _householder_basis(q: np.ndarray) -> np.ndarray:
    """``U`` (``N, C, C-1``): orthonormal bases of ``q_n^perp`` for unit vectors ``q_n`` with positive entries.

    The reflection ``I - 2 w w^T / w^T w``, ``w = q + e_k`` (``k`` the largest entry, so no cancellation),
    maps ``q`` to ``-e_k``; its other columns are orthonormal and orthogonal to ``q``.
    """
    n, c = q.shape
    k = np.argmax(q, axis=1)
    w = q.copy()
    w[np.arange(n), k] += 1.0
    refl = np.eye(c)[None] - 2.0 * w[:, :, None] * w[:, None, :] / np.sum(w * w, axis=1)[:, None, None]
    keep = np.ones((n, c), dtype=bool)
    keep[np.arange(n), k] = False
    return refl.transpose(0, 2, 1)[keep].reshape(n, c - 1, c).transpose(0, 2, 1)


def thin_factor(p) -> np.ndarray:
    """``S_n = U_n^T diag(sqrt p_n)`` (``(N, C-1, C)``) with ``S_n^T S_n = H_n`` (module docstring)."""
    p = _probabilities(p)
    q = np.sqrt(p)
    return _householder_basis(q).transpose(0, 2, 1) * q[:, None, :]


def residual_map(p) -> np.ndarray:
    """``M_n = U_n^T diag(1/sqrt p_n) (I - 1 1^T / C)`` (``(N, C-1, C)``): ``S_n^T M_n = I - 1 1^T / C``.

    >>> p = softmax(np.array([[0.3, -0.2, 1.0]]))
    >>> bool(np.allclose(thin_factor(p)[0].T @ residual_map(p)[0], np.eye(3) - 1 / 3, atol=1e-14))
    True
    """
    p = _probabilities(p)
    q = np.sqrt(p)
    c = p.shape[1]
    M = _householder_basis(q).transpose(0, 2, 1) / q[:, None, :]
    return M - M.sum(axis=2, keepdims=True) / c


def hessian_sqrt(p) -> np.ndarray:
    """The PSD square root ``H_n^{1/2}`` (``(N, C, C)``, from ``eigh`` of ``H_n``, eigenvalues clipped at 0).

    The square root is not Lipschitz at 0, so eigenvalues below ``eps |H_n|`` (a probability below ~1e-16)
    carry an absolute error ``~ sqrt(eps |H_n|)``: these are definitions for checks; the approximations use the
    thin factor (:func:`thin_factor`), which is relatively accurate for any probabilities."""
    lam, V = np.linalg.eigh(hessian(p))
    out = (V * np.sqrt(np.maximum(lam, 0.0))[:, None, :]) @ V.transpose(0, 2, 1)
    return (out + out.transpose(0, 2, 1)) / 2


def hessian_pinv_sqrt(p) -> np.ndarray:
    """``H_n^{+1/2}`` (pseudo-inverse: eigenvalues ``<= RANK_RTOL`` times the largest dropped);
    ``H^{1/2} H^{+1/2} = I - 1 1^T / C`` for interior ``p``."""
    from theory.tolerances import RANK_RTOL

    lam, V = np.linalg.eigh(hessian(p))
    keep = lam > RANK_RTOL * lam[:, -1:]
    inv = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
    out = (V * inv[:, None, :]) @ V.transpose(0, 2, 1)
    return (out + out.transpose(0, 2, 1)) / 2


def check_targets(name: str, Y, n: int, c: int, loss: str = "mse") -> np.ndarray:
    """Targets ``(N, C)`` (``(N,)`` accepted for ``C = 1``), finite; for cross-entropy one-hot rows or
    probability vectors (entries ``>= 0`` summing to 1), and ``C >= 2``.

    >>> check_targets("Y", [[0.5, 0.5], [1.0, 0.2]], 2, 2, "cross_entropy")
    Traceback (most recent call last):
    ...
    ValueError: Y row 1 = [1.0, 0.2] is not allowed for loss='cross_entropy': expected one-hot rows (or probability vectors: entries >= 0 summing to 1)
    """
    loss = check_loss(loss)
    Y = np.asarray(Y, dtype=float) if not isinstance(Y, np.ndarray) else Y.astype(float, copy=False)
    if c == 1 and Y.shape == (n,):
        Y = Y.reshape(n, 1)
    Y = check_matrix(name, Y, ncols=c)
    if Y.shape[0] != n:
        raise ValueError(f"{name} has {Y.shape[0]} rows, the inputs have {n}")
    if loss == "cross_entropy":
        if c < 2:
            raise ValueError(f"loss='cross_entropy' needs C >= 2 outputs (softmax over one logit is constant), "
                             f"the network has C = {c}")
        bad = np.flatnonzero(np.any(Y < -TARGET_ATOL, axis=1) | (np.abs(Y.sum(axis=1) - 1.0) > TARGET_ATOL * c))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} row {i} = {Y[i].tolist()} is not allowed for loss='cross_entropy': expected "
                             "one-hot rows (or probability vectors: entries >= 0 summing to 1)")
    return Y


def mse_loss(outputs, targets) -> float:
    """``1/(2N) sum_n ||f(x_n) - y_n||^2``."""
    diff = np.asarray(outputs, dtype=float) - np.asarray(targets, dtype=float)
    return float(0.5 * np.sum(diff * diff) / diff.shape[0])


def cross_entropy_loss(logits, targets) -> float:
    """``(1/N) sum_n -y_n^T log softmax(f(x_n))`` (``0 log 0 = 0`` for zero target entries)."""
    logp = log_softmax(logits)
    Y = np.asarray(targets, dtype=float)
    return float(-np.sum(np.where(Y != 0, Y * logp, 0.0)) / Y.shape[0])


def loss_value(outputs, targets, loss: str = "mse") -> float:
    """The loss of outputs (logits for cross-entropy) against targets, both ``(N, C)``.

    >>> loss_value(np.array([[1.0], [3.0]]), np.zeros((2, 1)))
    2.5
    """
    loss = check_loss(loss)
    outputs, targets = np.asarray(outputs, dtype=float), np.asarray(targets, dtype=float)
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs has shape {outputs.shape} but targets has shape {targets.shape}: "
                         "expected equal (N, C) shapes")
    return mse_loss(outputs, targets) if loss == "mse" else cross_entropy_loss(outputs, targets)


def residual(outputs, targets, loss: str = "mse") -> np.ndarray:
    """The residual whose ``J^T r / N`` is the gradient: ``f - Y`` (mse) or ``softmax(f) - Y`` (cross-entropy)."""
    loss = check_loss(loss)
    outputs = np.asarray(outputs, dtype=float)
    return outputs - targets if loss == "mse" else softmax(outputs) - targets


def accuracy(outputs, targets) -> float:
    """Fraction of samples classified correctly: ``argmax`` agreement for ``C >= 2`` (logits or outputs vs
    one-hot targets), sign agreement for ``C = 1`` (the authors' +-0.5 binary labels).

    >>> accuracy(np.array([[0.2, 0.1], [0.0, 1.0]]), np.eye(2)), accuracy(np.array([[0.3], [-0.1]]), [[0.5], [0.5]])
    (1.0, 0.5)
    """
    F, Y = np.asarray(outputs, dtype=float), np.asarray(targets, dtype=float)
    if F.ndim == 1:
        F = F[:, None]
    if Y.ndim == 1:
        Y = Y[:, None]
    if F.shape[1] == 1:
        return float(np.mean(np.sign(F[:, 0]) == np.sign(Y[:, 0])))
    return float(np.mean(np.argmax(F, axis=1) == np.argmax(Y, axis=1)))


def newton_residual(p, r, damping: float = 0.0) -> np.ndarray:
    """``(H_n + rho I)^{-1} r_n`` per sample (``rho = 0``: ``H_n^+ r_n``), ``(N, C)``: the per-sample
    (damped) Newton step in logit space on the cross-entropy, the residual of the authors' "exact_plus_mse".

    ``rho = 0``: for ``r`` in ``1^perp``, ``H (r / p) = r - p (1^T r) = r`` and ``H 1 = 0``, so
    ``H^+ r = Pi (r / p)`` (elementwise division, then centred): no eigendecomposition.  ``rho > 0``: a solve.

    >>> p = np.array([[0.5, 0.25, 0.25]]); r = np.array([[-0.5, 0.25, 0.25]])
    >>> bool(np.allclose(hessian(p)[0] @ newton_residual(p, r)[0], r[0], rtol=0, atol=1e-15))
    True
    """
    p = _probabilities(p)
    r = np.asarray(r, dtype=float).reshape(p.shape)
    if damping > 0:
        return np.linalg.solve(hessian(p) + damping * np.eye(p.shape[1])[None], r[:, :, None])[:, :, 0]
    x = r / p
    return x - x.mean(axis=1, keepdims=True)


def transform_factors(factors: JacobianFactors, S: np.ndarray) -> JacobianFactors:
    """Factors of ``J~ = S J``: ``Delta~_l[n] = S_n Delta_l[n]`` (``C' = S.shape[1]`` rows per sample), the
    same ``Z_l``.  ``outputs`` is NaN (``(N, C')``): the transformed net has no outputs of its own, and a
    caller that reads them must get a loud error, not numbers (the logits are kept by the approximation)."""
    n, c_new = S.shape[0], S.shape[1]
    deltas = [np.einsum("nac,ncm->nam", S, D, optimize=True) for D in factors.Delta]
    return JacobianFactors(Z=list(factors.Z), Delta=deltas, outputs=np.full((n, c_new), np.nan))


def _split_left(factors: JacobianFactors, c: int):
    """``J(X2)`` as two factor sets with ``C - 1`` rows per sample: ``J = (I (x) Q) J_Q + (I (x) e) J_1``
    with ``Q`` an orthonormal basis of ``1^perp`` and ``e = 1 / sqrt C`` (``J_1`` padded with zero rows)."""
    Q = _householder_basis(np.full((1, c), 1.0 / np.sqrt(c)))[0]                    # (C, C-1)
    e = np.full(c, 1.0 / np.sqrt(c))
    n2 = factors.n_samples
    dq = [np.einsum("ca,ncm->nam", Q, D, optimize=True) for D in factors.Delta]
    d1 = []
    for D in factors.Delta:
        pad = np.zeros((n2, c - 1, D.shape[2]))
        pad[:, 0, :] = np.einsum("c,ncm->nm", e, D)
        d1.append(pad)
    nan = np.full((n2, c - 1), np.nan)
    return Q, e, JacobianFactors(list(factors.Z), dq, nan), JacobianFactors(list(factors.Z), d1, nan)


@dataclass(frozen=True)
class CrossEntropyGeometry:
    """The per-sample objects of cross-entropy at logits ``f(X)``: ``p`` (``N x C``), the thin factor ``S``
    and the residual map ``M`` (both ``N x (C-1) x C``); see the module docstring."""

    logits: np.ndarray
    p: np.ndarray
    S: np.ndarray
    M: np.ndarray

    @classmethod
    def at(cls, logits) -> "CrossEntropyGeometry":
        logits = check_matrix("logits", logits)
        if logits.shape[1] < 2:
            raise ValueError(f"loss='cross_entropy' needs C >= 2 outputs (softmax over one logit is constant), "
                             f"the network has C = {logits.shape[1]}")
        p = softmax(logits)
        return cls(logits, p, thin_factor(p), residual_map(p))

    @property
    def n_samples(self) -> int:
        return int(self.p.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.p.shape[1])

    def hessian(self) -> np.ndarray:
        return hessian(self.p)

    def projector(self) -> np.ndarray:
        """``Pi_H = blockdiag_n(I - 1 1^T / C)``, ``(N C, N C)``: the orthogonal projector onto range(H)."""
        c = self.n_classes
        return np.kron(np.eye(self.n_samples), np.eye(c) - np.full((c, c), 1.0 / c))

    def residual(self, Y) -> np.ndarray:
        """``p - Y`` (``N x C``)."""
        return self.p - np.asarray(Y, dtype=float)

    def check_in_range(self, name: str, r: np.ndarray) -> None:
        """``ValueError`` when a residual has a component along some sample's all-ones direction."""
        sums = np.abs(r.sum(axis=1))
        bound = RANGE_RTOL * (1.0 + np.max(np.abs(r), axis=1))
        bad = np.flatnonzero(sums > bound)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} row {i} sums to {r[i].sum():.3g}: a cross-entropy residual p - y lies in "
                             "range(H) = {r : sum_c r_c = 0} per sample (did you pass f - y instead of p - y?)")

    def transform_residual(self, r: np.ndarray) -> np.ndarray:
        """``M r`` (``N x (C-1)``): ``J~^T (M r) = J^T Pi r``."""
        return np.einsum("nac,nc->na", self.M, r)

    def left(self, A: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """``blockdiag_n(blocks_n) A`` for ``A`` with sample-major rows."""
        n, a, b = blocks.shape
        return np.einsum("nab,nbk->nak", blocks, A.reshape(n, b, -1)).reshape(n * a, -1)

    def right(self, A: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """``A blockdiag_n(blocks_n)`` for ``A`` with sample-major columns."""
        n, a, b = blocks.shape
        return np.einsum("kna,nab->knb", A.reshape(A.shape[0], n, a), blocks).reshape(A.shape[0], n * b)

    def probability_operator(self, transformed: np.ndarray) -> np.ndarray:
        """``H Theta_G Pi = S^T Theta~ M`` (``N C x N C``) from the transformed operator ``Theta~``."""
        return self.right(self.left(transformed, self.S.transpose(0, 2, 1)), self.M)

    def logit_operator(self, transformed_operator, factors2: JacobianFactors) -> np.ndarray:
        """``J(X2) G^+ J^T Pi / N`` (``N2 C x N C``) from ``transformed_operator(F)`` = ``J_F G^+ J~^T / N`` for
        factor sets ``F`` with ``C - 1`` rows per sample (the approximation's own ``operator``)."""
        c = self.n_classes
        Q, e, fq, f1 = _split_left(factors2, c)
        n2 = factors2.n_samples
        oq = np.asarray(transformed_operator(fq)).reshape(n2, c - 1, -1)
        o1 = np.asarray(transformed_operator(f1)).reshape(n2, c - 1, -1)[:, 0, :]
        raw = np.einsum("ca,nak->nck", Q, oq) + e[None, :, None] * o1[:, None, :]
        return self.right(raw.reshape(n2 * c, -1), self.M)


def probability_isotropy_error(P: np.ndarray, n_classes: int):
    """``(||P - a Pi||_F / ||a Pi||_F, a)`` for a probability-space operator ``P = H Theta_G Pi`` with
    ``a = tr(P) / tr(Pi)`` (``tr Pi = N (C - 1)``): zero iff ``P = a Pi``.

    >>> g = CrossEntropyGeometry.at(np.zeros((2, 3)))
    >>> err, a = probability_isotropy_error(2.0 * g.projector(), 3)
    >>> err < 1e-15, round(a, 12)
    (True, 2.0)
    """
    P = np.asarray(P, dtype=float)
    nc = P.shape[0]
    c = int(n_classes)
    n = nc // c
    Pi = np.kron(np.eye(n), np.eye(c) - np.full((c, c), 1.0 / c))
    a = float(np.trace(P)) / (n * (c - 1))
    if a == 0.0:
        raise ValueError("the probability-space operator has zero trace: the isotropy error relative to a Pi is "
                         "undefined")
    return float(np.linalg.norm(P - a * Pi) / (abs(a) * np.linalg.norm(Pi))), a


__all__.append("probability_isotropy_error")
