"""``isotropy_constant``: alpha with ``J G^+ J^T / N = alpha I`` for every approximation, derived.

Validates the arguments every approximation shares, then looks the approximation up in
:mod:`theory.registry`: each one's derivation is registered once, in its own module under
:mod:`theory.approximations` (block patterns, K-FAC, unit-wise, the non-isotropic diagonal Fisher,
and any approximation added there).  Numbers or SymPy symbols in, exact SymPy out.
Source: Karakida & Osawa 2020, arXiv:2010.00879, Secs. 3-4.

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
from theory.non_isotropic import IsotropyResult, NotIsotropic, damping_derivation
from theory.registry import Setting, theory_entry, theory_names
from theory.validation import check_choice

__all__ = ["isotropy_constant", "isotropy_result", "NotIsotropic", "IsotropyResult", "APPROXIMATIONS"]

APPROXIMATIONS = theory_names()


def _depth(depth, widths, pattern):
    if depth is None:
        if isinstance(widths, (list, tuple)):
            return sp.Integer(len(widths) - 1)
        if pattern is not None:
            return sp.Integer(len(pattern.tolist() if isinstance(pattern, sp.MatrixBase) else pattern))
        return None
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


def _check_consistent(depth, widths, input_dim, n_outputs) -> None:
    """Contradictory arguments are an error, never silently resolved in favour of one of them."""
    if not isinstance(widths, list):
        return
    pairs = [("depth", depth, "len(widths) - 1", len(widths) - 1),
             ("input_dim", input_dim, "widths[0]", widths[0])]
    if n_outputs != 1:  # the default says nothing; an explicit C must match the output width
        pairs.append(("n_outputs", n_outputs, "widths[-1]", widths[-1]))
    for name, value, other, expected in pairs:
        if value is None:
            continue
        if (sp.sympify(value) - sp.sympify(expected)).is_zero is False:
            raise ValueError(f"{name}={value} contradicts widths={widths!r} ({other} = {expected}): "
                             f"give consistent values, or only one of them")


def isotropy_result(approximation, depth=None, *, n_samples=None, input_dim=None, widths=None, activation="relu",
                    n_outputs=1, pattern=None, forster=False, bias=False, damping=0, bandwidth=None,
                    loss="mse") -> IsotropyResult:
    """Like :func:`isotropy_constant` but returns the :class:`IsotropyResult` (value, conditions, derivation).

    Validates the arguments shared by every approximation, then asks the approximation's registered
    derivation (:func:`theory.registry.theory_entry`).
    """
    name = check_choice("approximation", approximation, theory_names())
    loss = check_choice("loss", loss, ("mse", "cross_entropy"))  # cross_entropy: H Theta_G Pi_H = alpha Pi_H
    entry = theory_entry(name)
    n_samples = _check_count("n_samples", n_samples)
    input_dim = _check_count("input_dim", input_dim)
    n_outputs = _check_count("n_outputs", n_outputs)
    widths = _check_widths(widths)
    get_activation(activation)  # ValueError naming the allowed activations
    if not isinstance(forster, (bool, np.bool_)) or not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"forster={forster!r}, bias={bias!r}: both must be bool")
    for option, value in (("pattern", pattern), ("bandwidth", bandwidth)):
        if value is not None and option not in entry.options:
            raise ValueError(f"{option}={value!r} is not an option of approximation={name!r} "
                             f"(its options: {', '.join(entry.options) or 'none'})")
    _check_consistent(depth, widths, input_dim, n_outputs)
    rho = sp.sympify(damping)
    if rho.is_negative:
        raise ValueError(f"damping={damping!r} is not allowed: expected a number >= 0")
    L = _depth(depth, widths, pattern)
    if L is None and entry.needs_depth:
        raise ValueError("depth=None is not allowed here: give depth=L (an integer >= 1 or a SymPy symbol)")
    if rho.is_zero is not True:  # Float(0.0) != 0 in SymPy, so compare by zeroness; a free symbol counts as > 0
        raise NotIsotropic(f"damping rho = {damping} > 0: the function-space operator has eigenvalues "
                           f"lambda/(lambda + rho) over the spectrum of the (approximate) kernel, equal only for a "
                           f"flat spectrum; isotropy needs the rho -> 0+ limit", "rho -> 0+", damping_derivation())
    options = {"pattern": pattern, "bandwidth": bandwidth, "forster": bool(forster)}
    setting = Setting(depth=L if depth is not None or entry.needs_depth else None, n_samples=n_samples,
                      input_dim=input_dim, widths=widths, activation=activation, n_outputs=n_outputs,
                      bias=bool(bias), options={k: v for k, v in options.items() if k in entry.options}, loss=loss)
    if loss == "cross_entropy":
        from theory.cross_entropy import cross_entropy_isotropy

        return cross_entropy_isotropy(entry, setting)
    return entry.derive(setting)


def isotropy_constant(approximation, depth=None, *, n_samples=None, input_dim=None, widths=None, activation="relu",
                      n_outputs=1, pattern=None, forster=False, bias=False, damping=0, bandwidth=None,
                      loss="mse") -> sp.Expr:
    """alpha such that ``J G^+ J^T / N = alpha I`` (training set, rho -> 0+), as exact SymPy.

    Raises :class:`NotIsotropic` (a ValueError, with ``.reason``, ``.failed_assumption``,
    ``.derivation``) for diagonal Fisher, damping > 0, unit-wise with C > 1, K-FAC with M_0 < N
    without Forster inputs, too-narrow layers, patterns with 1 not in range(S).  For K-FAC only the
    dimension conditions are decided here (``M_l >= N C``, ``M_0 + bias >= N``); the ranks
    ``rank Delta_l = N C``, ``rank Z_l = N`` of a particular draw (relu can fail them at any width) are
    listed in the result's conditions and checked by the numerics diagnostics.  ``ValueError``
    naming the argument for missing/invalid arguments.  See :func:`isotropy_result` for the
    conditions and derivation.  ``loss="cross_entropy"``: the constant of the probability-space statement
    ``H J G^+ J^T Pi_H / N = alpha Pi_H`` (:mod:`theory.cross_entropy`).
    """
    return isotropy_result(approximation, depth, n_samples=n_samples, input_dim=input_dim, widths=widths,
                           activation=activation, n_outputs=n_outputs, pattern=pattern, forster=forster,
                           bias=bias, damping=damping, bandwidth=bandwidth, loss=loss).value
