"""Infinite-width theory (SymPy/mpmath): analytic kernels, isotropy constants, checked derivations.

The public names below are imported on first use, so ``import theory`` stays light (no SymPy).

>>> from theory import analytic_kernels, isotropy_constant, NotIsotropic, approximation_label
>>> isotropy_constant("block_tridiagonal", depth=5)
2
>>> approximation_label("kfac")
'K-FAC'
"""
__distribution__ = "ngd-verifier"  # read by theory._guard: keep this line before any import

from theory._guard import check_siblings as _check_siblings, lazy_exports as _lazy_exports

_check_siblings("theory")

from theory._environment import configure_blas_environment as _configure_blas_environment

# before numpy loads OpenBLAS (theory._environment): idle BLAS workers must not spin into batched work
_configure_blas_environment()

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "analytic_kernels": "theory.kernels",
    "isotropy_constant": "theory.isotropy",
    "isotropy_result": "theory.isotropy",
    "NotIsotropic": "theory.isotropy",
    "IsotropyResult": "theory.isotropy",
    "theory_entry": "theory.registry",
    "theory_names": "theory.registry",
    "approximation_label": "theory.registry",
    "register_theory": "theory.registry",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = _lazy_exports('theory', _LAZY)
