"""EKFAC: eigenvalue-corrected K-FAC (George et al. 2018, arXiv:1806.03884), in dual (thin) form.

Layer ``l``: inputs ``Z = Z_l`` (``N x m``, bias coordinate included) and backward signals ``Delta =
Delta_l`` flattened to ``N C x M_l``; the Jacobian row ``(n, c)`` is ``kron(delta_{n,c}, z_n)`` (the order
of ``theta_l = Wb_l.ravel()``).  K-FAC's factors ``A = Z^T Z / N`` and ``B = Delta^T Delta / N`` have
eigenbases ``U_A``, ``U_B``; EKFAC keeps the Kronecker eigenbasis and replaces K-FAC's eigenvalues
``b_j a_i`` by the second moment of the Jacobian rows in that basis:

    G_l = (U_B (x) U_A) diag(s) (U_B (x) U_A)^T,
    s_ji = (1/N) sum_{n,c} (U_B^T delta_{n,c})_j^2 (U_A^T z_n)_i^2,

and ``G = blockdiag(G_1, ..., G_L)``; ``(G + rho I)^{-1}`` acts as ``1/(s + rho)`` (``rho = 0``: the
pseudo-inverse, ``s = 0 -> 0``).

Thin form.  With the small Grams ``Z Z^T = W diag(t^2) W^T`` (``N x N``) and ``Delta Delta^T = V
diag(sigma^2) V^T`` (``N C x N C``) on their numerical ranges, ``U_A = Z^T W / t`` and ``U_B = Delta^T V /
sigma`` span the parameter directions the gradient can reach, and the rotated Jacobian entries are
``(U_B^T delta_{n,c})_j (U_A^T z_n)_i = V[(n,c), j] sigma_j W[n, i] t_i``, so

    s_ji = sigma_j^2 t_i^2 h_ji / N,    h_ji = sum_{n,c} V[(n,c), j]^2 W[n, i]^2 = ||v_j o (w_i (x) 1_C)||^2,

one GEMM (:func:`ekfac_eigenvalues`).  K-FAC's eigenvalues are ``b_j a_i = sigma_j^2 t_i^2 / N^2``, so
``s_ji = N b_j a_i h_ji``: EKFAC is K-FAC with every pair ``(j, i)`` reweighted by ``1/(N h_ji)``, and it
equals K-FAC exactly when ``h = 1/N``, e.g. when one eigenbasis is *flat* (``W[n, i]^2 = 1/N``, or
``sum_c V[(n,c), j]^2 = 1/N``, for all ``n``).  With ``w_ji = 1/(s_ji + rho)`` the formulas are K-FAC's:

    direction_l = Delta^T V [ (V^T R W) o w / N ] W^T Z,      R[(n,c), n'] = r_{nc} [n = n'],
    Theta_G,l(X2, X)[(a,c),(n,d)] = (1/N) sum_ji P2[(a,c),j] V[(n,d),j] Q2[a,i] W[n,i] w_ji,
    P2 = Delta(X2) Delta^T V,  Q2 = Z(X2) Z^T W     (train set: P2 = V diag(sigma^2), Q2 = W diag(t^2)),

i.e. the test rows' rotated coordinates ``Delta(X2) U_B`` and ``Z(X2) U_A`` times the singular values,
which cancel.  At ``rho = 0`` on the training set the layer block is a sum of rank-one projections,

    Theta_G,l = sum_ji u_ji u_ji^T,     u_ji = v_j o (w_i (x) 1_C) / ||v_j o (w_i (x) 1_C)||,

one per pair with ``h_ji > 0`` (derived in :mod:`theory.approximations.ekfac`): its trace is the number of
pairs (``N^2 C`` for a full-rank hidden layer, the same as K-FAC's ``N I``), but it is ``N I`` only for
special eigenbases.  Neither the scales ``sigma``, ``t`` nor the widths enter: the infinite-width limit
is the same sum over the eigenvectors of the limiting kernels, generically not a multiple of ``I``.

Numerical ranges: each factor Gram keeps its eigenvalues above ``rank_rtol`` times its largest (as
K-FAC); at ``rho = 0`` a pair is zero when ``h_ji <= rank_rtol * max h`` (disjoint supports of ``v_j`` and
``w_i``; their count is ``diagnostics["layers"][l]["zero_pairs"]``).  With ``rho > 0`` every positive
factor eigenvalue is kept (no division by it happens).  Cost per layer: two Grams, two small ``eigh``,
one ``N C x r_B x r_A`` GEMM for ``s`` and the K-FAC GEMMs for the direction; the operator is one
chunked contraction of cost ``N2 N (r_A r_B + C^2 r_B)``.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([8, 64, 64, 1], activation="relu", seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 8))
>>> theta = EKFACApproximation(net, X).operator()
>>> round(float(np.trace(theta)), 9)        # sum of N^2 (hidden layers) + N (output) unit projections
78.0
>>> bool(np.allclose(theta, 13 * np.eye(6), atol=1e-3))   # but not N(L-1)+1 = 13 times I
False
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from theory.approximations.ekfac import EKFAC_FLAT, FLAT_TOL, flatness, frame_contract, hadamard_weights
from theory.assumptions import KFAC_RANK, RHO_TO_ZERO, WELL_CONDITIONED, Flag
from theory.tolerances import ILL_CONDITIONED, RANK_RTOL
from theory.validation import check_nonnegative

from ..diagnosis import diagnose_factor, relation, roots_of
from .base import Approximation, reject_options, register_approximation
from .kfac import ThinGram, thin_gram

__all__ = ["EKFACApproximation", "EKFAC", "ekfac_eigenvalues"]


def ekfac_eigenvalues(gb: ThinGram, ga: ThinGram, n_samples: int, n_outputs: int = 1) -> np.ndarray:
    """EKFAC's eigenvalues on the kept ranges (``r_B x r_A``): ``s_ji = sigma_j^2 t_i^2 h_ji / N``, the
    second moments ``(1/N) sum_{n,c} (U_B^T delta_{n,c})_j^2 (U_A^T z_n)_i^2`` in thin coordinates
    (``h`` from :func:`theory.approximations.ekfac.hadamard_weights`, one GEMM).

    >>> g = thin_gram(np.eye(2)); b = thin_gram(np.full((2, 1), 1.0))
    >>> ekfac_eigenvalues(b, g, 2).round(12).tolist()    # sigma^2 = 2, t^2 = 1, h = 1/2: s = 2 * 1 * 0.5 / 2
    [[0.5, 0.5]]
    """
    h = hadamard_weights(gb.V, ga.V, n_outputs)
    return np.outer(gb.lam, ga.lam) * h / n_samples


@register_approximation("ekfac")
class EKFACApproximation(Approximation):
    """Eigenvalue-corrected K-FAC (George et al. 2018, arXiv:1806.03884), dual form (module docstring).

    Option: ``rank_rtol`` (eigenvalue cut of the factor Grams and the zero-pair cut of ``h``, relative).
    ``diagnostics``: per layer the factor ranks and condition numbers, the eigenvalue spread of ``s``,
    the number of zero pairs, the flatness of each eigenbasis, whether the layer equals K-FAC and its
    contribution to ``alpha`` when it is isotropic; ``predicted_alpha`` (``N(L-1)+1`` when every layer
    has a flat eigenbasis and full-rank factors, else None); ``failed_assumption`` (None or a sentence).
    """

    def _prepare(self, rank_rtol: float = RANK_RTOL, **options: Any) -> None:
        reject_options(self.name, options)
        self.rank_rtol = check_nonnegative("rank_rtol", rank_rtol, allow_zero=False)
        n, c = self.n_samples, self.n_outputs
        self.backward_grams: List[ThinGram] = []
        self.input_grams: List[ThinGram] = []
        self._weights: List[np.ndarray] = []
        self.eigenvalues: List[np.ndarray] = []
        layers, problems, contributions = [], [], []
        keep_all = self.damping > 0
        for l in range(1, self.depth + 1):
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            Z = self.factors.Z[l - 1]
            gb, ga = thin_gram(delta, self.rank_rtol, keep_all), thin_gram(Z, self.rank_rtol, keep_all)
            self.backward_grams.append(gb)
            self.input_grams.append(ga)
            s = ekfac_eigenvalues(gb, ga, n, c)
            h = hadamard_weights(gb.V, ga.V, c)
            if self.damping > 0:
                w = 1.0 / (s + self.damping)
                zero = int(np.sum(s <= 0))
            else:
                kept = h > self.rank_rtol * h.max() if h.size and h.max() > 0 else np.zeros(h.shape, bool)
                w = np.where(kept, 1.0 / np.where(kept, s, 1.0), 0.0)
                zero = int(h.size - kept.sum())
            self.eigenvalues.append(s)
            self._weights.append(w)
            # the spread of s over the rank-rtol ranges and the kept pairs (rho > 0 also keeps rounding-level
            # factor eigenvalues, whose s would only report rounding)
            cut = self.rank_rtol
            in_range = ((gb.lam > cut * gb.lam.max())[:, None] & (ga.lam > cut * ga.lam.max())[None, :]
                        & (h > cut * h.max())) if s.size else np.zeros(s.shape, bool)
            positive = s[in_range & (s > 0)]
            flat_in, flat_back = flatness(ga.V, gb.V, n, c)
            last = l == self.depth
            full = ga.full_rank and (gb.rank == c if last else gb.full_rank)
            flat = min(flat_in, flat_back) <= FLAT_TOL
            contribution = (1.0 if last else float(n)) if (flat and full and zero == 0) else None
            info = {"layer": l, "backward_gram_rank": gb.rank, "backward_gram_size": gb.size,
                    "backward_gram_condition": gb.condition_number, "input_gram_rank": ga.rank,
                    "input_gram_size": ga.size, "input_gram_condition": ga.condition_number,
                    "eigenvalue_condition": float(positive.max() / positive.min()) if positive.size else float("inf"),
                    "pairs": int(h.size), "zero_pairs": zero, "frame_trace": int(h.size - zero),
                    "input_basis_flatness": flat_in, "backward_basis_flatness": flat_back,
                    "equals_kfac": bool(flat), "contribution": contribution}
            contributions.append(contribution)
            layers.append(info)
            for label, g in (("backward", gb), ("input", ga)):
                if g.condition_number > ILL_CONDITIONED:
                    problems.append(Flag("factor_gram_ill_conditioned",
                                         f"layer {l}: {label} factor Gram is ill-conditioned on its kept range "
                                         f"({relation('condition number', g.condition_number, 'limit', ILL_CONDITIONED)})",
                                         WELL_CONDITIONED))
            if not full:
                need = c if last else n * c
                causes = []   # each deficient factor's cause (numerics.diagnosis), the first one's code
                if gb.rank < need:
                    causes.append(diagnose_factor(self.net, self.factors, self.X, "backward", l, gb.rank,
                                                  self.rank_rtol, with_head=False))
                if not ga.full_rank:
                    causes.append(diagnose_factor(self.net, self.factors, self.X, "input", l, ga.rank,
                                                  self.rank_rtol, with_head=False))
                problems.append(Flag(causes[0].code if causes else "rank_deficient",
                                     f"layer {l}: rank(Delta_{l}) = {gb.rank} (needs {need}), rank(Z_{l}) = {ga.rank} "
                                     f"(needs {n}): the layer's frame has fewer than {need * n} pairs"
                                     + (": " + "; ".join(d.message for d in causes) if causes else ""), KFAC_RANK,
                                     roots_of(causes)))
            elif not flat:
                problems.append(Flag("no_flat_eigenbasis",
                                     f"layer {l}: neither Kronecker factor has a flat eigenbasis (max |N W_ni^2 - 1| = "
                                     f"{flat_in:.3g}, max |N sum_c V_(n,c)j^2 - 1| = {flat_back:.3g} > {FLAT_TOL:g}): "
                                     f"the layer block is a sum of {h.size - zero} Hadamard-frame projections, not "
                                     f"{'I' if last else 'N I'}", EKFAC_FLAT))
        self.diagnostics.update(
            layers=layers, rank_rtol=self.rank_rtol,
            predicted_alpha=(float(sum(contributions)) if all(x is not None for x in contributions) else None))
        if self.damping > 0:
            problems.append(Flag("damping_positive", f"damping rho = {self.damping:g} > 0: eigenvalues "
                                 "s_ji / (s_ji + rho) differ, so Theta_G is not a multiple of I", RHO_TO_ZERO))
        self.set_flags(problems)

    # -- public interface -----------------------------------------------------------------------
    def direction(self, residual) -> List[np.ndarray]:
        """``(G + rho I)^{-1} J^T r / N`` per layer: ``Delta^T V [(V^T R W) o w / N] W^T Z``."""
        r = self.residual_matrix(residual)
        n, c = self.n_samples, self.n_outputs
        out = []
        for l in range(1, self.depth + 1):
            gb, ga = self.backward_grams[l - 1], self.input_grams[l - 1]
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            core = np.einsum("nci,nc,nj->ij", gb.V.reshape(n, c, -1), r, ga.V, optimize=True)
            middle = gb.V @ ((core * self._weights[l - 1]) @ ga.V.T) / n          # (N C, N)
            out.append(delta.T @ (middle @ self.factors.Z[l - 1]))
        return out

    def operator(self, X2=None) -> np.ndarray:
        """``Theta_G(X2, X)`` summed over layers, shape ``(N2 C, N C)``."""
        n, c = self.n_samples, self.n_outputs
        f2 = self.factors_at(X2)
        total = np.zeros((f2.n_samples * c, n * c))
        for l in range(1, self.depth + 1):
            total += self.layer_operator(l, None if X2 is None else f2)
        return total

    def layer_operator(self, l: int, factors2=None) -> np.ndarray:
        """Layer ``l``'s term ``J_l(X2) (G_l + rho I)^{-1} J_l^T / N`` (``factors2=None``: train x train)."""
        l = self.factors.check_layer(l)
        n, c = self.n_samples, self.n_outputs
        gb, ga = self.backward_grams[l - 1], self.input_grams[l - 1]
        if factors2 is None:
            P2, Q2 = gb.V * gb.lam, ga.V * ga.lam
        else:
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            delta2 = factors2.Delta[l - 1].reshape(factors2.n_samples * c, -1)
            P2 = delta2 @ (delta.T @ gb.V)
            Q2 = factors2.Z[l - 1] @ (self.factors.Z[l - 1].T @ ga.V)
        return frame_contract(P2, gb.V, Q2, ga.V, self._weights[l - 1], c) / n

    def dense_matrix(self) -> np.ndarray:
        """``blockdiag_l (U_B (x) U_A) diag(s) (U_B (x) U_A)^T`` straight from the definition: full
        eigenbases of the explicit ``B = Delta^T Delta / N`` and ``A = Z^T Z / N`` (``eigh``) and ``s`` as
        the mean squared entries of the explicit ``J_l (U_B (x) U_A)`` -- no code shared with the thin path."""
        from ..dense import _check_small, dense_layer_jacobian

        _check_small(self.net.n_params)
        n, c = self.n_samples, self.n_outputs
        blocks = []
        for l in range(1, self.depth + 1):
            delta = self.factors.Delta[l - 1].reshape(n * c, -1)
            Z = self.factors.Z[l - 1]
            _, UB = np.linalg.eigh(delta.T @ delta / n)
            _, UA = np.linalg.eigh(Z.T @ Z / n)
            Q = np.kron(UB, UA)
            s = np.sum((dense_layer_jacobian(self.factors, l) @ Q) ** 2, axis=0) / n
            blocks.append((Q * s) @ Q.T)
        P = sum(b.shape[0] for b in blocks)
        out = np.zeros((P, P))
        offset = 0
        for b in blocks:
            k = b.shape[0]
            out[offset:offset + k, offset:offset + k] = (b + b.T) / 2
            offset += k
        return out


#: Short alias.
EKFAC = EKFACApproximation
