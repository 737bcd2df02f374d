"""Unit-wise Fisher: one block per unit (its fan-in weights and bias), batched over units in dual form.

Unit ``i`` of layer ``l`` owns row ``i`` of ``Wb_l`` (contiguous in ``theta``).  Its Jacobian is
``J_{l,i}[(n,c), :] = Delta_l[n,c,i] z_n``, its Fisher block ``G_{l,i} = J_{l,i}^T J_{l,i} / N`` and
``G = blockdiag_{l,i}(G_{l,i})``.  With ``delta_i = Delta_l[:, :, i]`` flattened (``N C``) the per-unit
dual Gram is

    K_{l,i} = J_{l,i} J_{l,i}^T = (delta_i delta_i^T) o (Z Z^T (x) 1_C 1_C^T)       (N C x N C),

and by push-through ``(G_i + rho I)^{-1} J_i^T r / N = J_i^T (K_i + N rho I)^{-1} r``, so

    direction_l = W^T Z,   W[n, i] = sum_c Delta_l[n,c,i] v_i[n,c],   v_i = (K_i + N rho I)^{-1} r,
    Theta_G(X2, X) = sum_{l,i} K_{l,i}(X2, X) (K_{l,i} + N rho I)^{-1}.

Every unit's system is solved in a batch (stacked Cholesky factorisations, in chunks of units to bound
memory); the direction is then one GEMM per layer.  Three methods, recorded per layer in
``diagnostics["methods"]``:

* ``"batched_cholesky"`` (``rho > 0`` or ``relative_damping > 0``): Cholesky of ``K_i + (N rho + lambda s_i) I``.

Per-unit relative damping (option ``relative_damping = lambda >= 0``): each unit's dual Gram is
shifted by ``lambda s_i`` where ``s_i = tr(K_{l,i}) / (N C)`` is the *scale* of the unit, the mean
diagonal entry of its ``N C x N C`` dual Gram, ``s_i = mean_n ||delta_i(x_n)||^2 ||z_n||^2``.  In
parameter space this is ``(G_{l,i} + rho_i I)^{-1}`` with ``rho_i = lambda s_i / N = lambda tr(G_{l,i}) / (N C)``
(push-through: ``N rho_i = lambda s_i``), i.e. a damping that is the same fraction of every unit's
own Fisher block however small its backward signal.  A unit with ``s_i = 0`` (dead on every input)
contributes nothing either way.
* ``"closed_form_projection"`` (``rho = 0``, ``Z Z^T`` positive definite): with ``s_n = ||delta_i[n]||``
  and ``S = {n : s_n > 0}``, ``K_i = E Kz E^T`` where ``E`` has orthogonal columns
  ``e_n (x) delta_i[n]``, hence the range projection is
  ``K_i K_i^+ = blockdiag_n(u_n u_n^T)``, ``u_n = delta_i[n] / s_n`` (for ``C = 1``:
  ``diag(1[delta_i(x_n) != 0])``), and ``K_i^+ = E^{+T} (Kz_SS)^{-1} E^+``.  The train operator needs no
  solve: ``Theta_G = blockdiag_n(sum_{l,i active} u u^T)``; for ``C = 1`` it is
  ``sum_l diag_n(#{i : delta_{l,i}(x_n) != 0})``.  Direction and test operator use batched Cholesky of
  ``Kz_SS`` (padded with the identity outside ``S``).
* ``"batched_svd"`` (``rho = 0`` and ``Z Z^T`` singular, e.g. ``M_{l-1} + b < N``): with the thin SVD
  ``Z = R V^T`` (``R = U sigma``, ``N x r``), ``J_{l,i} = B_i V^T``, ``B_i[(n,c), :] = delta_i[n,c] R[n, :]``
  (``N C x r``), so ``J_i^+ = V B_i^+`` from a stacked SVD of the small ``B_i`` -- relative accuracy
  ``eps cond(J_i)``, not the ``eps cond(J_i)^2`` of an eigendecomposition of ``K_i``.  Singular values
  with ``sigma^2 <= rank_rtol sigma_max^2`` (per unit) are dropped, the same cut as on ``K_i``'s eigenvalues.
* ``"batched_eigh"`` (only with ``method="eigh"``, for cross-checks): stacked ``eigh`` of ``K_i``,
  eigenvalues below ``rank_rtol`` times the unit's largest dropped (per-block pseudo-inverse).

Cost per layer of these ``N C``-sized systems (kept as ``solve_form="dual_full"``): ``M_l (N C)^3 / 3`` for the
factorisations, ``M_l (N C)^2`` per right-hand side; the default path reduces them to ``N``-sized ones (below).

The step (:meth:`UnitWiseApproximation.direction`) with ``C = 1`` and ``Z Z^T`` positive definite or a
positive shift ``sigma_i = N rho + lambda s_i`` needs no ``N x N`` system per unit: with ``S_i`` the samples
where unit ``i`` is active and ``D = diag(|delta_i|)``, the rows/columns of ``K_i + sigma_i I`` outside
``S_i`` are ``sigma_i e_n`` and ``delta_i`` vanishes there, so

    W_S = D (D Kz_SS D + sigma_i I)^{-1} D t_S   (t = r / delta_i),      W_S = Kz_SS^{-1} t_S at rho = 0,

``|S_i| x |S_i|`` systems (about N/2 for relu: 8x fewer flops), all units of a batch (sorted by
``|S_i|``, padded with identity rows) in one stacked LU; no Python loop over units.  With a positive
shift and ``m = M_{l-1} + b < N`` the primal twin (push-through)
``x_i = (Z^T diag(delta_i^2) Z + sigma_i I)^{-1} Z^T (delta_i r)`` solves ``m x m`` systems instead; option
``solve_form`` (``"auto"``: the smaller flop count ``M_l (N m^2 + 2 m^3 / 3)`` vs
``sum_i (2 |S_i|^3 / 3 + 4 |S_i|^2)``; ``"dual"``, ``"primal"``; ``"dual_full"``: the per-unit ``N C``-sized
systems above for every C, kept for cross-checks), recorded per layer in ``diagnostics["direction_forms"]``
(also ``"svd"``: the stacked SVD at C = 1, ``"svd_full"``: the same on ``N C x r`` matrices, ``"dual_full"``:
eigh, or the ``N C``-sized Cholesky / closed-form systems).

C > 1 (and cross-entropy, whose transformed signals have ``C - 1`` rows) reduces to the same N-sized problems.
With ``s_n = ||delta_i[n]||`` (norm over the outputs), ``D = diag(s)`` and ``U`` (``N C x |S_i|``) the orthonormal
columns ``u_n = e_n (x) delta_i[n] / s_n`` (``n in S_i``), unit ``i``'s Jacobian is ``J_i = U D Z_S`` and
``K_i = U D Kz_SS D U^T``.  For a shift ``sigma_i > 0``

    (K_i + sigma_i I)^{-1} = U (D Kz_SS D + sigma_i I)^{-1} U^T + (I - U U^T) / sigma_i,

and ``E^T = D U^T`` annihilates the second term, so ``W[n, i] = delta_i[n] . v_i[n] = s_n [(D Kz_SS D + sigma_i
I)^{-1} U^T r]_n`` with ``(U^T r)_n = delta_i[n] . r_n / s_n``: the C = 1 problem with ``|delta_i| -> s`` and the
residual replaced by the per-unit projection (forms ``"dual_projected"`` / ``"primal_projected"``; the primal
twin needs only ``J_i^T J_i = Z^T diag(s^2) Z`` and ``J_i^T r = Z^T (delta_i . r)``).  At ``rho = 0`` the same
with ``sigma_i = 0`` (``Kz_SS`` positive definite), and with ``Z Z^T`` singular ``J_i^+ = V (D R)^+ U^T``
(``(Q B)^+ = B^+ Q^T`` for orthonormal ``Q``): a stacked SVD of the ``N x r`` matrices ``diag(s) R`` instead of
the ``N C x r`` ``E_i R`` (form ``"svd_projected"``).  The operator uses the same reduction for the damped
(``"batched_cholesky"``) layers: ``K_i(X2, X) (K_i + sigma_i I)^{-1} = E2 Kz(X2, X) D (D Kz D + sigma_i I)^{-1}
U^T``, one ``N x N`` Cholesky per unit instead of an ``N C x N C`` one, and for the SVD layers:
``J_i(X2) J_i^+ = E2 (Z2 V) (D R)^+ U^T``.
All per-unit work runs with one BLAS thread, the width-sized GEMMs with the caller's threads
(:mod:`numerics.threads`).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([8, 32, 32, 1], activation="tanh", seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 8))
>>> theta_G = UnitWiseApproximation(net, X).operator()
>>> bool(np.allclose(theta_G, (32 + 32 + 1) * np.eye(6), atol=1e-9))   # tanh: every unit active
True
"""
from __future__ import annotations

import threading
from typing import Any, List, Tuple

import numpy as np
import scipy.linalg

import theory.unit_wise_theory as _unit_wise_theory  # the one alpha formula (active_count_moments)
from theory.tolerances import CHUNK_ENTRIES
from theory.assumptions import (LINEARLY_INDEPENDENT_INPUTS, NO_DEAD_UNITS, PHI_PRIME_NONZERO, RHO_TO_ZERO,
                                SINGLE_OUTPUT, UNIT_INPUT_RANK, WELL_CONDITIONED, Flag)
from theory.validation import check_choice, check_nonnegative, check_positive_int

from ..dense import _check_small, dense_layer_jacobian
from ..diagnosis import diagnose_factor
from ..linalg import PINV_RTOL
from ..threads import all_blas_threads, map_batches, single_blas_thread
from .base import Approximation, reject_options, register_approximation
from .kfac import expand_outputs

#: Float64 entries allowed for one chunk of stacked per-unit matrices (64 MiB).

METHODS = ("auto", "eigh")

#: Where the direction solves each unit's system (option ``solve_form``): ``"auto"`` picks the cheaper of the
#: N-sized dual and the primal by a flop count (module docstring), ``"dual"``/``"primal"`` force one; ``"dual_full"``
#: the per-unit ``N C``-sized systems for every C (direction and operator; cross-checks).
SOLVE_FORMS = ("auto", "dual", "primal", "dual_full")

#: Unit-block condition numbers beyond this are reported as an ill-conditioning problem: float64
#: minimum-norm solves then keep fewer than ~8 digits.
UNIT_CONDITION_WARN = 1e8


_GAMMA_CACHE: dict = {}


def _active_fraction(activation):
    """``gamma = P(phi'(u) != 0)`` derived symbolically by ``theory.activations`` (cached per activation:
    the SymPy derivation takes ~0.5 s and the answer depends only on the expression)."""
    key = (activation.name, str(activation.expr))
    if key not in _GAMMA_CACHE:
        _GAMMA_CACHE[key] = activation.active_fraction()
    return _GAMMA_CACHE[key]


@register_approximation("unit_wise")
class UnitWiseApproximation(Approximation):
    """Unit-wise preconditioner, batched over units.

    Options: ``method`` (``"auto"``: closed form / Cholesky / SVD as described; ``"eigh"``: force the
    batched-eigh pseudo-inverse at ``rho = 0``, for cross-checks), ``chunk_units`` (units per batch;
    default from a 64 MiB budget), ``rank_rtol`` (eigenvalue cut of the eigh path and of the
    positive-definiteness test of ``Z Z^T``), ``relative_damping`` (``lambda``: per-unit shift
    ``lambda s_i`` of the dual Gram, ``s_i`` its mean diagonal -- module docstring), ``solve_form``
    (``"auto"``, ``"dual"``, ``"primal"``: where the step solves each unit's N- or ``(M_{l-1} + b)``-sized system,
    for C > 1 on the projected residual; ``"dual_full"``: the ``N C``-sized per-unit systems, for cross-checks).
    """


    def _prepare(self, method: str = "auto", chunk_units=None, rank_rtol: float = PINV_RTOL,
                 relative_damping: float = 0.0, solve_form: str = "auto", **options: Any) -> None:
        reject_options(self.name, options)
        with single_blas_thread():  # N x N eigenvalues and SVDs, per-unit signal norms: small-matrix work
            self._prepare_systems(method, chunk_units, rank_rtol, relative_damping, solve_form)

    def _prepare_systems(self, method, chunk_units, rank_rtol, relative_damping, solve_form) -> None:
        self.solve_form = check_choice("solve_form", solve_form, SOLVE_FORMS)
        self.relative_damping = check_nonnegative("relative_damping", relative_damping)
        self.diagnostics["relative_damping"] = self.relative_damping
        self.method_option = check_choice("method", method, METHODS)
        self.rank_rtol = check_nonnegative("rank_rtol", rank_rtol, allow_zero=False)
        self.chunk_units = None if chunk_units is None else check_positive_int("chunk_units", chunk_units)
        n, c = self.n_samples, self.n_outputs
        self.input_grams: List[np.ndarray] = []
        self._input_svd: dict = {}
        self.methods: List[str] = []
        counts, dead, conds, problems, weakest, unit_bounds = [], [], [], [], [], []
        for l in range(1, self.depth + 1):
            Z = self.factors.Z[l - 1]
            Kz = Z @ Z.T
            self.input_grams.append(Kz)
            lam = np.linalg.eigvalsh(Kz)
            cond = float(lam[-1] / lam[0]) if lam[0] > 0 else float("inf")
            conds.append(cond)
            full_rank = lam[0] > self.rank_rtol * lam[-1]
            if self.damping > 0 or self.relative_damping > 0:
                self.methods.append("batched_cholesky")
            elif full_rank and self.method_option == "auto":
                self.methods.append("closed_form_projection")
            elif self.method_option == "auto":
                self.methods.append("batched_svd")
            else:
                self.methods.append("batched_eigh")
            if not full_rank:
                code, text = self._rank_problem(l, Z, cond, int(np.sum(lam > self.rank_rtol * lam[-1])))
                problems.append(Flag(code, text, LINEARLY_INDEPENDENT_INPUTS if l == 1 else UNIT_INPUT_RANK))
            if self.methods[-1] == "batched_svd":
                # thin SVD Z = R V^T (R = U sigma, N x r): J_{l,i} = B_i V^T with B_i = E_i R
                U, sig, Vt = np.linalg.svd(Z, full_matrices=False)
                keep = sig ** 2 > self.rank_rtol * sig[0] ** 2
                # R = Z V (not U sigma): a row of Z that is exactly zero (an input silent below this layer)
                # gives an exactly zero row of R, so a unit active only there has B_i = 0 exactly and no
                # rounding-level block survives the per-unit relative cut (it was inverted to ~1e17)
                V = Vt[keep].T
                self._input_svd[l] = (Z @ V, V)
            s2 = self._signal_norms2(l)
            active = s2 > 0
            counts.append(active.sum(axis=1))
            if active.any():
                weakest.append(float(np.sqrt(s2[active].min() / s2.max())))
                # per unit: smallest active signal / largest; cond(J_{l,i}) <= sqrt(cond(Z Z^T)) / ratio
                unit_max = s2.max(axis=0)
                unit_min = np.where(active, s2, np.inf).min(axis=0)
                live = unit_max > 0
                ratio = float(np.sqrt(np.min(unit_min[live] / unit_max[live])))
                # on the range the solve uses: a rank-deficient Z Z^T (M_{l-1} + b < N, flagged above as the
                # rank assumption) is handled by the SVD path on its kept range, so its infinite condition
                # number is not the blocks' conditioning
                kept = lam[lam > self.rank_rtol * lam[-1]]
                cond_kept = float(lam[-1] / kept[0]) if kept.size else float("inf")
                unit_bounds.append(np.sqrt(cond_kept) / ratio if ratio > 0 else float("inf"))
            dead.append(int(np.sum(~active.any(axis=0))))
        self.active_counts = counts
        total = np.sum(counts, axis=0)
        gamma = _active_fraction(self.net.activation)
        widths = self.net.widths
        self.diagnostics.update(
            methods=self.methods, input_gram_conditions=conds, dead_units=dead,
            # smallest nonzero backward signal relative to the largest: a tiny value means a unit
            # that counts as active in the exact projection is numerically close to inactive
            min_active_signal_ratio=min(weakest) if weakest else 0.0,
            active_count_mean=float(total.mean()), active_count_min=int(total.min()),
            active_count_max=int(total.max()),
            active_count_relative_spread=float(total.std() / total.mean()) if total.mean() > 0 else float("inf"),
            gamma=str(gamma),
            predicted_alpha_limit=float(_unit_wise_theory.active_count_moments(list(widths[1:-1]), gamma, c)[0]),
        )
        worst_unit = max(unit_bounds) if unit_bounds else 0.0
        self.diagnostics["max_unit_condition_bound"] = worst_unit
        damped = self.damping > 0 or self.relative_damping > 0
        if not damped and worst_unit > UNIT_CONDITION_WARN:
            problems.append(Flag("unit_blocks_ill_conditioned",
                                 f"ill-conditioned unit blocks (condition number up to {worst_unit:.3g}): some unit is "
                                 "active on an input with a backward signal many orders below its largest, so the "
                                 "minimum-norm step is dominated by it (use a positive damping)", WELL_CONDITIONED))
        if c > 1:
            problems.append(Flag("multiple_outputs",
                                 f"C = {c} > 1: each unit's projection is blockdiag_n(u u^T) with u the unit's C-dim "
                                 "backward signal direction, so Theta_G has within-sample off-diagonal entries",
                                 SINGLE_OUTPUT))
        if any(d > 0 for d in dead):
            # "dead" only where phi' vanishes on an interval (gamma < 1); otherwise phi' rounded to 0 (saturation)
            if gamma < 1:
                problems.append(Flag("dead_units", f"dead units (zero backward signal on every input) per layer: "
                                                   f"{dead}", NO_DEAD_UNITS))
            else:
                problems.append(Flag("saturated_units", f"units with zero backward signal on every input per layer: "
                                     f"{dead} ({self.net.activation.name}' vanishes only on a null set: saturated, "
                                     "phi'(u) rounds to 0 in float64 at large |u|, or no signal from above)",
                                     NO_DEAD_UNITS))
        if self.damping > 0:
            problems.append(Flag("damping_positive", f"damping rho = {self.damping:g} > 0: per-unit eigenvalues "
                                 "lambda/(lambda + N rho) differ", RHO_TO_ZERO))
        if self.relative_damping > 0:
            problems.append(Flag("relative_damping", f"relative damping {self.relative_damping:g} of each unit's Gram "
                                 "scale: per-unit eigenvalues lambda/(lambda + relative_damping s_i) differ", RHO_TO_ZERO))
        if not damped and c == 1 and total.min() != total.max():
            problems.append(Flag("active_counts_differ",
                                 f"active-unit counts differ across samples ({int(total.min())}..{int(total.max())}): "
                                 "phi' vanishes on part of the inputs (e.g. relu), isotropy only as M -> infinity",
                                 PHI_PRIME_NONZERO))
        elif not damped and c == 1 and gamma != 1:
            # the assumption is about the activation, not this draw: with gamma < 1 the per-sample counts are
            # binomial, and equal counts (possible at small width / N) are luck, not exact isotropy
            problems.append(Flag("activation_derivative_vanishes",
                                 f"phi' vanishes with probability 1 - gamma = {1 - gamma} > 0: the per-sample active-unit "
                                 f"counts are random (equal here, {int(total.min())}, by chance), so alpha = gamma sum "
                                 "M_l + 1 and isotropy hold only as M -> infinity", PHI_PRIME_NONZERO))
        self.set_flags(problems)

    # -- helpers ------------------------------------------------------------------------------
    def _rank_problem(self, l: int, Z: np.ndarray, cond: float, rank: int):
        """``(code, sentence)``: why ``rank(Z_l) < N`` (:func:`numerics.diagnosis.diagnose_factor`: zero,
        parallel, duplicate inputs, ``M_{l-1} + b < N``, linearly dependent inputs although ``M_0 >= N``,
        dead units, ...) and what it does to the unit-wise operator."""
        d = diagnose_factor(self.net, self.factors, self.X, "input", l, rank, self.rank_rtol, with_head=False)
        tail = (f"input Gram Z_{l} Z_{l}^T is singular (condition number {cond:.3g}, rank(Z_{l}) = {rank}): "
                "per-unit projections are not diagonal in the samples")
        return d.code if d.code != "rank_deficient" else "input_rank_deficient", f"layer {l}: {d.message}: {tail}"

    def _signal_norms2(self, l: int, factors=None) -> np.ndarray:
        """``s2[n, i] = ||Delta_l[n, :, i]||^2``, shape ``(N, M_l)``."""
        if factors is None and l in getattr(self, "_s2_cache", {}):
            return self._s2_cache[l]
        f = self.factors if factors is None else factors
        D = f.Delta[l - 1]
        s2 = np.einsum("nci,nci->ni", D, D)
        if factors is None:
            self.__dict__.setdefault("_s2_cache", {})[l] = s2
        return s2

    def unit_scales(self, l: int) -> np.ndarray:
        """``s_i = tr(K_{l,i}) / (N C) = mean_n ||delta_i(x_n)||^2 ||z_n||^2``: the scale of each unit's
        dual Gram (its mean diagonal), shape ``(M_l,)``."""
        s2 = self._signal_norms2(l)                                        # (N, M_l)
        z2 = np.einsum("nm,nm->n", self.factors.Z[l - 1], self.factors.Z[l - 1])
        return (z2 @ s2) / (self.n_samples * self.n_outputs)

    def unit_shifts(self, l: int, start: int = 0, stop=None) -> np.ndarray:
        """The diagonal shift of each unit's dual Gram in the Cholesky path: ``N rho + lambda s_i``
        (``lambda`` = ``relative_damping``); 1 for a unit whose shift would be 0 (dead unit with
        ``rho = 0``: its Gram and its signal are 0, so any positive shift gives the same zero
        contribution)."""
        shift = self.n_samples * self.damping + self.relative_damping * self.unit_scales(l)[start:stop]
        return np.where(shift > 0, shift, 1.0)

    def _chunks(self, l: int, rhs_columns: int, per_unit=None):
        """Unit index ranges whose stacked ``(N C) x (N C + rhs_columns)`` matrices (or ``per_unit`` entries
        per unit) fit the budget."""
        m_l = self.factors.Delta[l - 1].shape[2]
        nc = self.n_samples * self.n_outputs
        per_unit = per_unit or nc * (2 * nc + rhs_columns)
        size = self.chunk_units or max(1, CHUNK_ENTRIES // per_unit)
        return [(a, min(m_l, a + size)) for a in range(0, m_l, size)]

    def _full_unit_grams(self, l: int, start: int, stop: int, factors2=None) -> np.ndarray:
        """``K_i(X, X2) = (delta_i delta2_i^T) o (Z Z2^T (x) 1 1^T)`` stacked: ``(k, N C, N2 C)``."""
        n, c = self.n_samples, self.n_outputs
        d = self.factors.Delta[l - 1][:, :, start:stop].reshape(n * c, -1).T          # (k, N C)
        if factors2 is None:
            d2, Kz = d, self.input_grams[l - 1]
        else:
            d2 = factors2.Delta[l - 1][:, :, start:stop].reshape(factors2.n_samples * c, -1).T
            Kz = self.factors.Z[l - 1] @ factors2.Z[l - 1].T
        return d[:, :, None] * d2[:, None, :] * expand_outputs(Kz, c)[None]

    def _padded_active_grams(self, l: int, active: np.ndarray) -> np.ndarray:
        """``Kz_SS`` padded by the identity (scaled like Kz) outside S, per unit: ``(k, N, N)``."""
        Kz = self.input_grams[l - 1]
        act = active.T                                                                  # (k, N)
        K = Kz[None] * (act[:, :, None] & act[:, None, :])
        scale = float(np.mean(np.diag(Kz)))
        idx = np.arange(Kz.shape[0])
        K[:, idx, idx] += np.where(act, 0.0, scale)
        return K

    def _chunk_system(self, l: int, start: int, stop: int):
        """The per-chunk factorisation: ``("chol", L)`` of ``K + N rho I`` / padded ``Kz_SS``, or
        ``("eigh", Vs)`` with ``K^+ = Vs Vs^T``."""
        method = self.methods[l - 1]
        if method == "closed_form_projection":
            s2 = self._signal_norms2(l)[:, start:stop]
            return "closed", np.linalg.cholesky(self._padded_active_grams(l, s2 > 0)), s2
        if method == "batched_svd":
            n, c = self.n_samples, self.n_outputs
            R, _ = self._input_svd[l]
            if c > 1 and self.solve_form != "dual_full":
                # J_i = U diag(s) R V^T (module docstring, "C > 1"): the N x r matrices diag(s) R
                s = np.sqrt(self._signal_norms2(l)[:, start:stop]).T                       # (k, N)
                kind, B = "svd_reduced", s[:, :, None] * R[None]                           # (k, N, r)
            else:
                s = None
                d = self.factors.Delta[l - 1][:, :, start:stop].reshape(n * c, -1).T        # (k, N C)
                kind, B = "svd", d[:, :, None] * np.repeat(R, c, axis=0)[None]             # (k, N C, r)
            P, S, Qt = np.linalg.svd(B, full_matrices=False)
            top = S[:, :1]
            keep = (S ** 2 > self.rank_rtol * top ** 2) & (top > 0)
            return kind, (P, np.where(keep, 1.0 / np.where(keep, S, 1.0), 0.0), Qt), s
        if method == "batched_cholesky" and self.n_outputs > 1 and self.solve_form != "dual_full":
            # K_i = U D Kz D U^T (module docstring, "C > 1"): the N x N system D Kz D + sigma_i I
            s = np.sqrt(self._signal_norms2(l)[:, start:stop]).T                           # (k, N)
            A = s[:, :, None] * self.input_grams[l - 1][None] * s[:, None, :]
            idx = np.arange(A.shape[1])
            A[:, idx, idx] += self.unit_shifts(l, start, stop)[:, None]
            return "reduced", np.linalg.cholesky(A), s
        K = self._full_unit_grams(l, start, stop)
        if method == "batched_cholesky":
            idx = np.arange(K.shape[1])
            K[:, idx, idx] += self.unit_shifts(l, start, stop)[:, None]
            return "chol", np.linalg.cholesky(K), None
        lam, V = np.linalg.eigh(K)
        top = lam[:, -1:]
        keep = (lam > self.rank_rtol * top) & (top > 0)
        inv_root = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
        return "eigh", V * inv_root[:, None, :], None

    # -- public interface ---------------------------------------------------------------------
    def direction(self, residual) -> List[np.ndarray]:
        """Per layer ``W^T Z`` with ``W[n, i] = delta_i[n] . v_i[n]`` (one GEMM after the batched solves).

        The batched per-unit solves of every layer run first, with one BLAS thread; the width-sized GEMMs
        then run together with the caller's threads (:mod:`numerics.threads`), so that OpenBLAS workers
        spinning after a multi-threaded call (:mod:`theory._environment`) do not compete with the next layer's
        batched solves.  (A layer on the primal path still runs its own ``P^T Z`` product with the caller's
        threads before its solves.)"""
        r = self.residual_matrix(residual)
        n, c = self.n_samples, self.n_outputs
        pending = []                      # per layer: (A, B) for the final GEMM A @ B, or (done, None)
        forms = self.diagnostics.setdefault("direction_forms", [None] * self.depth)
        with single_blas_thread():
            for l in range(1, self.depth + 1):
                Delta = self.factors.Delta[l - 1]
                method = self.methods[l - 1]
                reduced = self.solve_form != "dual_full"
                if reduced and method in ("batched_cholesky", "closed_form_projection"):
                    # C = 1: the unit's own N x N system; C > 1: the same system on the projected residual
                    # t_n = delta_i[n] . r_n / s_n with |delta| -> s_n (module docstring, "C > 1")
                    form = self._solve_form(l)
                    forms[l - 1] = form if c == 1 else form + "_projected"
                    if form == "primal":
                        pending.append((self._primal_direction(l, r), None))
                        continue
                    pending.append((self._compressed_dual_weights(l, r).T, self.factors.Z[l - 1]))
                    continue
                if reduced and method == "batched_svd" and c > 1:
                    forms[l - 1] = "svd_projected"
                    pending.append((self._projected_svd_rows(l, r), self._input_svd[l][1].T))
                    continue
                forms[l - 1] = "dual_full"
                if self.methods[l - 1] == "batched_svd":
                    forms[l - 1] = "svd" if c == 1 else "svd_full"      # stacked SVD of the N C x r E_i R
                    # J_i^+ r = V B_i^+ r = V Q S^{-1} P^T r: rows of the direction are (B_i^+ r)^T V^T
                    Y = np.empty((Delta.shape[2], self._input_svd[l][0].shape[1]))
                    for start, stop in self._chunks(l, 1):
                        _, (P, Sinv, Qt), _ = self._chunk_system(l, start, stop)
                        coef = Sinv * np.einsum("kaq,a->kq", P, r.ravel())
                        Y[start:stop] = np.einsum("kqr,kq->kr", Qt, coef)
                    pending.append((Y, self._input_svd[l][1].T))
                    continue
                W = np.empty((n, Delta.shape[2]))
                for start, stop in self._chunks(l, 1):
                    kind, fac, s2 = self._chunk_system(l, start, stop)
                    D = Delta[:, :, start:stop]
                    if kind == "closed":
                        # v = E^{+T} Kt^{-1} E^+ r and delta . v = Kt^{-1} (delta . r / s^2)
                        rhs = np.where(s2 > 0, np.einsum("nci,nc->ni", D, r) / np.where(s2 > 0, s2, 1.0), 0.0)
                        W[:, start:stop] = scipy.linalg.cho_solve((fac, True), rhs.T[:, :, None],
                                                                  check_finite=False)[:, :, 0].T
                        continue
                    rb = np.broadcast_to(r.reshape(1, n * c, 1), (stop - start, n * c, 1))
                    if kind == "chol":
                        v = scipy.linalg.cho_solve((fac, True), rb, check_finite=False)[:, :, 0]
                    else:
                        v = np.einsum("kab,kb->ka", fac, np.einsum("kba,kb->ka", fac, rb[:, :, 0]))
                    W[:, start:stop] = np.einsum("nci,inc->ni", D, v.reshape(-1, n, c))
                pending.append((W.T, self.factors.Z[l - 1]))
            with all_blas_threads():
                return [A if B is None else A @ B for A, B in pending]

    # -- the C = 1 direction: compressed dual or primal per-unit systems ----------------------------
    def _solve_form(self, l: int) -> str:
        """``"dual"`` or ``"primal"`` for layer ``l``'s C = 1 direction (module docstring): the primal
        ``(M_{l-1} + b)``-sized systems only exist with a positive shift, and are chosen by ``"auto"`` when
        their flop count ``M_l (N m^2 + 2 m^3 / 3)`` is below the compressed dual's ``sum_i (2 k_i^3 / 3 + 4 k_i^2)``
        (``k_i`` = samples on which unit ``i`` is active)."""
        if self.methods[l - 1] != "batched_cholesky" or self.solve_form == "dual":
            return "dual"
        if self.solve_form == "primal":
            return "primal"
        m, n = self.factors.Z[l - 1].shape[1], self.n_samples
        if m >= n:
            return "dual"
        k = np.count_nonzero(self._signal_norms2(l), axis=0).astype(float)
        dual = float(np.sum(2 * k ** 3 / 3 + 4 * k ** 2))
        primal = k.size * (n * m * m + 2 * m ** 3 / 3)
        return "primal" if primal < dual else "dual"

    def _unit_batches(self, l: int, sizes: np.ndarray, entries_per_unit):
        """Unit index batches (sorted by ``sizes`` so a batch pads little) within the memory budget."""
        order = np.argsort(sizes, kind="stable")
        order = order[sizes[order] > 0]
        if order.size == 0:
            return []
        per = max(1, int(entries_per_unit(int(sizes[order[-1]]))))
        size = self.chunk_units or max(1, CHUNK_ENTRIES // per)
        return [order[a:a + size] for a in range(0, order.size, size)]

    def _projected_rhs(self, l: int, r: np.ndarray) -> np.ndarray:
        """``p[n, i] = delta_i[n] . r_n`` (``(N, M_l)``): ``J_i^T r = Z^T p_i``; for ``C > 1`` the residual seen
        by unit ``i`` is ``(U^T r)_n = p[n, i] / s_n`` (module docstring, "C > 1")."""
        D = self.factors.Delta[l - 1]
        if D.shape[1] == 1:
            return D[:, 0, :] * r
        return np.einsum("nci,nc->ni", D, r)

    def _dual_targets(self, l: int, r: np.ndarray) -> np.ndarray:
        """``t[n, i]`` of ``W_S = (Kz_SS + sigma_i diag(1 / s^2)_S)^{-1} t_S``: ``r_n / delta_i[n]`` for ``C = 1``,
        ``delta_i[n] . r_n / s_n^2`` for ``C > 1`` (0 where the unit is inactive)."""
        D = self.factors.Delta[l - 1]
        s2 = self._signal_norms2(l)
        active = s2 > 0
        if D.shape[1] == 1:
            return np.where(active, r / np.where(active, D[:, 0, :], 1.0), 0.0)
        return np.where(active, self._projected_rhs(l, r) / np.where(active, s2, 1.0), 0.0)

    def _compressed_dual_weights(self, l: int, r: np.ndarray) -> np.ndarray:
        """``W[n, i] = delta_i[n] . v_i[n]`` from each unit's system restricted to its active samples.

        With ``S_i = {n : s_n > 0}`` (``s_n = ||delta_i[n]||``), ``D = diag(s)_S`` and ``sigma_i`` the unit's
        shift (``N rho + lambda s_i``), ``K_i = U D Kz D U^T`` with ``U`` orthonormal (module docstring), so
        ``W_S = D (D Kz_SS D + sigma_i I)^{-1} U^T r = (Kz_SS + sigma_i diag(1 / s^2)_S)^{-1} t_S`` with
        ``t = U^T r / s`` (:meth:`_dual_targets`; ``C = 1``: ``t = r / delta_i``): the symmetric positive definite
        system of the closed-form projection, ``Kz_SS^{-1} t_S``, plus a positive diagonal -- no scaling pass
        over the stacked matrices, only a gather and a diagonal.  All units of a batch are solved by one stacked
        LU (``numpy.linalg.solve``), padded to the batch's largest ``|S_i|`` with decoupled rows (extra
        rows/columns of ``Kz``: the identity times its mean diagonal)."""
        n = self.n_samples
        s2 = self._signal_norms2(l)                                                    # (N, M_l)
        active = s2 > 0
        k = np.count_nonzero(active, axis=0)
        damped = self.methods[l - 1] == "batched_cholesky"
        shifts = self.unit_shifts(l) if damped else None
        Kz = self.input_grams[l - 1]
        size = n + int(k.max(initial=0))                  # padding position j of a unit maps to row/column N + j
        ext = np.zeros((size, size))
        ext[:n, :n] = Kz
        ext[np.arange(n, size), np.arange(n, size)] = float(np.mean(np.diag(Kz)))
        ext = ext.ravel()
        T = self._dual_targets(l, r)                                                   # (N, M_l)
        W = np.zeros((n, s2.shape[1]))

        def solve_batch(units):
            kmax = int(k[units[-1]])
            # active samples first, in sample order; padding points at row/column N
            idx = np.argsort(~active[:, units], axis=0, kind="stable")[:kmax].T          # (u, kmax)
            valid = np.arange(kmax)[None, :] < k[units][:, None]
            idx = np.where(valid, idx, n + np.arange(kmax)[None, :])
            cols = np.broadcast_to(units[:, None], idx.shape)
            rows = np.minimum(idx, n - 1)
            # Kz_SS, (u, kmax, kmax), gathered into this thread's buffer: fresh pages for every batch cost a
            # third of the gather, and take(out=...) in its default mode="raise" buffers the output; "clip"
            # cannot change a value here, every position idx * size + idx' is < size^2 by construction
            if getattr(local, "buffer", None) is None:
                local.buffer = np.empty(buffer_entries)
            A = np.take(ext, idx[:, :, None] * size + idx[:, None, :], mode="clip",
                        out=local.buffer[:units.size * kmax * kmax].reshape(units.size, kmax, kmax))
            if damped:
                diag = np.arange(kmax)
                A[:, diag, diag] += np.where(valid, shifts[units][:, None] / np.where(valid, s2[rows, cols], 1.0),
                                             0.0)
            rhs = np.where(valid, T[rows, cols], 0.0)
            w = np.linalg.solve(A, rhs[:, :, None])[:, :, 0]
            W[idx[valid], cols[valid]] = w[valid]                                       # disjoint columns

        # batches of ~1/4 of the budget so that two or more of them can run side by side
        batches = self._unit_batches(l, k, lambda kmax: 12 * kmax * kmax)
        buffer_entries = max((b.size * int(k[b[-1]]) ** 2 for b in batches), default=0)
        local = threading.local()
        map_batches(solve_batch, batches)
        return W

    def _primal_direction(self, l: int, r: np.ndarray) -> np.ndarray:
        """Rows ``x_i = (Z^T diag(s_i^2) Z + sigma_i I)^{-1} Z^T p_i`` (``sigma_i > 0``; ``p_i[n] = delta_i[n] . r_n``,
        ``s_i^2[n] = ||delta_i[n]||^2``): the push-through twin of the dual ``J_i^T (K_i + sigma_i I)^{-1} r``
        (``J_i^T J_i = Z^T diag(s_i^2) Z``, ``J_i^T r = Z^T p_i`` for every C), with ``(M_{l-1} + b)``-sized systems."""
        Z = self.factors.Z[l - 1]
        s2 = self._signal_norms2(l)
        n, m = Z.shape
        shifts = self.unit_shifts(l)
        P = self._projected_rhs(l, r)
        with all_blas_threads():
            B = P.T @ Z                                                                # rows J_i^T r, (M_l, m)
        out = np.zeros((s2.shape[1], m))
        k = np.count_nonzero(s2, axis=0)
        diag = np.arange(m)

        def solve_batch(units):
            A = np.matmul(Z.T[None] * s2[:, units].T[:, None, :], Z[None])              # (u, m, m)
            A[:, diag, diag] += shifts[units][:, None]
            out[units] = np.linalg.solve(A, B[units][:, :, None])[:, :, 0]              # disjoint rows

        map_batches(solve_batch, self._unit_batches(l, k, lambda _kmax: 8 * m * max(m, n)))
        return out

    def _projected_svd_rows(self, l: int, r: np.ndarray) -> np.ndarray:
        """``C > 1``, ``rho = 0``, ``Z Z^T`` singular: rows ``(J_i^+ r)^T`` in the basis ``V`` of ``Z = R V^T``.

        ``J_i = U D R V^T`` with ``U`` orthonormal columns on the active samples (module docstring), so
        ``J_i^+ = V (D R)^+ U^T``: the stacked SVD of the ``N x r`` matrices ``B_i = diag(s_i) R`` (instead of the
        ``N C x r`` ``E_i R``; same singular values, same rank cut) applied to ``(U^T r)_n = delta_i[n] . r_n / s_n``."""
        R, _ = self._input_svd[l]
        n, q = R.shape
        s2 = self._signal_norms2(l)
        active = s2 > 0
        s = np.sqrt(s2)
        t = np.where(active, self._projected_rhs(l, r) / np.where(active, s, 1.0), 0.0)    # U^T r, (N, M_l)
        k = np.count_nonzero(active, axis=0)
        Y = np.zeros((s2.shape[1], q))

        def solve_batch(units):
            B = s[:, units].T[:, :, None] * R[None]                                          # (u, N, r)
            P, S, Qt = np.linalg.svd(B, full_matrices=False)
            top = S[:, :1]
            keep = (S ** 2 > self.rank_rtol * top ** 2) & (top > 0)
            Sinv = np.where(keep, 1.0 / np.where(keep, S, 1.0), 0.0)
            coef = Sinv * np.einsum("kaq,ka->kq", P, t[:, units].T)
            Y[units] = np.einsum("kqr,kq->kr", Qt, coef)                                    # disjoint rows

        map_batches(solve_batch, self._unit_batches(l, k, lambda _kmax: 6 * n * q))
        return Y

    def operator(self, X2=None) -> np.ndarray:
        """``sum_{l,i} K_i(X2, X) (K_i + N rho I)^{-1}`` (closed form on the train set at ``rho = 0``).

        Batched small-matrix work throughout: it runs with one BLAS thread (:mod:`numerics.threads`)."""
        f2 = None if X2 is None else self.factors_at(X2)
        with single_blas_thread():
            return self._operator(f2)

    def _operator(self, f2) -> np.ndarray:
        n, c = self.n_samples, self.n_outputs
        n2 = n if f2 is None else f2.n_samples
        total = np.zeros((n2 * c, n * c))
        for l in range(1, self.depth + 1):
            if self.methods[l - 1] == "closed_form_projection" and f2 is None:
                total += self._closed_form_train_operator(l)
                continue
            if self.methods[l - 1] in ("batched_cholesky", "batched_svd") and c > 1 and self.solve_form != "dual_full":
                # the reduced N x N systems: A, L (N^2 each), rhs and solution (N N2), the (N2, k, N, C) product
                chunks = self._chunks(l, 0, per_unit=n * (2 * n + 2 * n2 + 2 * n2 * c))
            else:
                chunks = self._chunks(l, n2 * c)
            for start, stop in chunks:
                total += self._chunk_operator(l, start, stop, f2)
        return total

    def _closed_form_train_operator(self, l: int) -> np.ndarray:
        """``blockdiag_n(sum_i u_{n,i} u_{n,i}^T)`` with ``u = delta_i[n] / ||delta_i[n]||`` (active units)."""
        n, c = self.n_samples, self.n_outputs
        D = self.factors.Delta[l - 1]
        s2 = self._signal_norms2(l)
        Dw = np.where(s2[:, None, :] > 0, D / np.where(s2 > 0, s2, 1.0)[:, None, :], 0.0)
        blocks = np.einsum("nci,ndi->ncd", Dw, D)
        out = np.zeros((n, c, n, c))
        idx = np.arange(n)
        out[idx, :, idx, :] = blocks
        return out.reshape(n * c, n * c)

    def _chunk_operator(self, l: int, start: int, stop: int, f2) -> np.ndarray:
        """Contribution of units ``start:stop`` of layer ``l`` to ``Theta_G(X2, X)``."""
        n, c = self.n_samples, self.n_outputs
        kind, fac, s2 = self._chunk_system(l, start, stop)
        if kind in ("closed", "reduced", "svd_reduced"):
            # closed: term_i = E2 Kz21_S Kz_SS^{-1} E^{+T}, E^+ row n = delta_i[n]^T / s_n^2;
            # reduced: term_i = E2 Kz21 D (D Kz D + sigma_i I)^{-1} U^T, U^T row n = delta_i[n]^T / s_n;
            # svd_reduced: term_i = E2 (Z2 V) (D R)^+ U^T;
            # each is sum_i delta2[a,c,i] X_i[a,n] Dw[n,d,i] with X_i = Xs_i^T
            f2 = self.factors if f2 is None else f2
            n2 = f2.n_samples
            if kind == "closed":
                active, weight, norm = s2 > 0, (s2 > 0).T, s2
            else:
                weight = s2                                                               # s, (k, N)
                active, norm = (weight > 0).T, weight.T
            if kind == "svd_reduced":
                P, Sinv, Qt = fac
                R2 = f2.Z[l - 1] @ self._input_svd[l][1]                                     # (N2, r)
                T = np.matmul(R2[None], Qt.transpose(0, 2, 1) * Sinv[:, None, :])             # (k, N2, q)
                Xs = np.matmul(P, T.transpose(0, 2, 1))                                        # (k, N, N2)
            else:
                Kz12 = self.factors.Z[l - 1] @ f2.Z[l - 1].T                             # (N, N2)
                rhs = weight[:, :, None] * Kz12[None]                                      # (k, N, N2)
                Xs = scipy.linalg.cho_solve((fac, True), rhs, check_finite=False)           # (k, N, N2)
            D = self.factors.Delta[l - 1][:, :, start:stop]
            Dw = np.where(active[:, None, :], D / np.where(active, norm, 1.0)[:, None, :], 0.0)  # (N, C, k)
            tmp = Xs.transpose(2, 0, 1)[:, :, :, None] * Dw.transpose(2, 0, 1)[None]          # (N2, k, N, C)
            D2 = f2.Delta[l - 1][:, :, start:stop]                                          # (N2, C, k)
            block = np.matmul(D2, tmp.reshape(n2, stop - start, n * c))                     # (N2, C, N C)
            return block.reshape(n2 * c, n * c)
        if kind == "svd":
            # J_i(X2) J_i^+ = E2_i (Z2 V) Q S^{-1} P^T
            P, Sinv, Qt = fac
            f2 = self.factors if f2 is None else f2
            n2 = f2.n_samples
            R2 = f2.Z[l - 1] @ self._input_svd[l][1]                                         # (N2, r)
            T = np.matmul(R2[None], Qt.transpose(0, 2, 1) * Sinv[:, None, :])                 # (k, N2, q)
            T = np.matmul(T, P.transpose(0, 2, 1))                                             # (k, N2, N C)
            D2 = f2.Delta[l - 1][:, :, start:stop]                                             # (N2, C, k)
            return np.matmul(D2, T.transpose(1, 0, 2)).reshape(n2 * c, n * c)
        rhs = self._full_unit_grams(l, start, stop, f2)                                     # K_i(X, X2)
        if kind == "chol":
            Xs = scipy.linalg.cho_solve((fac, True), rhs, check_finite=False)
        else:
            Xs = np.matmul(fac, np.matmul(fac.transpose(0, 2, 1), rhs))
        return Xs.sum(axis=0).T

    def dense_matrix(self) -> np.ndarray:
        """``blockdiag_{l,i}(J_{l,i}^T J_{l,i} / N)``: the layer Fisher blocks masked to same-unit entries."""
        _check_small(self.net.n_params)
        n = self.n_samples
        blocks = []
        for l in range(1, self.depth + 1):
            J = dense_layer_jacobian(self.factors, l)
            m_l, m = self.factors.Delta[l - 1].shape[2], self.factors.Z[l - 1].shape[1]
            mask = np.kron(np.eye(m_l), np.ones((m, m)))
            blocks.append((J.T @ J / n) * mask)
        return scipy.linalg.block_diag(*blocks)


def unit_blocks(net) -> List[Tuple[int, int, int]]:
    """``(layer, unit, offset)`` of every unit block in ``theta`` order (each block has ``M_{l-1} + b`` entries).

    >>> from numerics.network import MLP
    >>> unit_blocks(MLP([2, 3, 1], seed=0))[:2], len(unit_blocks(MLP([2, 3, 1], seed=0)))
    ([(1, 0, 0), (1, 1, 2)], 4)
    """
    out, offset = [], 0
    for l, p in enumerate(net.params, start=1):
        for i in range(p.shape[0]):
            out.append((l, i, offset))
            offset += p.shape[1]
    return out


#: Short alias.
UnitWise = UnitWiseApproximation

__all__ = ["METHODS", "SOLVE_FORMS", "UnitWise", "UnitWiseApproximation", "unit_blocks"]
