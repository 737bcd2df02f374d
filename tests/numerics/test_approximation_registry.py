"""numerics.approximations: classes registered by decorator, discovered by pkgutil."""
import pytest

from numerics.approximations import APPROXIMATIONS, get_approximation, registered_names
from numerics.approximations.base import Approximation, register_approximation


def test_the_paper_approximations_come_first_and_families_are_not_listed():
    assert APPROXIMATIONS[:6] == ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal")
    assert "pattern" in registered_names() and "pattern" not in APPROXIMATIONS
    for name in registered_names():
        cls = get_approximation(name)
        assert issubclass(cls, Approximation) and cls.name == name


def test_lookup_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="approximation='kfca' is unknown; allowed: exact, block_diagonal"):
        get_approximation("kfca")
    assert get_approximation(get_approximation("kfac")) is get_approximation("kfac")


def test_a_name_has_one_class():
    class Other(Approximation):  # pragma: no cover - never instantiated
        def direction(self, residual): ...
        def operator(self, X2=None): ...
        def dense_matrix(self): ...
    with pytest.raises(ValueError, match="'kfac' is registered twice"):
        register_approximation("kfac")(Other)
    assert get_approximation("kfac").__name__ == "KFACApproximation"
    with pytest.raises(TypeError, match="decorates Approximation subclasses"):
        register_approximation("thing")(dict)
