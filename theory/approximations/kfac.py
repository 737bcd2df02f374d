"""K-FAC (Martens & Grosse 2015, arXiv:1503.05671): ``alpha = N (L - 1) + 1`` under its rank conditions
(Karakida & Osawa 2020, arXiv:2010.00879, Thm. 6; the derivation from the definition, with the
Forster first layer, is in :mod:`theory.kfac_theory`).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("kfac", depth=3, n_samples=100, input_dim=784)
201
"""
from __future__ import annotations

from theory.kfac_theory import kfac_isotropy, kfac_test_kernel_from_analytic
from theory.registry import register_theory

from ._layerwise import depth_of

__all__ = ["kfac_isotropy_of"]


def _test_kernel(k_train, k_cross, setting):
    return kfac_test_kernel_from_analytic(k_train, k_cross)


@register_theory("kfac", label="K-FAC", citation="arXiv:1503.05671; arXiv:2010.00879 Thm. 6",
                 options=("forster",), test_kernel=_test_kernel)
def kfac_isotropy_of(setting):
    """alpha = r_1 + N (L - 2) + 1 (dimension conditions decided here; draw ranks by the numerics)."""
    if setting.n_samples is None:
        raise ValueError("approximation='kfac' needs n_samples=N (alpha = N(L-1)+1 depends on N)")
    L = depth_of(setting)
    input_dim = setting.input_dim
    if input_dim is None and isinstance(setting.widths, (list, tuple)):
        input_dim = setting.widths[0]
    return kfac_isotropy(L, setting.n_samples, input_dim, setting.widths, setting.n_outputs,
                         bool(setting.option("forster", False)), setting.bias)
