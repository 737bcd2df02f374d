"""Finite-width engine: real networks, approximate-Fisher NGD in dual form, measurements.

>>> from numerics import MLP, function_space_operator, train_ngd
"""
__distribution__ = "ngd-verifier"  # read by theory._guard: keep this line before any import

try:
    from theory._guard import check_siblings as _check_siblings
except ImportError as _err:
    if type(_err).__name__ == "ForeignPackageError":
        raise
    import importlib.util as _util
    raise ImportError(f"ngd-verifier's 'numerics' needs ngd-verifier's package 'theory', but 'theory' resolves to "
                      f"{getattr(_util.find_spec('theory'), 'origin', None)!r} ({_err}); rename that folder or "
                      "uninstall the distribution providing 'theory', then reinstall ngd-verifier, best in a fresh "
                      "virtual environment") from _err

_check_siblings("numerics")

from .approximations import APPROXIMATIONS, get_approximation, register_approximation
from .linalg import SingularSystemError
from .measure import IsotropyError, WidthSweep, isotropy_error, width_sweep
from .network import MLP
from .operator import function_space_operator
from .threads import all_blas_threads, blas_threads, single_blas_thread

_TRAINING = ("train_ngd", "ngd_step", "one_step_loss_ratio", "History")


def __getattr__(name):
    # numerics.training asks theory.isotropy (SymPy derivations) for alpha: loaded on first use
    if name in _TRAINING:
        from . import training
        return getattr(training, name)
    raise AttributeError(f"module 'numerics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_TRAINING))


__all__ = ["APPROXIMATIONS", "MLP", "SingularSystemError", "function_space_operator", "get_approximation",
           "register_approximation", "isotropy_error", "IsotropyError", "WidthSweep", "width_sweep",
           "blas_threads", "single_blas_thread", "all_blas_threads", *_TRAINING]
