"""K-FAC (Martens & Grosse 2015, arXiv:1503.05671): ``alpha = N (L - 1) + 1`` under its rank conditions
(Karakida & Osawa 2020, arXiv:2010.00879, Thm. 6; the derivation from the definition, with the
Forster first layer, is in :mod:`theory.kfac_theory`).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("kfac", depth=3, n_samples=100, input_dim=784)
201
"""
from __future__ import annotations

import sympy as sp

from theory.activations import get_activation
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
    result = kfac_isotropy(L, setting.n_samples, input_dim, setting.widths, setting.n_outputs,
                           bool(setting.option("forster", False)), setting.bias)
    if get_activation(setting.activation).name == "linear":
        # deep linear net: the backward signals do not depend on the input, Delta_l = 1_N (x) D_l with
        # D_l (C x M_l) the same for every sample, so P_Delta = (1 1^T / N) (x) P_D and every layer
        # contributes N P_Delta o (P_Z (x) 1 1^T) = P_Z (x) P_D = I (Z_l of rank N, D_l of rank C):
        # alpha = L, not N (L - 1) + 1 (measured: 2, 3, 4 at L = 2, 3, 4, N = 6)
        value = sp.sympify(L)
        if value.is_number:
            result.derivation.add_step("linear net: each of the L layers contributes P_Z (x) P_D = I",
                                       sp.Add(*[sp.Integer(1)] * int(value)), value,
                                       "Delta_l = 1_N (x) D_l: the backward factor projects on constant vectors")
            result.derivation.check()
        result = type(result)(result.approximation, value, result.conditions + [
            "linear activation: Delta_l identical across samples (rank C per layer)"], result.derivation, True,
            list(result.notes) + ["deep linear network: every layer contributes I, alpha = L"])
    return result
