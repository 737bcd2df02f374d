"""Unit-wise NGD: ``alpha = gamma sum_{l<L} M_l + 1`` for C = 1 (Karakida & Osawa 2020,
arXiv:2010.00879, Thm. 7; gamma and the multi-output case in :mod:`theory.unit_wise_theory`).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("unit_wise", widths=[784, 512, 512, 1], activation="tanh")
1025
"""
from __future__ import annotations

from theory.registry import register_theory
from theory.unit_wise_theory import unit_wise_isotropy

__all__ = ["unit_wise_isotropy_of"]


@register_theory("unit_wise", label="unit-wise", needs_depth=False)
def unit_wise_isotropy_of(setting):
    """alpha = gamma sum M_l + 1 (needs the widths); NotIsotropic for C > 1."""
    if setting.widths is None:
        raise ValueError("approximation='unit_wise' needs widths=[M_0, ..., M_{L-1}, C] (alpha = gamma sum M_l + 1)")
    return unit_wise_isotropy(setting.widths, setting.activation, setting.n_outputs, setting.n_samples,
                              setting.bias, setting.depth)
