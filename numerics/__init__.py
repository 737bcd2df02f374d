"""Finite-width engine: real networks, approximate-Fisher NGD in dual form, measurements.

>>> from numerics import MLP, function_space_operator, train_ngd
"""
from .approximations import APPROXIMATIONS, get_approximation
from .linalg import SingularSystemError
from .network import MLP
from .operator import function_space_operator


def __getattr__(name):
    # train_ngd imports theory.isotropy lazily (written in parallel); keep `import numerics` light
    if name in ("train_ngd", "History"):
        from . import training
        return getattr(training, name)
    raise AttributeError(f"module 'numerics' has no attribute {name!r}")


__all__ = ["APPROXIMATIONS", "MLP", "SingularSystemError", "function_space_operator", "get_approximation",
           "train_ngd", "History"]
