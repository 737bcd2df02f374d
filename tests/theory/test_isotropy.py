"""isotropy_constant / isotropy_result: every approximation, symbolic and numeric, conditions, errors."""
import numpy as np
import pytest
import sympy as sp

from theory.isotropy import NotIsotropic, isotropy_constant, isotropy_result

L = sp.Symbol("L", positive=True, integer=True)
N = sp.Symbol("N", positive=True, integer=True)
M = sp.Symbol("M", positive=True, integer=True)


def test_layerwise_symbolic():
    assert isotropy_constant("exact", depth=L) == 1
    assert isotropy_constant("block_diagonal", depth=L) == L
    assert isotropy_constant("block_tridiagonal", depth=L) == sp.ceiling(L / 3)
    b = sp.Symbol("b", integer=True, nonnegative=True)
    assert isotropy_constant("banded", depth=L, bandwidth=b) == sp.ceiling(L / (2 * b + 1))
    assert isotropy_constant("banded", depth=L, bandwidth=2) == sp.ceiling(L / 5)
    for name in ("exact", "block_diagonal", "block_tridiagonal"):
        assert isotropy_result(name, depth=L).derivation.verified


def test_layerwise_numeric():
    for depth in range(1, 41):
        assert isotropy_constant("block_tridiagonal", depth=depth) == -(-depth // 3)
    for depth in range(1, 8):
        assert isotropy_constant("exact", depth=depth) == 1
        assert isotropy_constant("block_diagonal", depth=depth) == depth
    assert isotropy_constant("banded", depth=11, bandwidth=2) == 3
    res = isotropy_result("block_tridiagonal", depth=8)
    assert res.value == 3 and res.derivation.verified and any("singular" in n for n in res.notes)
    assert isinstance(isotropy_constant("block_tridiagonal", depth=5), sp.Integer)


def test_pattern():
    first_last = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert isotropy_constant("pattern", depth=3, pattern=first_last) == 2
    assert isotropy_constant("pattern", pattern=np.eye(4, dtype=int)) == 4
    non_range = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0],
                 [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]]
    with pytest.raises(NotIsotropic, match="not in range"):
        isotropy_constant("pattern", pattern=non_range)
    with pytest.raises(ValueError, match="depth=4"):
        isotropy_constant("pattern", depth=4, pattern=first_last)
    with pytest.raises(ValueError, match="pattern"):
        isotropy_constant("pattern", depth=3)


def test_kfac():
    assert isotropy_constant("kfac", depth=3, n_samples=100, input_dim=784) == 201
    assert sp.expand(isotropy_constant("kfac", depth=L, n_samples=N) - (N * (L - 1) + 1)) == 0
    assert isotropy_constant("kfac", depth=3, n_samples=100, input_dim=64, forster=True) == 64 + 100 + 1
    with pytest.raises(NotIsotropic, match="leverage"):
        isotropy_constant("kfac", depth=3, n_samples=100, input_dim=64)
    # input_dim taken from widths when not given
    assert isotropy_constant("kfac", depth=3, n_samples=10, widths=[20, 30, 30, 1]) == 21
    res = isotropy_result("kfac", depth=3, n_samples=10, input_dim=20)
    assert res.derivation.verified and res.exact_at_finite_width


def test_unit_wise():
    assert isotropy_constant("unit_wise", depth=3, widths=[784, 512, 512, 1], activation="tanh") == 1025
    assert isotropy_constant("unit_wise", depth=3, widths=[784, 512, 512, 1], activation="relu") == 513
    assert sp.expand(isotropy_constant("unit_wise", depth=L, widths=M, activation="relu") - (M * (L - 1) / 2 + 1)) == 0
    with pytest.raises(NotIsotropic, match="C = 2"):
        isotropy_constant("unit_wise", depth=3, widths=[20, 64, 64, 2], n_outputs=2)
    with pytest.raises(ValueError, match="depth=4 contradicts widths"):
        isotropy_constant("unit_wise", depth=4, widths=[20, 64, 64, 1])


def test_not_isotropic_cases():
    with pytest.raises(NotIsotropic, match="diagonal") as info:
        isotropy_constant("diagonal", depth=3)
    assert info.value.derivation.verified
    for name in ("exact", "block_diagonal", "kfac", "unit_wise"):
        with pytest.raises(NotIsotropic, match="damping"):
            isotropy_constant(name, depth=3, n_samples=10, widths=[20, 30, 30, 1], damping=1e-3)
    with pytest.raises(NotIsotropic, match="damping"):
        isotropy_constant("exact", depth=3, damping=sp.Symbol("rho", positive=True))
    with pytest.raises(NotIsotropic, match="full row rank"):  # P_3 = 1 * 5 < N = 8
        isotropy_constant("block_diagonal", depth=3, n_samples=8, widths=[5, 5, 5, 1])
    assert isotropy_constant("exact", depth=3, n_samples=8, widths=[5, 5, 5, 1]) == 1  # only total P matters


@pytest.mark.parametrize("name, expected", [("exact", 1), ("block_diagonal", 3), ("block_tridiagonal", 1),
                                            ("kfac", 2 * 12 + 1), ("unit_wise", 2 * 32 // 2 + 1)])
def test_numerics_call_convention(name, expected):
    """The exact keyword set the numerics helper passes."""
    got = isotropy_constant(name, depth=3, n_samples=12, input_dim=16, widths=[16, 32, 32, 1], activation="relu",
                            n_outputs=1, pattern=None, bias=False)
    assert got == expected
    assert isotropy_constant(name, 3, n_samples=12, input_dim=16, widths=[16, 32, 32, 1]) == expected


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(approximation="foo", depth=3), ValueError, "approximation='foo'"),
    (dict(approximation="exact", depth=0), ValueError, "depth=0"),
    (dict(approximation="exact", depth=2.5), TypeError, "depth=2.5"),
    (dict(approximation="exact", depth="3"), TypeError, "depth='3'"),
    (dict(approximation="exact"), ValueError, "depth=None"),
    (dict(approximation="kfac", depth=3), ValueError, "n_samples"),
    (dict(approximation="unit_wise", depth=3), ValueError, "widths"),
    (dict(approximation="banded", depth=3), ValueError, "bandwidth"),
    (dict(approximation="banded", depth=3, bandwidth=-1), ValueError, "bandwidth"),
    (dict(approximation="exact", depth=3, damping=-0.1), ValueError, "damping"),
    (dict(approximation="exact", depth=sp.Symbol("x", negative=True)), ValueError, "depth"),
])
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        isotropy_constant(**kwargs)


def test_docstring_examples_run():
    """The runnable examples in every module of the symbolic isotropy theory."""
    import doctest

    import theory.banded
    import theory.isotropy
    import theory.kfac_theory
    import theory.non_isotropic
    import theory.pattern_kernels
    import theory.patterns
    import theory.unit_wise_theory
    for module in (theory.patterns, theory.banded, theory.pattern_kernels, theory.kfac_theory,
                   theory.unit_wise_theory, theory.non_isotropic, theory.isotropy):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(approximation="kfac", depth=3, n_samples=0), ValueError, "n_samples=0"),
    (dict(approximation="kfac", depth=3, n_samples=2.5), TypeError, "n_samples=2.5"),
    (dict(approximation="kfac", depth=3, n_samples=10, input_dim=-1), ValueError, "input_dim=-1"),
    (dict(approximation="exact", depth=3, n_outputs=0), ValueError, "n_outputs=0"),
    (dict(approximation="unit_wise", depth=2, widths=[10, 0, 1]), ValueError, r"widths\[1\]=0"),
    (dict(approximation="unit_wise", depth=2, widths=[10]), ValueError, "widths"),
    (dict(approximation="exact", depth=3, activation="nope"), ValueError, "activation"),
    (dict(approximation="kfac", depth=3, n_samples=10, forster="yes"), TypeError, "forster"),
])
def test_more_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        isotropy_constant(**kwargs)


def test_numpy_integer_arguments():
    assert isotropy_constant("kfac", depth=np.int64(3), n_samples=np.int64(10), input_dim=np.int64(20)) == 21
    assert isotropy_constant("unit_wise", widths=np.array([20, 16, 16, 1]), activation="tanh") == 33


def test_float_zero_damping_is_the_undamped_limit():
    # SymPy's Float(0.0) != 0 once made damping=0.0 raise NotIsotropic; 0.0 and 0 must agree
    assert isotropy_constant("exact", 3, damping=0.0) == 1
    assert isotropy_constant("block_tridiagonal", 5, damping=0.0) == 2
    with pytest.raises(NotIsotropic, match="damping"):
        isotropy_constant("exact", 3, damping=1e-3)


def test_pattern_with_one_in_range_but_zero_alpha_is_not_isotropic():
    # an indefinite pattern found by the property search: 1 in range(S) yet 1^T S^+ 1 = 0, so
    # J G_S^+ J^T / N = 0 and eta = 1/alpha does not exist
    S = [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 1, 1], [0, 1, 0, 1, 1, 0], [0, 1, 1, 1, 1, 1],
         [0, 0, 1, 0, 1, 1]]
    with pytest.raises(NotIsotropic, match="alpha = 1\\^T S\\^\\+ 1 = 0"):
        isotropy_constant("pattern", 6, pattern=S)
