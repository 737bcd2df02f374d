"""The linear-algebra lemmas behind approximate-Fisher NGD, machine-checked two ways.

Each lemma is a function returning a :class:`theory.derivation.Derivation` whose named steps are
checked *symbolically on generic matrices* (every entry an independent SymPy symbol, small sizes
such as 3 x 2), so a step holds as a polynomial / rational identity in all entries at once, not
for one lucky instance.  Each lemma also has a *numeric* check for large float64 instances
(hundreds of rows) that returns a :class:`NumericCheck`: the relative error of the identity and
a tolerance ``c * eps * condition`` whose constant ``c`` is justified in that function's docstring
from a standard rounding-error bound.

Lemmas (the identities behind Karakida & Osawa 2020, arXiv:2010.00879; proofs derived here):

* :func:`push_through_lemma` -- ``(rho I + A B)^{-1} A = A (rho I + B A)^{-1}``;
* :func:`pinv_limit_lemma` -- ``lim_{rho->0+} (J^T J + rho I)^{-1} J^T = J^+`` (``= J^T (J J^T)^{-1}``
  for full row rank, the Moore-Penrose inverse in general);
* :func:`kronecker_pinv_lemma` -- ``(B (x) A)^+ = B^+ (x) A^+`` and the Kronecker quadratic form;
* :func:`khatri_rao_gram_lemma` -- ``J J^T = (Delta Delta^T) o (Z Z^T (x) 1 1^T)``;
* :func:`pinv_product_lemma` -- ``(A B)^+ = B^+ A^+`` (full column rank A, full row rank B), the
  counterexample for ``(A B C)^+`` with a singular middle factor, and ``(U^T M U)^+ = U^T M^+ U``;
* :func:`ntk_telescoping_lemma` -- ``Theta^(L) = sum_l Sigma^(l) prod_{k>l} dotSigma^(k)``.

:func:`all_lemmas` returns the whole catalogue (checked) for ``proofs/`` and the reports.

>>> d = push_through_lemma()
>>> d.verified, [s.status for s in d.steps][:2]
(True, ['checked', 'checked'])
"""
from __future__ import annotations

import functools
from typing import Callable, List, Tuple

import numpy as np

from theory.derivation import Derivation
from theory.validation import check_positive_int

# the catalogue is split by lemma; every name (and the private helpers the tests use) is re-exported here
from theory.lemmas._common import (  # noqa: F401
    EPS, ILL_CONDITIONED, RANK_GAP, NumericCheck, _generic_matrix, _generic_vector, _expands_to_zero, _cancels_to_zero, _finish, _finite_real, _condition, _require_conditioned, _rel_fro, penrose_symbolic, damped_pseudo_inverse, numerical_pinv, penrose_residuals)
from theory.lemmas.push_through import (  # noqa: F401
    push_through_lemma, push_through_check)
from theory.lemmas.pinv_limit import (  # noqa: F401
    pinv_limit_lemma, pinv_limit_errors, pinv_limit_first_order, right_inverse_check)
from theory.lemmas.kronecker import (  # noqa: F401
    kronecker_pinv_lemma, kronecker_pinv_check, kronecker_quadratic_form_check)
from theory.lemmas.khatri_rao import (  # noqa: F401
    khatri_rao_gram_lemma, explicit_layer_jacobian, khatri_rao_gram, _check_factors, khatri_rao_gram_check)
from theory.lemmas.products import (  # noqa: F401
    COUNTEREXAMPLE, _cayley_orthogonal, pinv_product_lemma, _full_rank, pinv_product_check, triple_product_pinv_gap, orthonormal_conjugation_pinv_check)
from theory.lemmas.telescoping import (  # noqa: F401
    _telescoped, ntk_telescoping_lemma, _check_kernel_lists, ntk_by_recursion, ntk_by_layer_sum, ntk_telescoping_check)

__all__ = [
    "NumericCheck", "EPS", "ILL_CONDITIONED",
    "push_through_lemma", "pinv_limit_lemma", "kronecker_pinv_lemma", "khatri_rao_gram_lemma",
    "pinv_product_lemma", "ntk_telescoping_lemma", "all_lemmas",
    "push_through_check", "damped_pseudo_inverse", "pinv_limit_errors", "pinv_limit_first_order",
    "right_inverse_check", "numerical_pinv", "penrose_residuals", "kronecker_pinv_check",
    "kronecker_quadratic_form_check", "explicit_layer_jacobian", "khatri_rao_gram",
    "khatri_rao_gram_check", "pinv_product_check", "triple_product_pinv_gap",
    "orthonormal_conjugation_pinv_check", "ntk_by_recursion", "ntk_by_layer_sum",
    "ntk_telescoping_check", "COUNTEREXAMPLE", "numeric_lemma_checks", "NUMERIC_CHECK_NAMES",
]


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------
LEMMAS: Tuple[Callable[..., Derivation], ...] = (
    push_through_lemma, pinv_limit_lemma, kronecker_pinv_lemma, khatri_rao_gram_lemma,
    pinv_product_lemma, ntk_telescoping_lemma,
)


def all_lemmas(check: bool = True) -> List[Derivation]:
    """Every lemma's derivation (checked unless ``check=False``), in catalogue order.

    The checked catalogue is computed once per process (about 10 s of SymPy) and shared: treat the
    returned derivations as read-only.

    >>> [d.title for d in all_lemmas(check=False)][:2]
    ['Push-through identity', 'Pseudo-inverse as the damping limit']
    """
    if check:
        return list(_checked_catalogue())
    return [lemma(check=False) for lemma in LEMMAS]


@functools.lru_cache(maxsize=1)
def _checked_catalogue() -> Tuple[Derivation, ...]:
    return tuple(lemma(check=True) for lemma in LEMMAS)


def numeric_lemma_checks(seed: int = 0, size: int = 200) -> dict:
    """Every lemma's numeric check on one seeded random instance with ``size`` rows (default 200).

    Rank-deficient factors are used where the lemma allows them (Kronecker, conjugation), so the
    pseudo-inverse statements are exercised beyond the invertible case.  Returns
    ``{lemma name: NumericCheck}``; a report can print error, tolerance and condition per lemma.

    >>> checks = numeric_lemma_checks(seed=0, size=60)
    >>> sorted(checks) == sorted(NUMERIC_CHECK_NAMES), all(c.passed for c in checks.values())
    (True, True)
    """
    size = check_positive_int("size", size, minimum=40)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    n = size // 4

    def low_rank(m, k, r):
        return rng.standard_normal((m, r)) @ rng.standard_normal((r, k))

    A = rng.standard_normal((size, n))
    kb, ka = max(4, size // 20), max(5, size // 16)          # Kronecker product of about size x size
    U = np.linalg.qr(rng.standard_normal((size, n)))[0].T
    L = 8
    return {
        "push-through": push_through_check(A, A.T / size, 0.1),
        "right inverse": right_inverse_check(rng.standard_normal((n, size))),
        "Kronecker pseudo-inverse": kronecker_pinv_check(low_rank(kb, kb + 2, kb - 2), low_rank(ka, ka + 3, ka - 3)),
        "Kronecker quadratic form": kronecker_quadratic_form_check(
            rng.standard_normal((kb, kb)), rng.standard_normal((ka, ka)),
            *rng.standard_normal((2, kb)), *rng.standard_normal((2, ka))),
        "Khatri-Rao Gram": khatri_rao_gram_check(rng.standard_normal((n, 2, n)), rng.standard_normal((n, n))),
        "pseudo-inverse of a product": pinv_product_check(A, rng.standard_normal((n, size // 2))),
        "orthonormal conjugation pseudo-inverse": orthonormal_conjugation_pinv_check(U, low_rank(n, n, n - n // 4)),
        "NTK telescoping": ntk_telescoping_check(rng.uniform(0.1, 2.0, (L, n, n)), rng.uniform(0.1, 2.0, (L - 1, n, n))),
    }


NUMERIC_CHECK_NAMES = ("push-through", "right inverse", "Kronecker pseudo-inverse", "Kronecker quadratic form",
                       "Khatri-Rao Gram", "pseudo-inverse of a product", "orthonormal conjugation pseudo-inverse",
                       "NTK telescoping")
