"""Closed forms in L: block tri-diagonal alpha = ceiling(L/3), banded alpha = ceiling(L/(2b+1))."""
import numpy as np
import pytest
import sympy as sp

from theory.banded import (_window_sum, admissible_offsets, banded_alpha_closed_form, banded_closed_form_derivation,
                           banded_nullity_closed_form, banded_weights_closed_form,
                           enumerate_banded_alpha, perfect_code_offset, s_sym,
                           tridiagonal_closed_form_derivation, tridiagonal_determinant_closed_form,
                           tridiagonal_weights)
from theory.patterns import analyze_pattern, banded_pattern, tridiagonal_pattern


def test_tridiagonal_alpha_is_ceiling_up_to_40():
    """Exact rational pinv enumeration, L = 1..40, including every L = 2 mod 3 (singular T)."""
    alphas = enumerate_banded_alpha(40, 1)
    assert alphas == [sp.ceiling(sp.Rational(L, 3)) for L in range(1, 41)]


def test_tridiagonal_symbolic_proof_all_steps_checked():
    d = tridiagonal_closed_form_derivation()
    assert d.verified, [s.name for s in d.failed_steps()]
    names = " ".join(s.name for s in d.steps)
    for residue in ("r=0", "r=1", "r=2", "L=3s+2: c orthogonal", "continuant", "det T at L = 3s+2"):
        assert residue in names
    assert d.conclusion == sp.ceiling(sp.Symbol("L", integer=True, positive=True) / 3)


def test_determinant_closed_form_and_recurrence():
    dets = [tridiagonal_pattern(L).det() for L in range(1, 21)]
    assert dets == [sp.nsimplify(sp.expand_trig(tridiagonal_determinant_closed_form(L))) for L in range(1, 21)]
    assert dets[:6] == [1, 0, -1, -1, 0, 1]  # period 6
    assert [L for L in range(1, 21) if dets[L - 1] == 0] == [L for L in range(1, 21) if L % 3 == 2]


@pytest.mark.parametrize("L", range(3, 31))
def test_tridiagonal_weights_periodic_pattern(L):
    c = list(tridiagonal_weights(L))
    if L % 3 == 0:
        expected = [1 if l % 3 == 2 else 0 for l in range(1, L + 1)]
    elif L % 3 == 1:
        expected = [1 if l % 3 == 1 else 0 for l in range(1, L + 1)]
    else:
        expected = [sp.Rational(1, 2) if l % 3 != 0 else 0 for l in range(1, L + 1)]
    assert c == expected


def test_singular_tridiagonal_null_vector():
    for L in (5, 8, 11):
        a = analyze_pattern(tridiagonal_pattern(L))
        n = a.null_basis[:, 0]
        pattern = [1, -1, 0] * (L // 3) + [1, -1]
        assert a.null_basis.cols == 1
        assert n == sp.Matrix(pattern) * (n[0] / 1)  # proportional to (1,-1,0,...,1,-1)
        assert a.alpha == sp.Rational(L + 1, 3)


@pytest.mark.parametrize("b", [0, 1, 2, 3, 4])
def test_banded_alpha_against_enumeration(b):
    """Exact rational pinv for L = 1..30 equals ceiling(L/(2b+1)) (b = 0 is block-diagonal: L),
    c = S^+ 1 equals the average of the admissible perfect codes, and dim null(S) = #codes - 1."""
    for L in range(1, 31):
        a = analyze_pattern(banded_pattern(L, b))
        assert a.alpha == banded_alpha_closed_form(L, b)
        assert a.weights == banded_weights_closed_form(L, b)
        assert a.null_basis.cols == banded_nullity_closed_form(L, b)
        if L >= 2:  # singular iff L mod (2b+1) is not 0 or 1
            assert (a.null_basis.cols > 0) == (L % (2 * b + 1) not in (0, 1))
    assert enumerate_banded_alpha(5, b) == [banded_alpha_closed_form(L, b) for L in range(1, 6)]


@pytest.mark.parametrize("b", [1, 2, 3])
def test_banded_symbolic_proof(b):
    d = banded_closed_form_derivation(b)
    assert d.verified
    # rows checked per residue: 2b+1 interior + b top + b bottom + 1 count
    assert len(d.steps) == (2 * b + 1) * (2 * b + 1 + 2 * b + 1) + 1  # + the s = 0 enumeration


def test_banded_proof_rejects_a_wrong_code():
    """With a wrong offset a window misses the one: the symbolic row check returns 0, not 1."""
    period = 5  # b = 2
    assert _window_sum(sp.Integer(0), 1, 1 + 2, 4, period) == 0  # top row 1 with offset a = 4 > b + 1
    assert _window_sum(period * s_sym + 1, -2, 0, 1, period) == 1


@pytest.mark.parametrize("b", [1, 2, 3])
def test_two_codes_imply_singular(b):
    """Two admissible offsets give two solutions of S c = 1, so S must be singular."""
    for L in range(2 * b + 2, 25):
        offsets = perfect_code_offset(L % (2 * b + 1), b)
        if len(offsets) > 1:
            assert banded_pattern(L, b).det() == 0
    if b == 1:  # for T this is exactly the L = 2 mod 3 family
        assert all((len(perfect_code_offset(L % 3, 1)) > 1) == (L % 3 == 2) for L in range(4, 30))


def test_admissible_offsets_agree_with_residue_rule():
    for b in (1, 2, 3):
        for L in range(2 * b + 1, 40):
            assert admissible_offsets(L, b) == perfect_code_offset(L % (2 * b + 1), b)


def test_closed_form_symbolic():
    L = sp.Symbol("L", positive=True, integer=True)
    b = sp.Symbol("b", nonnegative=True, integer=True)
    assert banded_alpha_closed_form(L, 1) == sp.ceiling(L / 3)
    assert banded_alpha_closed_form(L, b) == sp.ceiling(L / (2 * b + 1))
    assert banded_alpha_closed_form(12, 2) == 3


def test_banded_singular_weights_min_norm():
    """For singular banded S, c = S^+ 1 has minimum norm among solutions (numpy lstsq cross-check)."""
    for L, b in ((7, 2), (8, 2), (9, 3)):
        S = np.array(banded_pattern(L, b).tolist(), float)
        c = np.array([float(x) for x in analyze_pattern(banded_pattern(L, b)).weights])
        c_ref = np.linalg.lstsq(S, np.ones(L), rcond=None)[0]  # min-norm least-squares solution
        assert np.abs(c - c_ref).max() < 1e-10  # lstsq on a 9 x 9 0/1 matrix: ~1e-14 error
