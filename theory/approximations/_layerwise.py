"""Helpers shared by the layer-wise (block-pattern) approximations: depth, rank checks, pattern results.

A layer-wise approximation keeps the blocks ``G_{ll'}`` of the Fisher with ``S_{ll'} = 1`` for an
``L x L`` 0/1 pattern ``S``; in the wide limit (every layer Gram invertible) its function-space
operator is ``alpha I`` with ``alpha = 1^T S^+ 1`` (Karakida & Osawa 2020, arXiv:2010.00879, Thm. 4 and
its tri-diagonal corollary; the general pattern statement is derived in :mod:`theory.patterns`).
"""
from __future__ import annotations

import numbers

import numpy as np
import sympy as sp

from theory.non_isotropic import IsotropyResult, NotIsotropic, singular_layer_gram_derivation
from theory.patterns import analyze_pattern
from theory.tolerances import PSD_RTOL

__all__ = ["LAYERWISE_CONDITIONS", "depth_of", "check_layer_ranks", "pattern_result", "pattern_test_kernel_of"]

LAYERWISE_CONDITIONS = ("every layer Jacobian J_l has full row rank N C (layer Grams invertible)",
                        "pseudo-inverse (rho -> 0+) limit")


def depth_of(setting, pattern=None):
    """The depth ``L`` of a setting (its ``depth``, else ``len(widths) - 1``, else the pattern's size)."""
    if setting.depth is not None:
        return setting.depth
    if isinstance(setting.widths, (list, tuple)):
        return sp.Integer(len(setting.widths) - 1)
    if pattern is not None:
        return sp.Integer(len(pattern.tolist() if isinstance(pattern, sp.MatrixBase) else pattern))
    raise ValueError("depth=None is not allowed here: give depth=L (an integer >= 1 or a SymPy symbol)")


def check_layer_ranks(setting, only_total: bool) -> None:
    """Raise :class:`NotIsotropic` when a layer Jacobian is too narrow to have full row rank N C."""
    widths, n_samples = setting.widths, setting.n_samples
    if not isinstance(widths, (list, tuple)) or n_samples is None:
        return
    ws = [sp.sympify(w) for w in widths]
    b = 1 if setting.bias else 0
    NC = sp.sympify(n_samples) * sp.sympify(setting.n_outputs)
    sizes = [ws[l + 1] * (ws[l] + b) for l in range(len(ws) - 1)]  # P_l = M_l (M_{l-1} + bias)
    checks = [("P = sum_l P_l", sum(sizes, sp.Integer(0)))] if only_total else \
        [(f"P_{l + 1} = M_{l + 1} (M_{l} + bias)", p) for l, p in enumerate(sizes)]
    for label, p in checks:
        if (p - NC).is_negative:
            raise NotIsotropic(
                f"{label} = {p} < N C = {NC}: that Jacobian cannot have full row rank, its Gram is singular and "
                f"J_l J_l^+ is a projection of rank < N C, not I", "layer Jacobians of full row rank",
                singular_layer_gram_derivation())


def pattern_result(name, S, conditions, closed_form=None) -> IsotropyResult:
    """``alpha = 1^T S^+ 1`` with its derivation, or :class:`NotIsotropic` when 1 is not in range(S)
    or ``alpha = 0``."""
    a = analyze_pattern(S)
    if not a.one_in_range:
        raise NotIsotropic(
            f"pattern {a.pattern.tolist()}: 1 is not in range(S) (1^T n != 0 for a null vector n of S), so the "
            f"gradient has a component in null(G_S): the rho -> 0+ step diverges and the pseudo-inverse step is "
            f"not isotropic for generic layer kernels", "1 in range(S)", a.derivation)
    derivation = a.derivation
    if a.alpha == 0:
        # 1 in range(S) but 1^T S^+ 1 = c^T S c = 0 (S indefinite): Theta_G = 0, no first-order progress
        raise NotIsotropic(
            f"pattern {a.pattern.tolist()}: 1 is in range(S) but alpha = 1^T S^+ 1 = 0 (S is indefinite), so "
            f"J G_S^+ J^T / N = 0: the step makes no first-order progress and eta = 1/alpha does not exist",
            "alpha = 1^T S^+ 1 > 0", derivation)
    if closed_form is not None:
        derivation.add_step("agrees with the closed form", a.alpha, closed_form, "exact rational pinv vs formula")
        derivation.check()
    notes = [f"layer weights c = S^+ 1 = {list(a.weights)}", f"moving layers {list(a.moving_layers)}",
             "rho -> 0+ limit equals G_S^+ grad because grad lies in range(G_S) (1 in range(S))"]
    if a.alpha < 0:
        notes.append(f"alpha = {a.alpha} < 0: isotropic, but the step points uphill for eta > 0; the stable "
                     f"interval is 2/alpha < eta < 0")
    if np.linalg.eigvalsh(np.array(a.pattern.tolist(), dtype=float))[0] < -PSD_RTOL:
        notes.append("S is indefinite, so G_S is not positive semi-definite: G_S + rho I is singular at isolated "
                     "rho > 0, but the rho -> 0+ limit is well defined")
    if not a.invertible:
        notes.append(f"S singular (null space {a.null_basis.T.tolist()}): the test kernel carries the null-space "
                     f"correction, not sum_l c_l Theta_l(x',X) Theta_l^-1 (theory.pattern_kernels)")
    return IsotropyResult(name, a.alpha, list(conditions), derivation, True, notes)


def pattern_test_kernel_of(make_pattern):
    """A registry ``test_kernel`` for the block pattern ``make_pattern(setting) -> S`` (SymPy or array):
    :func:`theory.pattern_kernels.pattern_test_kernel` on the analytic layer NTKs."""
    def test_kernel(k_train, k_cross, setting):
        from theory.pattern_kernels import pattern_test_kernel

        S = np.array(sp.Matrix(make_pattern(setting)).tolist(), dtype=float)
        return pattern_test_kernel(S, k_train.layer_ntk, k_cross.layer_ntk)

    return test_kernel


def integer_depth(setting, name: str) -> int:
    """The depth as a Python int (the test kernels need numbers)."""
    L = depth_of(setting)
    if not (isinstance(L, (numbers.Integral, np.integer)) or (isinstance(L, sp.Basic) and L.is_number)):
        raise ValueError(f"{name}: the test kernel needs a numeric depth, got depth={L}")
    return int(L)
