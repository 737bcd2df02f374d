"""``isotropy_constant``: alpha with ``J G^+ J^T / N = alpha I`` for every approximation, derived.

Dispatches to the derivations: block patterns (:mod:`theory.patterns`, :mod:`theory.banded`),
K-FAC (:mod:`theory.kfac_theory`), unit-wise (:mod:`theory.unit_wise_theory`) and the
non-isotropic cases (:mod:`theory.non_isotropic`).  Numbers or SymPy symbols in, exact SymPy out.

>>> import sympy as sp
>>> L = sp.Symbol("L", positive=True, integer=True)
>>> isotropy_constant("block_tridiagonal", depth=L), isotropy_constant("block_tridiagonal", depth=5)
(ceiling(L/3), 2)
>>> isotropy_constant("kfac", depth=3, n_samples=100, input_dim=784)
201
>>> isotropy_constant("unit_wise", depth=3, widths=[784, 512, 512, 1], activation="tanh")
1025
>>> isotropy_result("block_diagonal", depth=4).conditions[0]
'every layer Jacobian J_l has full row rank N C (layer Grams invertible)'
"""
from __future__ import annotations

import numbers

import numpy as np
import sympy as sp

from theory.activations import get_activation
from theory.banded import (banded_alpha_closed_form, banded_closed_form_derivation,
                           tridiagonal_closed_form_derivation)
from theory.derivation import Derivation
from theory.kfac_theory import kfac_isotropy
from theory.non_isotropic import (IsotropyResult, NotIsotropic, damping_derivation, diagonal_fisher_derivation,
                                  singular_layer_gram_derivation)
from theory.patterns import analyze_pattern, banded_pattern, exact_pattern, validate_pattern
from theory.unit_wise_theory import unit_wise_isotropy
from theory.validation import check_choice

__all__ = ["isotropy_constant", "isotropy_result", "NotIsotropic", "IsotropyResult", "APPROXIMATIONS"]

APPROXIMATIONS = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal",
                  "pattern", "banded")
_LAYERWISE_CONDITIONS = ["every layer Jacobian J_l has full row rank N C (layer Grams invertible)",
                         "pseudo-inverse (rho -> 0+) limit"]


def _depth(depth, widths, pattern):
    if depth is None:
        if isinstance(widths, (list, tuple)):
            return sp.Integer(len(widths) - 1)
        if pattern is not None:
            return sp.Integer(len(pattern.tolist() if isinstance(pattern, sp.MatrixBase) else pattern))
        raise ValueError("depth=None is not allowed here: give depth=L (an integer >= 1 or a SymPy symbol)")
    if isinstance(depth, sp.Basic) and not depth.is_number:
        if depth.is_nonpositive or depth.is_integer is False:
            raise ValueError(f"depth={depth} is not allowed: expected a positive integer (or symbol)")
        return depth
    if isinstance(depth, bool) or not isinstance(depth, (numbers.Integral, np.integer, sp.Integer)):
        raise TypeError(f"depth={depth!r} is not allowed: expected an integer >= 1 or a SymPy symbol")
    if int(depth) < 1:
        raise ValueError(f"depth={depth} is not allowed: expected an integer >= 1")
    return sp.Integer(int(depth))


def _check_count(name: str, value, minimum: int = 1):
    """A positive integer (numbers) or any SymPy expression (symbols); ``None`` passes through."""
    if value is None or (isinstance(value, sp.Basic) and not value.is_number):
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer, sp.Integer)):
        raise TypeError(f"{name}={value!r} is not allowed: expected an integer >= {minimum} or a SymPy symbol")
    if int(value) < minimum:
        raise ValueError(f"{name}={value} is not allowed: expected an integer >= {minimum}")
    return int(value)


def _check_widths(widths):
    if widths is None or (isinstance(widths, sp.Basic) and not widths.is_number):
        return widths
    if isinstance(widths, (list, tuple, np.ndarray)):
        ws = list(widths)
        if len(ws) < 2:
            raise ValueError(f"widths={ws!r} is not allowed: expected [M_0, ..., M_(L-1), C] (at least 2 entries)")
        return [_check_count(f"widths[{i}]", w) for i, w in enumerate(ws)]
    return _check_count("widths", widths)  # a single hidden width M (with depth)


def _check_layer_ranks(depth, widths, n_samples, n_outputs, bias, only_total: bool) -> None:
    """Raise NotIsotropic when a layer Jacobian is too narrow to have full row rank N C."""
    if not isinstance(widths, (list, tuple)) or n_samples is None:
        return
    ws = [sp.sympify(w) for w in widths]
    b = 1 if bias else 0
    NC = sp.sympify(n_samples) * sp.sympify(n_outputs)
    sizes = [ws[l + 1] * (ws[l] + b) for l in range(len(ws) - 1)]  # P_l = M_l (M_{l-1} + bias)
    checks = [("P = sum_l P_l", sum(sizes, sp.Integer(0)))] if only_total else \
        [(f"P_{l + 1} = M_{l + 1} (M_{l} + bias)", p) for l, p in enumerate(sizes)]
    for label, p in checks:
        if (p - NC).is_negative:
            raise NotIsotropic(
                f"{label} = {p} < N C = {NC}: that Jacobian cannot have full row rank, its Gram is singular and "
                f"J_l J_l^+ is a projection of rank < N C, not I", "layer Jacobians of full row rank",
                singular_layer_gram_derivation())


def _pattern_result(name, S, depth, conditions, closed_form=None, closed_derivation=None) -> IsotropyResult:
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
    if np.linalg.eigvalsh(np.array(a.pattern.tolist(), dtype=float))[0] < -1e-12:
        notes.append("S is indefinite, so G_S is not positive semi-definite: G_S + rho I is singular at isolated "
                     "rho > 0, but the rho -> 0+ limit is well defined")
    if not a.invertible:
        notes.append(f"S singular (null space {a.null_basis.T.tolist()}): the test kernel carries the null-space "
                     f"correction, not sum_l c_l Theta_l(x',X) Theta_l^-1 (theory.pattern_kernels)")
    return IsotropyResult(name, a.alpha, list(conditions), derivation, True, notes)


def isotropy_result(approximation, depth=None, *, n_samples=None, input_dim=None, widths=None, activation="relu",
                    n_outputs=1, pattern=None, forster=False, bias=False, damping=0, bandwidth=None) -> IsotropyResult:
    """Like :func:`isotropy_constant` but returns the :class:`IsotropyResult` (value, conditions, derivation)."""
    name = check_choice("approximation", approximation, APPROXIMATIONS)
    n_samples = _check_count("n_samples", n_samples)
    input_dim = _check_count("input_dim", input_dim)
    n_outputs = _check_count("n_outputs", n_outputs)
    widths = _check_widths(widths)
    get_activation(activation)  # ValueError naming the allowed activations
    if not isinstance(forster, (bool, np.bool_)) or not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"forster={forster!r}, bias={bias!r}: both must be bool")
    rho = sp.sympify(damping)
    if rho.is_negative:
        raise ValueError(f"damping={damping!r} is not allowed: expected a number >= 0")
    if rho.is_zero is not True:  # Float(0.0) != 0 in SymPy, so compare by zeroness; a free symbol counts as > 0
        raise NotIsotropic(f"damping rho = {damping} > 0: the function-space operator has eigenvalues "
                           f"lambda/(lambda + rho) over the spectrum of the (approximate) kernel, equal only for a "
                           f"flat spectrum; isotropy needs the rho -> 0+ limit", "rho -> 0+", damping_derivation())
    if name == "diagonal":
        raise NotIsotropic("entry-wise diagonal Fisher: J diag(F)^{-1} J^T / N has nonzero off-diagonal entries "
                           "sum_p J_np J_mp / sum_k J_kp^2 and sample-dependent diagonal entries (symbolic "
                           "2-sample counterexample), so it is not alpha I", "a layer-wise or unit-wise block "
                           "structure", diagonal_fisher_derivation())
    if name == "kfac":
        # dimension conditions only; rank(Delta_l) = N C and rank(Z_l) = N on a particular draw (relu can
        # fail it at any width) is stated in the conditions and checked by the numerics diagnostics
        if n_samples is None:
            raise ValueError("approximation='kfac' needs n_samples=N (alpha = N(L-1)+1 depends on N)")
        L = _depth(depth, widths, None)
        if input_dim is None and isinstance(widths, (list, tuple)):
            input_dim = widths[0]
        return kfac_isotropy(L, n_samples, input_dim, widths, n_outputs, forster, bias)
    if name == "unit_wise":
        if widths is None:
            raise ValueError("approximation='unit_wise' needs widths=[M_0, ..., M_{L-1}, C] (alpha = gamma sum M_l + 1)")
        if depth is not None:
            _depth(depth, widths, None)
        return unit_wise_isotropy(widths, activation, n_outputs, n_samples, bias, depth)

    L = _depth(depth, widths, pattern)
    _check_layer_ranks(L, widths, n_samples, n_outputs, bias, only_total=(name == "exact"))
    numeric = L.is_number
    if name == "exact":
        if numeric:
            return _pattern_result(name, exact_pattern(int(L)), L, ["J has full row rank N C", _LAYERWISE_CONDITIONS[1]])
        d = Derivation("Exact NGD: alpha = 1", r"\mathbf 1^T (\mathbf 1\mathbf 1^T)^+ \mathbf 1 = 1",
                       ["J has full row rank N C"])
        d.add_step("c = 1/L solves (1 1^T) c = 1", L * (1 / L), 1, "each row sums L entries 1/L")
        d.add_step("alpha = 1^T c", L * (1 / L), 1, "alpha = 1^T c' for any solution c'")
        d.check()
        return IsotropyResult(name, sp.Integer(1), ["J has full row rank N C"], d, True)
    if name in ("block_diagonal", "block_tridiagonal", "banded"):
        if name == "banded":
            if bandwidth is None:
                raise ValueError("approximation='banded' needs bandwidth=b (half-bandwidth, |l-l'| <= b)")
            b = sp.sympify(bandwidth)
            if b.is_number and (not b.is_integer or b < 0):
                raise ValueError(f"bandwidth={bandwidth!r} is not allowed: expected an integer >= 0")
        else:
            b = sp.Integer(0 if name == "block_diagonal" else 1)
        closed = banded_alpha_closed_form(L, b)
        if numeric and b.is_number:
            return _pattern_result(name, banded_pattern(int(L), int(b)), L, _LAYERWISE_CONDITIONS, closed)
        if b == 0:
            d = Derivation("Block-diagonal NGD: alpha = L", r"\mathbf 1^T I^+ \mathbf 1 = L", _LAYERWISE_CONDITIONS)
            d.add_step("c = I^+ 1 = 1, alpha = sum_l 1", sp.summation(1, (sp.Symbol("l"), 1, L)), L, "")
            d.add_step("closed form ceiling(L/1)", closed, L, "")
            d.check()
        elif b == 1:
            d = tridiagonal_closed_form_derivation()
        elif b.is_number:
            d = banded_closed_form_derivation(int(b))
        else:  # symbolic bandwidth: the perfect-code proof, checked for b = 1, 2, 3
            d = Derivation("Banded pattern: alpha = ceiling(L/(2b+1))", r"\lceil L/(2b+1)\rceil",
                           _LAYERWISE_CONDITIONS)
            for bb in (1, 2, 3):
                sub = banded_closed_form_derivation(bb)
                d.add_step(f"perfect-code proof for b = {bb}", sp.Integer(int(sub.verified)), 1, sub.title)
            d.check()
        return IsotropyResult(name, sp.sympify(closed), list(_LAYERWISE_CONDITIONS), d, True,
                              ["rho -> 0+ limit equals G^+ grad because grad lies in range(G) (1 in range(S))"])
    # name == "pattern"
    if pattern is None:
        raise ValueError("approximation='pattern' needs pattern=S (an L x L symmetric 0/1 matrix, unit diagonal)")
    S = validate_pattern(pattern)
    if numeric and S.rows != int(L):
        raise ValueError(f"pattern is {S.rows} x {S.rows} but depth={L}")
    return _pattern_result(name, S, L, _LAYERWISE_CONDITIONS + ["1 in range(S)"])


def isotropy_constant(approximation, depth=None, *, n_samples=None, input_dim=None, widths=None, activation="relu",
                      n_outputs=1, pattern=None, forster=False, bias=False, damping=0, bandwidth=None) -> sp.Expr:
    """alpha such that ``J G^+ J^T / N = alpha I`` (training set, rho -> 0+), as exact SymPy.

    Raises :class:`NotIsotropic` (a ValueError, with ``.reason``, ``.failed_assumption``,
    ``.derivation``) for diagonal Fisher, damping > 0, unit-wise with C > 1, K-FAC with M_0 < N
    without Forster inputs, too-narrow layers, patterns with 1 not in range(S).  For K-FAC only the
    dimension conditions are decided here (``M_l >= N C``, ``M_0 + bias >= N``); the ranks
    ``rank Delta_l = N C``, ``rank Z_l = N`` of a particular draw (relu can fail them at any width) are
    listed in the result's conditions and checked by the numerics diagnostics.  ``ValueError``
    naming the argument for missing/invalid arguments.  See :func:`isotropy_result` for the
    conditions and derivation.
    """
    return isotropy_result(approximation, depth, n_samples=n_samples, input_dim=input_dim, widths=widths,
                           activation=activation, n_outputs=n_outputs, pattern=pattern, forster=forster,
                           bias=bias, damping=damping, bandwidth=bandwidth).value
