"""Why a Fisher / NTK system is singular: one function per cause, shared by every approximation.

A singular system is a set of (nearly) linearly dependent rows.  The rows belong to a *target*:

* ``Target("jacobian")``          -- the full Jacobian ``J`` (exact NGD's ``J J^T``);
* ``Target("layer", l)``          -- the layer Jacobian ``J_l`` (block patterns: ``J_l J_l^T``);
* ``Target("input_factor", l)``   -- K-FAC's ``Z_l`` (also EKFAC, unit-wise);
* ``Target("backward_factor", l)`` -- K-FAC's ``Delta_l`` (also EKFAC).

Every row of a target belongs to one sample ``x_n`` (``C`` rows per sample for ``J``, ``J_l`` and
``Delta_l``).  The causes, most specific first (:data:`CAUSES`; each is one function below returning a
:class:`Diagnosis` -- code, sentence, the :class:`~theory.assumptions.Assumption` it violates -- or
``None`` when it does not apply):

1. :func:`zero_input_rows` -- ``x_i = 0`` (or nearly) without a bias: the target's row ``i`` vanishes;
2. :func:`parallel_inputs` -- ``x_j = c x_i``, ``c > 0``, under a positively homogeneous activation
   without a bias (``theory.activations`` says which activations are): every layer input scales by
   ``c`` and every backward signal is unchanged, so the rows are proportional;
3. :func:`duplicate_inputs` -- bit-identical rows of ``X``;
4. :func:`near_duplicate_inputs` -- two inputs whose target rows are closer than the system's cut;
5. architecture: :func:`too_few_parameters` (``P_l < N C``), :func:`narrow_layer` (``M_l < N C`` for
   ``Delta_l``, ``M_{l-1} + bias < N`` for ``Z_l``), :func:`dependent_inputs` (``rank Z_1 < N`` although
   ``M_0 + bias >= N``), :func:`numerically_rank_deficient` (full rank at rounding level, below the cut);
6. :func:`dead_units` (only for activations whose derivative vanishes on an interval: ``gamma < 1``)
   and :func:`saturated_units` (``gamma = 1``, e.g. tanh: ``phi'`` rounds to 0 at large ``|u|``);
7. :func:`silent_inputs` -- rows of the target that are exactly zero on nonzero inputs (every unit of
   some layer inactive there);
8. the factor structure (:func:`shared_activation_pattern`, :func:`factor_structure`) and the layer
   rank bounds (:func:`layer_rank_bound`, :func:`jacobian_rank_bound`); last, :func:`no_structural_cause`.
   Coupled block-pattern systems add :func:`layer_scale_spread` (layer Grams of very different scales).

The orchestrators, one per failed system (the flag code is that of the cause named first):

* :func:`diagnose_ntk_gram` (exact NGD, ``J J^T``): input causes, ``P < N C``, silent inputs, the
  layer-rank bound ``sum_l rank(J_l) < N C``, else no structural cause (code ``ntk_gram_singular``);
* :func:`diagnose_layer_gram` (block patterns, ``J_l J_l^T``): input causes, ``P_l < N C``, silent inputs,
  the bound ``rank(Delta_l) rank(Z_l) < N C`` with every factor cause, narrow factors completed by the
  activation patterns, else no structural cause (code ``layer_gram_singular``);
* :func:`diagnose_factor` (K-FAC, EKFAC, unit-wise: ``Delta_l`` or ``Z_l`` separately): an input cause
  alone, else every structural cause that applies (narrow layer, dependent inputs, dead / saturated units,
  silent inputs; shared activation patterns only when none of these), else the numerical cut, else the
  factor structure (code ``rank_deficient``);
* :func:`input_diagnoses` (the diagonal Fisher, which solves nothing: zero, parallel, duplicate inputs).

Each :class:`Diagnosis` turns into a :class:`~theory.assumptions.Flag` (:meth:`Diagnosis.flag`); the
approximations keep their own violated assumption (``FULL_ROW_RANK_JACOBIANS``, ``KFAC_RANK``, ...) on
the flag so the claims' identity checks are unchanged, and put the cause in the code.

An input-level cause is named for a target only when it is *verified on that target's rows*: the
rows are zero, proportional or close to within ``sqrt(cut)`` relative, where ``cut`` is the
eigenvalue ratio below which the caller's system counts as singular (``1 / max_condition`` for the
checked Cholesky/LU solves, ``rank_rtol`` for the factor Grams of K-FAC, EKFAC and unit-wise).  Such
a pair or row alone gives the Gram an eigenvalue below ``cut`` times its largest.

Never a false inequality: every ``a < b`` these sentences print comes from :func:`relation`, which
prints the relation the two numbers actually have (``tests/numerics/test_diagnosis_inequalities.py``
parses them over hypothesis-generated failures and checks each).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([3, 16, 1], activation="relu", seed=0)
>>> X = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [2.0, 0.0, 4.0]])
>>> ev = Evidence(net, net.factors(X), X)
>>> d = parallel_inputs(ev, Target("layer", 1))
>>> d.code, d.message.split(" (")[0]
('parallel_inputs', 'X[2] = 2 X[0]')
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from theory.assumptions import (DISTINCT_INPUTS, FULL_ROW_RANK_JACOBIANS, HIDDEN_WIDTH, INPUT_WIDTH, KFAC_RANK,
                                LINEARLY_INDEPENDENT_INPUTS, NO_DEAD_UNITS, NO_SILENT_INPUTS, NONZERO_VARIANCE,
                                NTK_POSITIVE_DEFINITE, Assumption, Flag)

__all__ = [
    "Diagnosis", "Evidence", "Target", "CAUSES", "relation", "fmt",
    "zero_input_rows", "parallel_inputs", "duplicate_inputs", "near_duplicate_inputs", "too_few_parameters",
    "narrow_layer", "dependent_inputs", "numerically_rank_deficient", "dead_units", "saturated_units",
    "silent_inputs", "shared_activation_pattern", "factor_structure", "layer_rank_bound", "jacobian_rank_bound",
    "no_structural_cause", "layer_scale_spread", "diagnose_factor", "diagnose_layer_gram", "diagnose_ntk_gram", "input_diagnoses",
    "duplicate_pairs", "closest_pair", "numerical_rank", "svd_rank", "zero_signal_samples",
    "DUPLICATE_RTOL", "NEAR_DUPLICATE_RTOL",
]

#: Inputs closer than this (relative to the largest input norm) are candidates for "near-duplicate"
#: and "parallel" pairs; kept for callers of :func:`duplicate_pairs`.
DUPLICATE_RTOL = 1e-10

#: Default relative distance below which two inputs are named near-duplicates when no cut is given: a
#: pair at distance d gives a Gram eigenvalue O(d^2) relative, so d < 1e-6 means condition numbers
#: beyond ~1e12 (numerics.linalg.MAX_CONDITION), where the checked solvers give up.
NEAR_DUPLICATE_RTOL = 1e-6

#: Unit input rows closer than this are parallel to rounding (x and c x computed in float64).
PARALLEL_ROUNDING = 1e3 * np.finfo(float).eps

#: Candidate pairs / rows on X are searched up to this factor above the verification threshold on the
#: target (a layer can magnify input differences); the cause is named only if the target verifies it.
CANDIDATE_FACTOR = 100.0


# ---------------------------------------------------------------------------------------------
# formatting: printed inequalities are always true
# ---------------------------------------------------------------------------------------------
def fmt(x) -> str:
    """A number as printed in a diagnosis: ints exactly, floats with 3 significant digits.

    >>> fmt(12), fmt(0.000123456), fmt(float("inf"))
    ('12', '0.000123', 'inf')
    """
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.3g}"


def _pair(a, b) -> Tuple[str, str]:
    """``fmt`` of ``a`` and ``b`` with enough digits that the printed numbers compare as the numbers do."""
    sa, sb = fmt(a), fmt(b)
    if not (np.isfinite(float(a)) and np.isfinite(float(b))):
        return sa, sb
    for digits in (3, 6, 9, 12, 17):
        if (float(sa) < float(sb)) == (a < b) and (float(sa) == float(sb)) == (a == b):
            return sa, sb
        sa, sb = (f"{float(a):.{digits}g}", f"{float(b):.{digits}g}")
    return sa, sb


def relation(lhs: str, a, rhs: str, b, weak: bool = False) -> str:
    """``"lhs = a OP rhs = b"`` with ``OP`` the relation the numbers really have: ``<``, ``>`` or ``=``
    (``weak=True``: ``<`` or ``>=``).  Every inequality of a diagnosis is printed through this.

    >>> relation("M_1", 5, "N C", 8), relation("M_0 + bias", 8, "N", 6, weak=True)
    ('M_1 = 5 < N C = 8', 'M_0 + bias = 8 >= N = 6')
    """
    if a < b:
        op = "<"
    elif weak:
        op = ">="
    else:
        op = ">" if a > b else "="
    sa, sb = _pair(a, b)
    return f"{lhs} = {sa} {op} {rhs} = {sb}"


def _rows(idx: Sequence[int], limit: int = 8) -> str:
    idx = [int(i) for i in idx]
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f", ... ({len(idx)} in all)" if len(idx) > limit else "")


def _rows_of(idx: Sequence[int], name: str, verb: str = "is", plural_verb: str = "are") -> str:
    """``"row 2 of J is"`` / ``"rows 1, 2 of J are"``."""
    return (f"row {_rows(idx)} of {name} {verb}" if len(idx) == 1 else f"rows {_rows(idx)} of {name} {plural_verb}")


# ---------------------------------------------------------------------------------------------
# types
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Diagnosis:
    """One named cause: ``code`` (stable snake_case), ``message`` (the sentence with the numbers) and
    the :class:`~theory.assumptions.Assumption` it violates."""

    code: str
    message: str
    assumption: Optional[Assumption] = None
    #: the root assumptions of every cause this diagnosis names (a combined sentence names several);
    #: empty: :attr:`assumption` itself (see :attr:`roots`)
    causes: Tuple[Assumption, ...] = ()

    @property
    def roots(self) -> Tuple[Assumption, ...]:
        """The assumptions the named causes violate: :attr:`causes`, else ``(assumption,)``."""
        if self.causes:
            return tuple(self.causes)
        return () if self.assumption is None else (self.assumption,)

    def with_message(self, message: str) -> "Diagnosis":
        """The same cause (code, assumption, roots) with another sentence (e.g. with a head)."""
        return Diagnosis(self.code, message, self.assumption, self.roots)

    def flag(self, head: str = "", assumption: Optional[Assumption] = None) -> Flag:
        """The :class:`~theory.assumptions.Flag` of this cause, ``head: message`` when a head is given;
        ``assumption`` overrides the cause's own (an approximation reports the assumption it needs) and the
        flag keeps the cause's :attr:`roots` (``Flag.causes``: what a relaxed search attributes it to)."""
        text = f"{head}: {self.message}" if head else self.message
        return Flag(self.code, text, assumption or self.assumption, self.roots)


def roots_of(diagnoses) -> Tuple[Assumption, ...]:
    """The union of the :attr:`Diagnosis.roots` of ``diagnoses`` (``None`` entries skipped), in order."""
    out = []
    for d in diagnoses:
        for a in (() if d is None else d.roots):
            if not any(a is b for b in out):
                out.append(a)
    return tuple(out)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Target:
    """The matrix whose rows are dependent: ``kind`` in ``jacobian``, ``layer`` (``J_l``),
    ``input_factor`` (``Z_l``), ``backward_factor`` (``Delta_l``); ``layer`` is 1-based."""

    kind: str
    layer: Optional[int] = None

    def __post_init__(self):
        if self.kind not in ("jacobian", "layer", "input_factor", "backward_factor"):
            raise ValueError(f"Target kind={self.kind!r} is not allowed: expected jacobian, layer, input_factor or "
                             "backward_factor")
        if (self.kind == "jacobian") != (self.layer is None):
            raise ValueError(f"Target {self.kind!r} needs layer={'None' if self.kind == 'jacobian' else 'l >= 1'}, "
                             f"got {self.layer!r}")

    @property
    def name(self) -> str:
        return {"jacobian": "J", "layer": f"J_{self.layer}", "input_factor": f"Z_{self.layer}",
                "backward_factor": f"Delta_{self.layer}"}[self.kind]


_ACTIVATION_FACTS: Dict[Tuple[str, str], Tuple[bool, float]] = {}


def activation_facts(activation) -> Tuple[bool, float]:
    """``(positively homogeneous, gamma = P(phi' != 0))`` from :mod:`theory.activations` (SymPy; cached)."""
    key = (activation.name, str(activation.expr))
    if key not in _ACTIVATION_FACTS:
        _ACTIVATION_FACTS[key] = (bool(activation.is_positively_homogeneous), float(activation.active_fraction()))
    return _ACTIVATION_FACTS[key]


class Evidence:
    """The facts the diagnoses read, computed lazily once per failure: network, factors, inputs and the
    eigenvalue ratio ``cut`` below which the caller's system counts as singular."""

    def __init__(self, net, factors, X, cut: float = NEAR_DUPLICATE_RTOL ** 2):
        self.net, self.factors = net, factors
        self.X = np.asarray(X, dtype=float)
        self.cut = float(cut)
        self.n, self.c, self.depth = factors.n_samples, factors.n_outputs, factors.depth
        self.has_bias = bool(net.has_bias)
        self.activation = net.activation

    # -- thresholds -------------------------------------------------------------------------
    @property
    def row_rtol(self) -> float:
        """Relative row size / distance / angle below which a row or pair alone makes the system singular."""
        return float(np.sqrt(self.cut))

    # -- activation facts ------------------------------------------------------------------
    @cached_property
    def homogeneous(self) -> bool:
        return activation_facts(self.activation)[0]

    @cached_property
    def gamma(self) -> float:
        return activation_facts(self.activation)[1]

    @cached_property
    def phi0(self) -> float:
        return float(self.activation.phi(np.zeros(1))[0])

    # -- inputs ----------------------------------------------------------------------------
    @cached_property
    def x_norms(self) -> np.ndarray:
        return np.linalg.norm(self.X, axis=1)

    def preactivations(self, l: int) -> np.ndarray:
        """``U_l = Z_l Wb_l^T`` (``N x M_l``)."""
        return self.factors.Z[l - 1] @ self.net.params[l - 1].T

    # -- target rows -----------------------------------------------------------------------
    def _delta(self, l: int) -> np.ndarray:
        return self.factors.Delta[l - 1].reshape(self.n, -1)      # per sample: C M_l entries

    def row_gram(self, target: Target) -> np.ndarray:
        """``G[i, j] = <R_i, R_j>_F`` of the per-sample row blocks ``R_n`` of the target (``N x N``; cached)."""
        cache = self.__dict__.setdefault("_row_grams", {})
        if target not in cache:
            cache[target] = self._row_gram(target)
        return cache[target]

    def _row_gram(self, target: Target) -> np.ndarray:
        kind, l = target.kind, target.layer
        if kind == "input_factor":
            Z = self.factors.Z[l - 1]
            return Z @ Z.T
        if kind == "backward_factor":
            D = self._delta(l)
            return D @ D.T
        layers = [l] if kind == "layer" else range(1, self.depth + 1)
        total = np.zeros((self.n, self.n))
        for k in layers:
            D, Z = self._delta(k), self.factors.Z[k - 1]
            total += (D @ D.T) * (Z @ Z.T)                          # <kron(d_i, z_i), kron(d_j, z_j)>
        return total

    def row_norms(self, target: Target) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.row_gram(target)), 0.0))

    def zero_rows(self, target: Target) -> np.ndarray:
        """Samples whose target rows are exactly zero."""
        kind, l = target.kind, target.layer
        if kind == "input_factor":
            return np.flatnonzero(np.all(self.factors.Z[l - 1] == 0.0, axis=1))
        if kind == "backward_factor":
            return np.flatnonzero(np.all(self._delta(l) == 0.0, axis=1))
        layers = [l] if kind == "layer" else range(1, self.depth + 1)
        zero = np.ones(self.n, dtype=bool)
        for k in layers:
            zero &= (np.all(self._delta(k) == 0.0, axis=1) | np.all(self.factors.Z[k - 1] == 0.0, axis=1))
        return np.flatnonzero(zero)

    def pair_geometry(self, target: Target, i: int, j: int) -> Tuple[float, float]:
        """``(sin of the angle, distance relative to the largest row norm)`` of the rows of samples i, j."""
        G = self.row_gram(target)
        scale = float(np.sqrt(max(np.max(np.diag(G)), 0.0)))
        a, b, ab = G[i, i], G[j, j], G[i, j]
        if a <= 0 or b <= 0 or scale == 0:
            return 0.0, 0.0
        cos = float(np.clip(ab / np.sqrt(a * b), -1.0, 1.0))
        sin = float(np.sqrt(max(0.0, 1.0 - cos * cos)))
        dist = float(np.sqrt(max(0.0, a + b - 2 * ab))) / scale
        return sin, dist

    @cached_property
    def unit_x(self) -> Tuple[np.ndarray, np.ndarray]:
        """Unit rows of the nonzero inputs and their indices."""
        norms = self.x_norms
        keep = np.flatnonzero(norms > 0)
        return self.X[keep] / norms[keep, None], keep


def _verify_small_row(ev: Evidence, target: Target, i: int) -> Optional[float]:
    norms = ev.row_norms(target)
    top = float(norms.max()) if norms.size else 0.0
    if top == 0:
        return None
    ratio = float(norms[i] / top)
    return ratio if ratio <= ev.row_rtol else None


# ---------------------------------------------------------------------------------------------
# 1-4: input-level causes
# ---------------------------------------------------------------------------------------------
def zero_input_rows(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """``x_i = 0`` (or of relative norm below ``sqrt(cut)``) and no bias: the target's row vanishes.

    Verified on the target: the rows must be zero (or below ``sqrt(cut)`` of the largest).  For
    ``Z_l`` with ``l > 1`` and for ``J`` that needs ``phi(0) = 0`` (relu, tanh, erf, gelu, sin; not
    softplus, whose layer outputs on ``x = 0`` are ``log 2``).
    """
    if ev.has_bias:
        return None
    norms = ev.x_norms
    top = float(norms.max()) if norms.size else 0.0
    cand = np.flatnonzero(norms <= CANDIDATE_FACTOR * ev.row_rtol * top) if top > 0 else np.arange(ev.n)
    hits, ratios = [], []
    for i in cand:
        if norms[i] == 0 and target.kind in ("input_factor", "layer") and target.layer == 1:
            hits.append(int(i)), ratios.append(0.0)
            continue
        r = _verify_small_row(ev, target, int(i))
        if r is not None:
            hits.append(int(i)), ratios.append(r)
    if not hits:
        return None
    exact = all(norms[i] == 0 for i in hits)
    rows = ", ".join(f"X[{i}]" for i in hits[:8]) + ("" if len(hits) <= 8 else f", ... ({len(hits)} rows)")
    name, l = target.name, target.layer
    if not exact:
        worst = max(float(norms[i] / top) for i in hits)
        what = f"{rows} nearly zero (|x| at most {fmt(worst)} of the largest input norm)"
        why = (f"{_rows_of(hits, name)} at most {fmt(max(ratios))} of its largest row, which alone gives "
               f"{name} {name}^T an eigenvalue of order {fmt(max(ratios) ** 2)} of its largest")
    else:
        what = f"{rows} = 0 ({'a zero input row' if len(hits) == 1 else 'zero input rows'})"
        if l == 1 and target.kind in ("input_factor", "layer"):
            why = f"z_1 = sigma_w x / sqrt(M_0) vanishes there, so {_rows_of(hits, name)} zero"
        elif target.kind == "backward_factor":
            why = f"{_rows_of(hits, name, 'vanishes', 'vanish')}"
        else:
            why = (f"every pre-activation vanishes there and phi(0) = {ev.activation.name}(0) = {fmt(ev.phi0)}, so "
                   f"{_rows_of(hits, name)} zero" + (" in every layer" if target.kind == "jacobian" else ""))
    return Diagnosis("zero_input_row", f"{what} and the network has no bias (sigma_b2 = 0): {why}", NONZERO_VARIANCE)


def _parallel_candidates(ev: Evidence, rtol: float) -> List[Tuple[int, int, float, float]]:
    """Pairs ``(i, j, c, sin angle)`` of nonzero inputs with ``x_j ~ c x_i``, ``c > 0``, that are not
    bit-identical (one GEMM of the unit rows, then the angle recomputed directly for candidates)."""
    U, keep = ev.unit_x
    if keep.size < 2:
        return []
    G = U @ U.T
    thresh = 1.0 - min(0.5, 0.5 * rtol * rtol + 8 * np.finfo(float).eps * ev.X.shape[1])
    ii, jj = np.nonzero(np.triu(G >= thresh, k=1))
    out = []
    for a, b in zip(ii, jj):
        i, j = int(keep[a]), int(keep[b])
        if np.array_equal(ev.X[i], ev.X[j]):
            continue
        sin = float(np.linalg.norm(U[a] - U[b]))            # chord = 2 sin(theta/2) ~ theta
        c = float(ev.x_norms[j] / ev.x_norms[i])
        exact = sin <= PARALLEL_ROUNDING
        # a pair with c ~ 1 that is not parallel to rounding is a near-duplicate, named by that cause
        if sin <= rtol and (exact or abs(c - 1.0) > sin):
            out.append((i, j, c, sin))
    return out


def parallel_inputs(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """``x_j = c x_i`` with ``c > 0`` under a positively homogeneous activation (``phi(c u) = c phi(u)``
    for positive ``c``, from :attr:`theory.activations.Activation.is_positively_homogeneous`) and no
    bias: every layer input scales by ``c`` and every backward signal is unchanged, so the rows of
    ``J``, ``J_l`` and ``Z_l`` are proportional and those of ``Delta_l`` equal.  Verified on the target
    (angle of the two rows below ``sqrt(cut)``)."""
    if ev.has_bias or not ev.homogeneous:
        return None
    found = []
    for i, j, c, sin in _parallel_candidates(ev, CANDIDATE_FACTOR * ev.row_rtol):
        t_sin, _ = ev.pair_geometry(target, i, j)
        if t_sin <= ev.row_rtol:
            found.append((i, j, c, sin, t_sin))
    if not found:
        return None
    i, j, c, sin, t_sin = found[0]
    lo, hi = (i, j) if c >= 1 else (j, i)
    c = max(c, 1.0 / c)
    cs = fmt(c) if float(fmt(c)) != 1.0 else repr(c)
    exact = sin <= PARALLEL_ROUNDING
    rel = f"X[{hi}] = {cs} X[{lo}]" if exact else f"X[{hi}] ~ {cs} X[{lo}] (angle {fmt(sin)} rad)"
    more = f"; {len(found) - 1} more such pair(s)" if len(found) > 1 else ""
    if target.kind == "backward_factor":
        tail = f"rows {min(lo, hi)} and {max(lo, hi)} of {target.name} are equal"
    else:
        tail = f"row {hi} of {target.name} is {cs} x row {lo}"
    return Diagnosis(
        "parallel_inputs",
        f"{rel} (positive multiples; {ev.activation.name} is positively homogeneous and the network has no bias, "
        f"so every layer input scales by {cs} and every backward signal is unchanged): {tail}{more} (a bias, "
        "a positive sigma_b2, removes this; normalising the inputs would make them duplicates)",
        NTK_POSITIVE_DEFINITE)


def duplicate_pairs(X: np.ndarray, rtol: Optional[float] = None) -> List[tuple]:
    """Pairs ``(i, j)``, ``i < j``, of identical rows of ``X`` (bit-identical when ``rtol`` is None,
    else at distance ``<= sqrt(rtol)`` times the largest row norm; one GEMM).

    >>> duplicate_pairs(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    [(0, 2)]
    """
    X = np.asarray(X, dtype=float)
    if rtol is None:
        _, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
        inverse = np.asarray(inverse).ravel()
        pairs = []
        for group in np.flatnonzero(counts > 1):
            members = np.flatnonzero(inverse == group)
            pairs += [(int(a), int(b)) for k, a in enumerate(members) for b in members[k + 1:]]
        return sorted(pairs)
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    scale = max(float(sq.max()), np.finfo(float).tiny)
    i, j = np.nonzero(np.triu(d2 <= rtol * scale, k=1))
    return [(int(a), int(b)) for a, b in zip(i, j)]


def duplicate_inputs(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """Bit-identical rows of ``X``: the target's rows coincide (any activation, with or without bias)."""
    dups = duplicate_pairs(ev.X)
    if not dups:
        return None
    shown = ", ".join(f"{i}&{j}" for i, j in dups[:5]) + (f", ... ({len(dups)} pairs)" if len(dups) > 5 else "")
    return Diagnosis("duplicate_inputs", f"duplicate inputs (rows {shown} of X are equal), so the corresponding "
                                         f"rows of {target.name} coincide", DISTINCT_INPUTS)


def closest_pair(X: np.ndarray):
    """``(i, j, d)``: the two closest rows of ``X`` and their distance relative to the largest row norm
    (one GEMM to find the pair -- reliable for distances above ~``sqrt(eps)`` -- then the distance
    of that pair directly); ``None`` for fewer than two rows.

    >>> i, j, d = closest_pair(np.array([[3.0, 4.0], [0.0, 5.0], [3.0, 4.005]]))
    >>> i, j, round(d, 7)
    (0, 2, 0.0009992)
    """
    X = np.asarray(X, dtype=float)
    if X.shape[0] < 2:
        return None
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    d2[np.tril_indices_from(d2)] = np.inf
    i, j = np.unravel_index(int(np.argmin(d2)), d2.shape)
    scale = max(float(np.sqrt(sq.max())), np.finfo(float).tiny)
    return int(i), int(j), float(np.linalg.norm(X[i] - X[j]) / scale)


def _close_pairs(X: np.ndarray, rtol: float) -> List[Tuple[int, int, float]]:
    """Pairs of distinct rows at relative distance ``<= rtol`` (candidates from one GEMM, distances direct)."""
    sq = np.einsum("ij,ij->i", X, X)
    scale = float(np.sqrt(sq.max())) if sq.size else 0.0
    if scale == 0 or X.shape[0] < 2:
        return []
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    slack = 16 * np.finfo(float).eps * X.shape[1] * scale ** 2
    ii, jj = np.nonzero(np.triu(d2 <= (rtol * scale) ** 2 + slack, k=1))
    out = []
    for i, j in zip(ii, jj):
        d = float(np.linalg.norm(X[i] - X[j]) / scale)
        if 0 < d <= rtol:
            out.append((int(i), int(j), d))
    return sorted(out, key=lambda t: t[2])


def near_duplicate_inputs(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """Two distinct inputs whose target rows are at relative distance below ``sqrt(cut)`` (the pair
    alone gives an eigenvalue below ``cut / 2`` of the largest); both distances are printed."""
    for i, j, d in _close_pairs(ev.X, CANDIDATE_FACTOR * ev.row_rtol):
        _, t_dist = ev.pair_geometry(target, i, j)
        if t_dist <= ev.row_rtol:
            return Diagnosis("near_duplicate_inputs",
                             f"near-duplicate inputs (rows {i}&{j} of X at relative distance {fmt(d)}; rows {i} "
                             f"and {j} of {target.name} at relative distance {fmt(t_dist)}, which alone gives "
                             f"{target.name} {target.name}^T an eigenvalue of order {fmt(t_dist ** 2 / 2)} of its "
                             "largest)", DISTINCT_INPUTS)
    return None


# ---------------------------------------------------------------------------------------------
# 5: architecture
# ---------------------------------------------------------------------------------------------
def too_few_parameters(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """``P_l = M_l (M_{l-1} + b) < N C`` (layer Jacobian) or ``P < N C`` (full Jacobian)."""
    nc = ev.n * ev.c
    if target.kind == "layer":
        l = target.layer
        width, fan_in = ev.factors.Delta[l - 1].shape[2], ev.factors.Z[l - 1].shape[1]
        P = width * fan_in
        if P < nc:
            return Diagnosis("too_few_parameters",
                             f"layer {l} has P_{l} = M_{l} (M_{l - 1} + bias) = {width} x {fan_in} = {P} parameters "
                             f"< N C = {nc} (width too small for the batch)", FULL_ROW_RANK_JACOBIANS)
    elif target.kind == "jacobian":
        P = ev.net.n_params
        if P < nc:
            return Diagnosis("too_few_parameters", f"P = {P} parameters < N C = {nc}", FULL_ROW_RANK_JACOBIANS)
    return None


def narrow_layer(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """``Delta_l`` of a hidden layer with ``M_l < N C`` columns, or ``Z_l`` with ``M_{l-1} + bias < N``."""
    l, n, nc = target.layer, ev.n, ev.n * ev.c
    if target.kind == "backward_factor" and l < ev.depth:
        width = ev.factors.Delta[l - 1].shape[2]
        if width < nc:
            return Diagnosis("narrow_layer", f"{relation(f'M_{l}', width, 'N C', nc)} (layer narrower than the "
                                             f"batch; assumption M_{l} >= N C)", HIDDEN_WIDTH)
    if target.kind == "input_factor":
        fan_in = ev.factors.Z[l - 1].shape[1]
        if fan_in < n:
            alt = ", or Forster inputs for K-FAC" if l == 1 else ""
            return Diagnosis("narrow_layer", f"{relation(f'M_{l - 1} + bias', fan_in, 'N', n)} (the N rows of "
                                             f"Z_{l} span at most {fan_in} dimensions; assumption M_{l - 1} + bias "
                                             f">= N{alt})", INPUT_WIDTH if l == 1 else HIDDEN_WIDTH)
    return None


def svd_rank(A: np.ndarray):
    """``(rank, s_min / s_max)`` of ``A`` with the rounding-level cut ``s > max(shape) eps s_max``.

    >>> svd_rank(np.array([[1.0, 2.0], [2.0, 4.0]]))[0]
    1
    """
    A = np.asarray(A, dtype=float)
    if A.size == 0:
        return 0, 0.0
    s = np.linalg.svd(A, compute_uv=False)
    if s[0] == 0:
        return 0, 0.0
    return int(np.sum(s > max(A.shape) * np.finfo(float).eps * s[0])), float(s[-1] / s[0])


def numerical_rank(A: np.ndarray) -> int:
    """Rank of ``A`` with numpy's default cut ``sigma > max(shape) eps sigma_max`` (0 for an empty/zero matrix).

    >>> numerical_rank(np.array([[1.0, 2.0], [2.0, 4.0]]))
    1
    """
    A = np.asarray(A, dtype=float)
    return int(np.linalg.matrix_rank(A)) if A.size and np.any(A != 0) else 0


def dependent_inputs(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """``rank Z_1 < N`` although ``M_0 + bias >= N``: the inputs themselves are linearly (with a bias:
    affinely) dependent.  Applies to ``Z_1`` and ``J_1``."""
    if target.layer != 1 or target.kind not in ("input_factor", "layer"):
        return None
    Z = ev.factors.Z[0]
    n, fan_in = ev.n, Z.shape[1]
    if fan_in < n:
        return None
    rank = svd_rank(Z)[0]
    if rank >= n:
        return None
    if ev.has_bias:
        what = f"inputs affinely dependent (rank [sigma_w X / sqrt(M_0), sigma_b 1] = {rank} < N = {n}"
    else:
        what = f"inputs linearly dependent (rank X = {rank} < N = {n}"
    return Diagnosis("dependent_inputs", f"{what}, although {relation('M_0 + bias', fan_in, 'N', n, weak=True)}: "
                                         "the assumption M_0 >= N is necessary, not sufficient)",
                     LINEARLY_INDEPENDENT_INPUTS)


def numerically_rank_deficient(ev: Evidence, target: Target, rank: int, cut: float) -> Optional[Diagnosis]:
    """The factor has full row rank at rounding level, but a singular value ratio below ``sqrt(cut)``
    (its Gram's eigenvalue ratio below the pseudo-inverse cut) drops a direction."""
    A = _factor_rows(ev, target)
    need = A.shape[0]
    exact_rank, ratio = svd_rank(A)
    if exact_rank < need or rank >= need:
        return None
    return Diagnosis("rank_deficient",
                     f"{target.name} has full rank {need} at rounding level, but its smallest singular value is "
                     f"{fmt(ratio)} of the largest: the factor-Gram eigenvalue ratio {fmt(ratio ** 2)} is below the "
                     f"pseudo-inverse cut rank_rtol = {cut:.0e}, so the projection drops that direction "
                     "(numerically rank-deficient)", KFAC_RANK)


def _factor_rows(ev: Evidence, target: Target) -> np.ndarray:
    l = target.layer
    if target.kind == "input_factor":
        return ev.factors.Z[l - 1]
    return ev.factors.Delta[l - 1].reshape(ev.n * ev.c, -1)


# ---------------------------------------------------------------------------------------------
# 6: dead and saturated units
# ---------------------------------------------------------------------------------------------
def _silent_units(ev: Evidence, target: Target):
    """``(kind, layer k, live, total, need, zero columns)`` for the target's unit columns, or None."""
    l, n, nc = target.layer, ev.n, ev.n * ev.c
    if target.kind == "backward_factor" and l < ev.depth:
        D = ev.factors.Delta[l - 1]
        zero = ~np.any(D != 0.0, axis=(0, 1))
        return "backward", l, int((~zero).sum()), D.shape[2], nc, zero
    if target.kind == "input_factor" and l > 1:
        bias = 1 if ev.has_bias else 0
        units = ev.factors.Z[l - 1][:, :ev.factors.Z[l - 1].shape[1] - bias]
        zero = ~np.any(units != 0.0, axis=0)
        return "forward", l - 1, int((~zero).sum()), units.shape[1], n - bias, zero
    return None


def _unit_causes(ev: Evidence, kind: str, k: int, zero: np.ndarray):
    """Split the silent unit columns of layer ``k`` into those with ``phi' = 0`` (backward) / ``phi = 0``
    (forward) on every input and those silenced from above (backward only)."""
    U = ev.preactivations(k)[:, zero]
    if kind == "backward":
        own = np.all(ev.activation.dphi(U) == 0.0, axis=0)
    else:
        own = np.all(ev.activation.phi(U) == 0.0, axis=0)
    return int(own.sum()), int((~own).sum()), U[:, own]


def dead_units(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """Fewer live unit columns than the factor's row count needs: units of layer ``k`` with ``phi' = 0``
    (backward) or ``phi = 0`` (forward) on every input.  Only for activations whose derivative vanishes
    on an interval (``gamma < 1``, e.g. relu); :func:`saturated_units` covers the others."""
    info = _silent_units(ev, target)
    if info is None or ev.gamma >= 1.0:
        return None
    kind, k, live, total, need, zero = info
    if live >= need or total < need:      # total < need: the layer is narrow (narrow_layer), not dead
        return None
    own, above, _ = _unit_causes(ev, kind, k, zero)
    if kind == "backward":
        parts = ([f"{own} with phi' = 0 on every input"] if own else []) + (
            [f"{above} with no signal from the layers above"] if above else [])
        what = (f"{total - live} of {total} units of layer {k} are dead (zero backward signal on every input: "
                f"{', '.join(parts)})")
        bound = relation(f"live units of layer {k}", live, "N C", need)
    else:
        what = (f"{total - live} of {total} units of layer {k} are dead (zero output on every input, "
                f"{ev.activation.name}(u) = 0 there)")
        bound = relation(f"live units of layer {k}", live, "N - bias" if ev.has_bias else "N", need)
    return Diagnosis("dead_units", f"{what}: {bound}", NO_DEAD_UNITS)


def saturated_units(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """As :func:`dead_units` for activations with ``gamma = 1`` (tanh, erf, ...): ``phi'(u)`` vanishes
    only on a null set mathematically, but rounds to 0 in float64 at large ``|u|`` (saturation)."""
    info = _silent_units(ev, target)
    if info is None or ev.gamma < 1.0:
        return None
    kind, k, live, total, need, zero = info
    if live >= need or total < need:
        return None
    own, above, U = _unit_causes(ev, kind, k, zero)
    if kind == "backward":
        smallest = float(np.min(np.abs(U))) if U.size else float("nan")
        what = (f"{total - live} of {total} units of layer {k} pass no backward signal on any input ({own} "
                f"saturated: {ev.activation.name}'(u) rounds to 0 in float64 on every input, smallest |u| among "
                f"them {fmt(smallest)}; {above} with no signal from above; rescale the inputs or lower sigma_w2)")
        return Diagnosis("saturated_units", f"{what}: {relation(f'live units of layer {k}', live, 'N C', need)}",
                         NO_DEAD_UNITS)
    what = f"{total - live} of {total} units of layer {k} output 0 on every input"
    return Diagnosis("dead_units", f"{what}: {relation(f'live units of layer {k}', live, 'N', need)}", NO_DEAD_UNITS)


# ---------------------------------------------------------------------------------------------
# 7: silent inputs (zero rows on nonzero inputs)
# ---------------------------------------------------------------------------------------------
def _why_silent(ev: Evidence, n_idx: int, kind: str, l: int) -> str:
    """Why ``Delta_l[n] = 0`` (``kind = "backward"``) or ``Z_l[n] = 0`` (``"forward"``, l > 1)."""
    act = ev.activation.name
    if kind == "forward":
        return (f"every unit of layer {l - 1} outputs {act}(u) = 0 on it"
                + (" (all inactive: non-positive pre-activations)" if ev.gamma < 1 else ""))
    k = l
    while k < ev.depth - 1 and np.all(ev.factors.Delta[k][n_idx] == 0.0):   # Delta_{k+1}[n] = 0: look higher
        k += 1
    d = ev.activation.dphi(ev.preactivations(k)[n_idx])
    if np.all(d == 0.0):
        state = "inactive" if ev.gamma < 1 else "saturated (phi' rounds to 0)"
        where = f"every unit of layer {k} has {act}'(u) = 0 on it ({state})"
    else:
        where = f"{act}'(u) = 0 on every unit of layer {k} that receives a backward signal on it"
    return where if k == l else f"no backward signal reaches layer {l}: {where}"


def _dead_note(ev: Evidence, k: int) -> str:
    """``"; 5 of 6 units of layer k are dead (...)"`` when layer ``k`` has units without a backward signal
    on every input (they are why a few live units can leave inputs silent); ``""`` otherwise."""
    if not 1 <= k < ev.depth:
        return ""
    D = ev.factors.Delta[k - 1]
    zero = ~np.any(D != 0.0, axis=(0, 1))
    if not zero.any():
        return ""
    count = int(zero.sum())
    word = ("is dead" if count == 1 else "are dead") if ev.gamma < 1 else (
        "passes no backward signal" if count == 1 else "pass no backward signal")
    return f"; {count} of {D.shape[2]} units of layer {k} {word} (zero backward signal on every input)"


def silent_inputs(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """Rows of the target that are exactly zero on nonzero inputs, with the layer that silences them."""
    rows = [int(i) for i in ev.zero_rows(target) if ev.x_norms[i] > 0 or ev.has_bias]
    if not rows:
        return None
    i = rows[0]
    l = target.layer
    # (factor targets: dead units are named by dead_units alongside, no note needed)
    if target.kind == "input_factor":
        why = _why_silent(ev, i, "forward", l) if l > 1 else "its layer input is zero"
    elif target.kind == "backward_factor":
        why = _why_silent(ev, i, "backward", l)
    elif target.kind == "layer":
        if l > 1 and np.all(ev.factors.Z[l - 1][i] == 0.0):
            why = f"Z_{l} row is zero: {_why_silent(ev, i, 'forward', l)}" + _dead_note(ev, l - 1)
        else:
            why = f"Delta_{l} row is zero: {_why_silent(ev, i, 'backward', l)}" + _dead_note(ev, l)
    else:
        # without a bias J_L's row is z_L: the lowest layer k whose outputs all vanish on x_i silences
        # every layer above it, and every layer below receives no backward signal
        k = next((k for k in range(2, ev.depth + 1) if np.all(ev.factors.Z[k - 1][i] == 0.0)), None)
        why = (f"{_why_silent(ev, i, 'forward', k)}, so every layer above it has a zero input and every layer "
               f"up to it a zero backward signal{_dead_note(ev, k - 1)}" if k is not None
               else "every layer's row vanishes")
    return Diagnosis("silent_inputs",
                     f"{target.name} is zero on {len(rows)} nonzero input{'s' if len(rows) > 1 else ''} "
                     f"({'rows' if len(rows) > 1 else 'row'} {_rows(rows)} of {target.name}); on X[{i}]: {why}",
                     FULL_ROW_RANK_JACOBIANS, (NO_SILENT_INPUTS,))


# ---------------------------------------------------------------------------------------------
# 8: factor structure and rank bounds
# ---------------------------------------------------------------------------------------------
def _equal_rows(A: np.ndarray) -> list:
    _, inverse, counts = np.unique(A, axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).ravel()
    pairs = []
    for group in np.flatnonzero(counts > 1):
        members = np.flatnonzero(inverse == group)
        pairs += [(int(members[0]), int(m)) for m in members[1:]]
    return sorted(pairs)


def _pattern_text(ev: Evidence, l: int) -> str:
    P = ev.activation.dphi(ev.preactivations(l))
    rank = svd_rank(P)[0]
    zeros = int(np.sum(P == 0))
    n, m = P.shape
    if zeros:
        return (f"the {ev.activation.name} activation pattern of layer {l} (the N x M_{l} = {n} x {m} matrix "
                f"phi'(U_{l}), {zeros} of its {n * m} entries zero, rank {rank})")
    return (f"the {ev.activation.name} activation derivatives of layer {l} (the N x M_{l} = {n} x {m} matrix "
            f"phi'(U_{l}), no zero entries, rank {rank})")


def shared_activation_pattern(ev: Evidence, target: Target) -> Optional[Diagnosis]:
    """Distinct inputs with equal rows of ``Delta_l`` (relu: the same activation pattern on layer ``l``
    and above -- in deep relu nets inputs become correlated and share all ``M_l`` signs)."""
    if target.kind != "backward_factor":
        return None
    l, n = target.layer, ev.n
    equal = _equal_rows(ev.factors.Delta[l - 1].reshape(n, -1))
    if not equal:
        return None
    i, j = equal[0]
    if not ev.activation.derivative_expr.free_symbols:          # phi' constant: linear
        return Diagnosis("rank_deficient",
                         f"rows of Delta_{l} are equal on every input: {ev.activation.name}' is constant, so the backward "
                         f"signals do not depend on the input (a deep linear network: rank(Delta_{l}) = C)", KFAC_RANK)
    P = ev.activation.dphi(ev.preactivations(l))
    same = bool(np.array_equal(P[i] != 0, P[j] != 0))
    why = (f"inputs {i} and {j} have the same {ev.activation.name} activation pattern on layer {l} (equal zero sets "
           f"of phi'(u_{l}))" if same else f"inputs {i} and {j} give the same backward signal")
    if same and l < ev.depth - 1:
        why += " and the same backward signals from the layers above"
    more = f" ({len(equal)} such pairs)" if len(equal) > 1 else ""
    return Diagnosis("rank_deficient", f"rows {i}&{j} of Delta_{l} are equal{more}: {why}", KFAC_RANK)


def factor_structure(ev: Evidence, target: Target) -> Diagnosis:
    """The last factor-level explanation: ``Delta_l = phi'(U_l) o (Delta_{l+1} W_{l+1}) sigma_w / sqrt(M_l)``
    or ``Z_l = phi(U_{l-1})`` is rank-deficient through its activation pattern (with the ranks)."""
    l, n, nc = target.layer, ev.n, ev.n * ev.c
    A = _factor_rows(ev, target)
    exact_rank = svd_rank(A)[0]
    if target.kind == "input_factor":
        if l == 1:
            return Diagnosis("rank_deficient", f"rank(Z_1) = {exact_rank} at rounding level", KFAC_RANK)
        return Diagnosis("rank_deficient",
                         f"the outputs phi(U_{l - 1}) of layer {l - 1} are linearly dependent across the N inputs "
                         f"(rank {exact_rank} at rounding level; {_pattern_text(ev, l - 1)})", KFAC_RANK)
    pattern = _pattern_text(ev, l)
    if l == ev.depth - 1:
        return Diagnosis("rank_deficient",
                         f"Delta_{l}[n, c] = phi'(u_{l}(x_n)) o W_{l + 1}[c] sigma_w / sqrt(M_{l}), and {pattern} "
                         f"times W_{l + 1} is rank-deficient (rank {exact_rank} at rounding level)", KFAC_RANK)
    width = ev.factors.Delta[l - 1].shape[2]
    through = ev.factors.Delta[l].reshape(nc, -1) @ ev.net.params[l][:, :width]
    above = svd_rank(ev.factors.Delta[l].reshape(nc, -1))[0]
    upstream = f"; Delta_{l + 1} is itself rank-deficient ({relation(f'rank', above, 'N C', nc)})" if above < nc else ""
    return Diagnosis("rank_deficient",
                     f"Delta_{l} = phi'(U_{l}) o (Delta_{l + 1} W_{l + 1}) sigma_w / sqrt(M_{l}), and {pattern} times "
                     f"the backward signals through W_{l + 1} (rank {svd_rank(through)[0]}) is rank-deficient "
                     f"(rank {exact_rank} at rounding level){upstream}", KFAC_RANK)


def _first(ev: Evidence, target: Target, causes: Sequence[Callable]) -> Optional[Diagnosis]:
    for cause in causes:
        d = cause(ev, target)
        if d is not None:
            return d
    return None


#: The input-level causes, most specific first (shared by every target).
INPUT_CAUSES = (zero_input_rows, parallel_inputs, duplicate_inputs, near_duplicate_inputs)

#: The structural causes of a rank-deficient factor (all that apply are named, in this order).
STRUCTURAL_CAUSES = (narrow_layer, dependent_inputs, dead_units, saturated_units, silent_inputs,
                     shared_activation_pattern)

#: Every cause function, in the order they are tried.
CAUSES = INPUT_CAUSES + (too_few_parameters,) + STRUCTURAL_CAUSES


def _factor_cause(ev: Evidence, target: Target, rank: Optional[int] = None, cut: Optional[float] = None,
                  input_level: bool = True) -> Optional[Diagnosis]:
    """The causes of a rank-deficient factor as one :class:`Diagnosis` (code of the first): an
    input-level cause alone (it explains everything), else every structural cause that applies
    (narrow layer, dependent inputs, dead/saturated units, silent inputs, shared activation patterns)
    or the numerical cut; None when only the activation pattern explains it."""
    if input_level:
        d = _first(ev, target, INPUT_CAUSES)
        if d is not None:
            return d
    found = [d for d in (cause(ev, target) for cause in STRUCTURAL_CAUSES) if d is not None]
    if found:   # equal rows matter only when no dimension count explains the rank
        found = [d for d in found if d.code != "rank_deficient"] or found
    if not found and rank is not None and cut is not None:
        d = numerically_rank_deficient(ev, target, rank, cut)
        found = [d] if d is not None else []
    if not found:
        return None
    return Diagnosis(found[0].code, "; ".join(d.message for d in found), found[0].assumption, roots_of(found))


def diagnose_factor(net, factors, X, kind: str, l: int, rank: int, rank_rtol: float, with_head: bool = True) -> Diagnosis:
    """Why K-FAC's factor ``Delta_l`` (``kind="backward"``) or ``Z_l`` (``"input"``) has rank ``rank``
    below what it needs (``N C`` / ``C`` for the output layer; ``N``): one sentence starting with
    ``layer l: rank(...) = r < ...`` (``with_head=False``: the cause alone), and its cause (code, assumption)."""
    ev = Evidence(net, factors, X, cut=rank_rtol)
    n, c, L = ev.n, ev.c, ev.depth
    if kind == "backward":
        target = Target("backward_factor", l)
        if l == L:
            head = f"layer {l}: {relation(f'rank(Delta_{l})', rank, 'C', c)}"
            return Diagnosis("rank_deficient", f"{head} (output layer: Delta_L rows are e_c by construction; a "
                                               "zero/degenerate output)", KFAC_RANK)
        head = f"layer {l}: {relation(f'rank(Delta_{l})', rank, 'N C', n * c)}"
    elif kind == "input":
        target = Target("input_factor", l)
        head = f"layer {l}: {relation(f'rank(Z_{l})', rank, 'N', n)}"
    else:
        raise ValueError(f"kind={kind!r} is not allowed: expected 'backward' or 'input'")
    d = _factor_cause(ev, target, rank, rank_rtol) or factor_structure(ev, target)
    if not with_head:
        return d
    if d.code == "rank_deficient" and kind == "backward":
        width = factors.Delta[l - 1].shape[2]
        head += f" although {relation(f'M_{l}', width, 'N C', n * c, weak=True)}"
    elif d.code == "rank_deficient":
        head += f" although {relation(f'M_{l - 1} + bias', factors.Z[l - 1].shape[1], 'N', n, weak=True)}"
    return d.with_message(f"{head}: {d.message}")


def layer_rank_bound(ev: Evidence, l: int) -> Optional[Diagnosis]:
    """``rank(J_l) <= min(rank(Delta_l) rank(Z_l), sum_i min(a_i, rank Z_l)) < N C`` (``a_i``: inputs on
    which unit ``i`` passes a backward signal), with the causes of the factor ranks."""
    n, c = ev.n, ev.c
    nc = n * c
    delta3 = ev.factors.Delta[l - 1]
    Z = ev.factors.Z[l - 1]
    rank_delta, rank_z = numerical_rank(delta3.reshape(nc, -1)), numerical_rank(Z)
    counts = np.any(delta3 != 0.0, axis=1).sum(axis=0)
    unit_bound = int(np.minimum(counts, rank_z).sum())
    product = rank_delta * rank_z
    if min(product, unit_bound) >= nc:
        return None
    if product <= unit_bound:
        which = f"rank(Delta_{l}) x rank(Z_{l}) = {rank_delta} x {rank_z} = {product} < N C = {nc}"
    else:
        which = (f"sum over the units of layer {l} of min(#inputs where the unit passes a signal, rank(Z_{l})) = "
                 f"{unit_bound} < N C = {nc}")
    causes = []
    for target, rank, need in ((Target("backward_factor", l), rank_delta, nc), (Target("input_factor", l), rank_z, n)):
        if target.kind == "backward_factor" and l == ev.depth:
            continue
        if rank < need:
            d = _factor_cause(ev, target, input_level=False)
            name = target.name
            causes.append((d, f"{relation(f'rank({name})', rank, 'N C' if name.startswith('D') else 'N', need)}"
                              + (f" ({d.message})" if d else "")))
    text = "; ".join(t for _, t in causes) or "too few units pass a signal on enough inputs"
    code = next((d.code for d, _ in causes if d is not None), "layer_gram_singular")
    return Diagnosis(code, f"rank bound {which}: {text}", FULL_ROW_RANK_JACOBIANS,
                     roots_of(d for d, _ in causes))


def jacobian_rank_bound(ev: Evidence) -> Optional[Diagnosis]:
    """``rank(J) <= sum_l rank(J_l) < N C``, with each deficient layer's bound."""
    nc = ev.n * ev.c
    ranks = []
    for l in range(1, ev.depth + 1):
        D, Z = ev.factors.Delta[l - 1].reshape(nc, -1), ev.factors.Z[l - 1]
        ranks.append(numerical_rank((D @ D.T) * _expand(Z @ Z.T, ev.c)))
    total = sum(ranks)
    if total >= nc:
        return None
    bounds = [layer_rank_bound(ev, l) for l in range(1, ev.depth + 1)]
    reasons = [f"layer {l}: {b.message}" for l, b in enumerate(bounds, start=1) if b is not None]
    detail = f" ({'; '.join(reasons)})" if reasons else ""
    code = next((b.code for b in bounds if b is not None), "ntk_gram_singular")
    causes = roots_of(bounds)
    return Diagnosis(code,
                     f"rank bound: rank(J) is at most sum_l rank(J_l) = {' + '.join(map(str, ranks))} = {total} < N C = {nc}"
                     f"{detail}", NTK_POSITIVE_DEFINITE, causes)


def _expand(gram: np.ndarray, c: int) -> np.ndarray:
    return gram if c == 1 else np.repeat(np.repeat(gram, c, axis=0), c, axis=1)


def no_structural_cause(ev: Evidence, target: Target, code: str) -> Diagnosis:
    """Nothing structural explains the near-dependence: say what was ruled out, with the numbers."""
    pair = closest_pair(ev.X)
    U, keep = ev.unit_x
    angle = float("nan")
    if keep.size >= 2:
        G = U @ U.T
        np.fill_diagonal(G, -np.inf)
        a, b = np.unravel_index(int(np.argmax(G)), G.shape)
        angle = float(np.linalg.norm(U[a] - U[b]))
    dist = f"{fmt(pair[2])}" if pair else "nan"
    ruled = ("zero inputs without a bias, " + ("positive multiples under a positively homogeneous activation "
                                               "without a bias, " if ev.homogeneous and not ev.has_bias else "")
             + "duplicate or near-duplicate inputs")
    if target.kind == "layer":
        factors = f"Delta_{target.layer} and Z_{target.layer} have full row rank"
    else:
        factors = "no layer-rank bound below N C"
    return Diagnosis(code,
                     f"no structural cause found (none of: {ruled}; closest pair of inputs at relative distance "
                     f"{dist}, smallest angle between two inputs {fmt(angle)} rad; {factors}): the rows of "
                     f"{target.name} are nearly linearly dependent", FULL_ROW_RANK_JACOBIANS)


# ---------------------------------------------------------------------------------------------
# orchestrators: one sentence per failed system
# ---------------------------------------------------------------------------------------------
def diagnose_layer_gram(net, factors, X, l: int, condition_number: float, cut: float = 1e-12) -> Diagnosis:
    """Why ``J_l J_l^T`` is (nearly) singular; ``cut`` is ``1 / max_condition`` of the failed solve.

    In order: the input-level causes (verified on the rows of ``J_l``), ``P_l < N C``, zero rows of
    ``J_l`` on nonzero inputs, the rank bound through the factor ranks, narrow factors whose activation
    zero patterns make the rows ``kron(delta_n, z_n)`` dependent, and otherwise no structural cause.
    """
    ev = Evidence(net, factors, X, cut=cut)
    nc = ev.n * ev.c
    target = Target("layer", l)
    head = f"layer {l} Gram J_{l} J_{l}^T ({nc} x {nc}) is singular (condition number {condition_number:.3g})"
    d = (_first(ev, target, INPUT_CAUSES + (too_few_parameters, silent_inputs))
         or layer_rank_bound(ev, l) or _narrow_factors(ev, l))
    if d is None:
        d = no_structural_cause(ev, target, "layer_gram_singular")
    return d.with_message(f"{head}: {d.message}")


def _narrow_factors(ev: Evidence, l: int) -> Optional[Diagnosis]:
    """Factor ranks below ``N C`` / ``N`` that do not force ``rank J_l < N C`` by the product bound; the
    activation patterns complete the dependence (the measured ``rank(J_l)`` when small enough to form)."""
    n, c = ev.n, ev.c
    nc = n * c
    delta = ev.factors.Delta[l - 1].reshape(nc, -1)
    Z = ev.factors.Z[l - 1]
    parts, found = [], []
    rank_delta, rank_z = numerical_rank(delta), numerical_rank(Z)
    if rank_delta < nc and l < ev.depth:
        d = _factor_cause(ev, Target("backward_factor", l), input_level=False)
        found.append(d)
        parts.append(relation(f"rank(Delta_{l})", rank_delta, "N C", nc) + (f" ({d.message})" if d else ""))
    if rank_z < n:
        d = _factor_cause(ev, Target("input_factor", l), input_level=False)
        found.append(d)
        parts.append(relation(f"rank(Z_{l})", rank_z, "N", n) + (f" ({d.message})" if d else ""))
    if not parts:
        return None
    P_l = delta.shape[1] * Z.shape[1]
    rank_j = (numerical_rank((delta[:, :, None] * np.repeat(Z, c, axis=0)[:, None, :]).reshape(nc, P_l))
              if P_l * nc <= 1 << 22 else None)
    measured = f"; measured rank(J_{l}) = {rank_j}" if rank_j is not None else ""
    return Diagnosis("layer_gram_singular",
                     " and ".join(parts) + f": the rows kron(delta_n, z_n) come from spaces of dimension below the "
                                           f"batch and the activation patterns make them dependent{measured}",
                     FULL_ROW_RANK_JACOBIANS, roots_of(found))


def diagnose_ntk_gram(net, factors, X, condition_number: float, cut: float = 1e-12) -> Diagnosis:
    """Why ``J J^T = sum_l J_l J_l^T`` is (nearly) singular: it needs a null vector shared by every layer."""
    ev = Evidence(net, factors, X, cut=cut)
    nc = ev.n * ev.c
    target = Target("jacobian")
    head = f"NTK Gram J J^T ({nc} x {nc}) is singular (condition number {condition_number:.3g})"
    d = (_first(ev, target, INPUT_CAUSES + (too_few_parameters, silent_inputs)) or jacobian_rank_bound(ev)
         or no_structural_cause(ev, target, "ntk_gram_singular"))
    return d.with_message(f"{head}: {d.message}")


def layer_scale_spread(grams: Sequence[np.ndarray], condition_number: float, cut: float = 1e-12
                       ) -> Optional[Diagnosis]:
    """A coupled system of layer Grams (block patterns with off-diagonal blocks) whose scales differ by more
    than ``1 / cut``: huge inputs to a bounded activation (tanh, sin) give a first-layer Gram ~ |x|^2 / M_0
    and the others O(1), and the LU of the mixed system sees that ratio as its condition number.  Named
    with the mean diagonal of each layer's Gram."""
    scales = np.array([float(np.mean(np.diag(K))) for K in grams])
    if scales.size < 2 or np.min(scales) <= 0:
        return None
    hi, lo = int(np.argmax(scales)), int(np.argmin(scales))
    ratio = scales[hi] / scales[lo]
    if ratio * cut <= 1.0:
        return None
    return Diagnosis("layer_scales_differ",
                     f"the layer Grams' scales (mean diagonal of J_l J_l^T) range from {fmt(scales[lo])} (layer "
                     f"{lo + 1}) to {fmt(scales[hi])} (layer {hi + 1}), a ratio {fmt(ratio)} that the coupled pattern "
                     f"system (condition number {condition_number:.3g}) cannot resolve in float64: rescale the inputs "
                     "(a bounded activation saturates: only the first layer grows with |x|)", None)


def input_diagnoses(net, factors, X, cut: float = 1e-12) -> List[Diagnosis]:
    """The input-level causes that make rows of the full ``J`` zero or dependent (so ``Theta_G`` of ANY
    approximation has a zero row or proportional rows): for approximations that never solve a system
    with ``J``'s rows (the diagonal Fisher)."""
    ev = Evidence(net, factors, X, cut=cut)
    target = Target("jacobian")
    out = []
    for cause in INPUT_CAUSES[:3]:
        d = cause(ev, target)
        if d is not None:
            out.append(d)
    return out


def zero_signal_samples(factors, l: int) -> np.ndarray:
    """Indices ``n`` whose layer-``l`` Jacobian rows ``kron(Delta_l[n, c, :], z_{l,n})`` all vanish
    (``Delta_l[n] = 0`` or ``z_{l,n} = 0``)."""
    n = factors.n_samples
    delta_zero = np.all(factors.Delta[l - 1].reshape(n, -1) == 0.0, axis=1)
    z_zero = np.all(factors.Z[l - 1] == 0.0, axis=1)
    return np.flatnonzero(delta_zero | z_zero)
