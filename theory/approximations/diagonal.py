"""The entry-wise diagonal Fisher: not isotropic (symbolic counterexample in :mod:`theory.non_isotropic`;
Karakida & Osawa 2020, arXiv:2010.00879, Sec. 4 contrast it with the layer-wise blocks).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("diagonal", depth=3)
Traceback (most recent call last):
...
theory.non_isotropic.NotIsotropic: entry-wise diagonal Fisher: ...
"""
from __future__ import annotations

from theory.non_isotropic import NotIsotropic, diagonal_fisher_derivation
from theory.registry import register_theory

__all__ = ["diagonal_isotropy"]


@register_theory("diagonal", label="diagonal Fisher", needs_depth=False)
def diagonal_isotropy(setting):
    """Always raises :class:`NotIsotropic` with the symbolic 2-sample counterexample."""
    raise NotIsotropic("entry-wise diagonal Fisher: J diag(F)^{-1} J^T / N has nonzero off-diagonal entries "
                       "sum_p J_np J_mp / sum_k J_kp^2 and sample-dependent diagonal entries (symbolic "
                       "2-sample counterexample), so it is not alpha I", "a layer-wise or unit-wise block "
                       "structure", diagonal_fisher_derivation())
