"""Typed assumptions and flags: the one vocabulary claims, falsify spaces, numerics diagnostics and
verdicts share.

* :class:`Assumption` -- ``name`` (short and stable: the ``ngd-verify falsify --relax`` key and the
  theory's ``NotIsotropic.failed_assumption``), ``message`` (the sentence ``ngd-verify list`` and the
  reports print; ``str(assumption)`` is the message) and an optional ``predicate(setting) -> True /
  False / None`` (``None``: the setting does not say).  A *setting* is a mapping or an object with
  the architecture and data facts (:class:`Setting`, a ``proofs.strategies.Scenario``, or a dict);
  :func:`fact` reads them.
* :class:`Flag` -- a concrete finding on one network or draw (``code``, a sentence with the numbers,
  and the :class:`Assumption` it shows violated).  Numerics approximations put their flags in
  ``diagnostics["flags"]``; ``diagnostics["failed_assumption"]`` is :func:`failed_assumption_text`
  of them.
* :class:`Relaxed` -- an assumption a claim deliberately drops ("C = 1 (relaxed here: C = 2)"):
  its predicate must come out ``False`` on the claim's own setting.

The catalogue below holds the assumptions used across the project, as module constants; compare
them by identity (``flag.assumption is SINGLE_OUTPUT``), never by substring.

>>> SINGLE_OUTPUT.check(Setting(n_samples=4, input_dim=8, hidden_widths=(16,), n_outputs=2))
False
>>> str(SINGLE_OUTPUT)
'C = 1 (single output)'
>>> lookup("M_2 + bias >= N") is HIDDEN_WIDTH
True
>>> flag = Flag("multiple_outputs", "C = 2 > 1: ...", SINGLE_OUTPUT)
>>> flag.violates(SINGLE_OUTPUT), failed_assumption_text([flag])
(True, 'C = 2 > 1: ...')
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Assumption", "Flag", "Relaxed", "Setting", "CATALOGUE", "all_of", "as_assumption", "check_all",
           "fact", "failed_assumption_text", "lookup"]

Predicate = Callable[[Any], Optional[bool]]


# ---------------------------------------------------------------------------------------------
# the types
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assumption:
    """A named assumption with the sentence that states it and, optionally, a check on a setting."""

    name: str
    message: str
    predicate: Optional[Predicate] = field(default=None, compare=False, repr=False)
    #: the assumptions a violation of this one can stem from (its conjuncts, its disjuncts, the facts it is
    #: derived from): relaxing one of them makes a violation of this one a consequence of the relaxation
    #: (see :meth:`stems_from`), e.g. "M_0 >= N or Forster inputs" stems from "M_0 >= N"
    parts: Tuple["Assumption", ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self):
        for key in ("name", "message"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"Assumption {key}={value!r} is not allowed: expected a non-empty string")
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"Assumption predicate={self.predicate!r} is not allowed: expected a callable or None")
        object.__setattr__(self, "parts", tuple(self.parts))
        for p in self.parts:
            if not isinstance(p, Assumption):
                raise TypeError(f"Assumption parts must be Assumption objects, got {p!r}")

    def stems_from(self, other: "Assumption") -> bool:
        """Whether a violation of this assumption can be a consequence of ``other`` failing: ``other`` is
        this assumption or (recursively) one of its :attr:`parts` (identity, not text).

        >>> KFAC_INPUTS.stems_from(INPUT_WIDTH), NTK_POSITIVE_DEFINITE.stems_from(HIDDEN_WIDTH)
        (True, False)
        """
        if other is self:
            return True
        return any(p.stems_from(other) for p in self.parts)

    def __str__(self) -> str:
        return self.message

    def check(self, setting) -> Optional[bool]:
        """``True``/``False`` from the predicate on ``setting``; ``None`` when there is no predicate,
        no setting, or the setting lacks the facts it needs."""
        if self.predicate is None or setting is None:
            return None
        value = self.predicate(setting)
        return None if value is None else bool(value)

    def relaxed(self, note: str = "") -> "Relaxed":
        """This assumption, deliberately dropped by a claim (``note`` says how)."""
        return Relaxed(self, note)

    def to_dict(self) -> Dict[str, str]:
        return {"name": self.name, "message": self.message}


@dataclass(frozen=True)
class Relaxed:
    """An assumption a claim deliberately drops; its predicate must be ``False`` on the claim's setting."""

    assumption: Assumption
    note: str = ""

    def __post_init__(self):
        if not isinstance(self.assumption, Assumption):
            raise TypeError(f"Relaxed assumption={self.assumption!r} is not allowed: expected an Assumption")
        if not isinstance(self.note, str):
            raise TypeError(f"Relaxed note={self.note!r} is not allowed: expected a string")

    @property
    def name(self) -> str:
        return self.assumption.name

    @property
    def message(self) -> str:
        return f"{self.assumption.message} (relaxed here{': ' + self.note if self.note else ''})"

    def __str__(self) -> str:
        return self.message

    def check(self, setting) -> Optional[bool]:
        return self.assumption.check(setting)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "message": self.message, "relaxed": True}


@dataclass(frozen=True)
class Flag:
    """A concrete finding on one network / draw: ``code`` (stable, e.g. ``"layer_gram_singular"``),
    ``message`` (the sentence with the numbers) and the :class:`Assumption` it violates (if known)."""

    code: str
    message: str
    assumption: Optional[Assumption] = None
    #: the root causes the verifier named (e.g. :data:`NO_DEAD_UNITS` behind a singular layer Gram whose
    #: flag keeps the approximation's own :attr:`assumption`); empty when the assumption is the cause
    causes: Tuple[Assumption, ...] = field(default=(), compare=False)

    def __post_init__(self):
        object.__setattr__(self, "causes", tuple(self.causes))
        for a in self.causes:
            if not isinstance(a, Assumption):
                raise TypeError(f"Flag causes must be Assumption objects, got {a!r}")
        if not isinstance(self.code, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.code):
            raise ValueError(f"Flag code={self.code!r} is not allowed: expected snake_case like 'layer_gram_singular'")
        if not isinstance(self.message, str) or not self.message:
            raise TypeError(f"Flag message={self.message!r} is not allowed: expected a non-empty string")
        if self.assumption is not None and not isinstance(self.assumption, Assumption):
            raise TypeError(f"Flag assumption={self.assumption!r} is not allowed: expected an Assumption or None")

    def __str__(self) -> str:
        return self.message

    def violates(self, assumption: Union[Assumption, Relaxed]) -> bool:
        """Whether this flag shows ``assumption`` violated (identity, not text)."""
        target = assumption.assumption if isinstance(assumption, Relaxed) else assumption
        return self.assumption is not None and self.assumption is target

    def with_prefix(self, prefix: str) -> "Flag":
        """The same flag with ``prefix`` before its message (e.g. ``"numerics: "``)."""
        return Flag(self.code, prefix + self.message, self.assumption, self.causes)

    @property
    def attributed(self) -> Tuple[Assumption, ...]:
        """What the finding is attributed to: the named :attr:`causes`, else the violated
        :attr:`assumption` (``()`` when neither is known)."""
        if self.causes:
            return self.causes
        return () if self.assumption is None else (self.assumption,)

    def explained_by(self, relaxed: Assumption) -> bool:
        """Whether the finding is a consequence of relaxing ``relaxed``: every assumption it is
        :attr:`attributed` to stems from it (:meth:`Assumption.stems_from`).  A flag attributed to
        nothing is not explained (it names no assumption to compare).

        >>> f = Flag("dead_units", "2 of 4 units of layer 1 are dead", FULL_ROW_RANK_JACOBIANS, (NO_DEAD_UNITS,))
        >>> f.explained_by(NO_DEAD_UNITS), f.explained_by(HIDDEN_WIDTH)
        (True, False)
        """
        return bool(self.attributed) and all(a.stems_from(relaxed) for a in self.attributed)

    def to_dict(self) -> Dict[str, Any]:
        d = {"code": self.code, "message": self.message,
             "assumption": None if self.assumption is None else self.assumption.name}
        if self.causes:
            d["causes"] = [a.name for a in self.causes]
        return d


def failed_assumption_text(flags: Sequence[Flag]) -> Optional[str]:
    """The human-readable ``failed_assumption`` of a list of flags: their messages joined by ``"; "``
    (the first flag's message when there is one), ``None`` when there are none."""
    return "; ".join(f.message for f in flags) if flags else None


# ---------------------------------------------------------------------------------------------
# settings and facts
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """The architecture and data facts of an experiment (the narrowest network of a width sweep).

    ``inputs`` names the data recipe: ``"sphere"`` (distinct unit-norm inputs in general position),
    ``"raw"`` (unequal norms), ``"forster"`` (radial isotropic position), ``"duplicate"``,
    ``"near_duplicate"``, ``"positive"``, ``"dataset"`` (a real data set: only ``input_rank`` says
    more).  ``input_rank`` (optional) is the measured ``rank X``.
    """

    n_samples: Optional[int] = None
    input_dim: Optional[int] = None
    hidden_widths: Tuple[int, ...] = ()
    n_outputs: int = 1
    activation: str = "relu"
    sigma_w2: float = 2.0
    bias: bool = False
    damping: float = 0.0
    inputs: str = "sphere"
    input_rank: Optional[int] = None
    pattern: Optional[Tuple[Tuple[int, ...], ...]] = None
    dead_units: int = 0
    parameterisation: str = "ntk"

    def __post_init__(self):
        object.__setattr__(self, "hidden_widths", tuple(int(w) for w in self.hidden_widths))

    @property
    def widths(self) -> Optional[Tuple[int, ...]]:
        if self.input_dim is None:
            return None
        return (int(self.input_dim), *self.hidden_widths, int(self.n_outputs))

    @property
    def depth(self) -> int:
        return len(self.hidden_widths) + 1

    @property
    def forster(self) -> bool:
        return self.inputs == "forster"


_ALIASES = {"n_samples": ("n_samples", "N", "n"), "input_dim": ("input_dim", "M_0")}


def fact(setting, name: str, default=None):
    """The fact ``name`` of ``setting`` (a mapping or an object), ``default`` when it does not say.

    Derived facts: ``widths`` from ``input_dim`` + ``hidden_widths`` + ``n_outputs`` (and back),
    ``bias`` from ``sigma_b2 > 0``, ``forster`` from ``inputs == "forster"``, ``depth`` from ``widths``.

    >>> fact({"widths": (4, 16, 16, 2)}, "hidden_widths"), fact({"sigma_b2": 0.5}, "bias")
    ((16, 16), True)
    """
    if setting is None:
        return default

    def raw(key):
        for alias in _ALIASES.get(key, (key,)):
            if isinstance(setting, Mapping):
                if alias in setting:
                    return setting[alias]
            elif hasattr(setting, alias):
                return getattr(setting, alias)
        return None

    value = raw(name)
    if value is not None:
        return value
    widths = raw("widths")
    if widths is not None and name in ("input_dim", "hidden_widths", "n_outputs", "depth"):
        widths = tuple(widths)
        return {"input_dim": widths[0], "hidden_widths": widths[1:-1], "n_outputs": widths[-1],
                "depth": len(widths) - 1}[name]
    if name == "widths":
        m0, hidden = raw("input_dim"), raw("hidden_widths")
        if m0 is not None and hidden is not None:
            return (m0, *hidden, raw("n_outputs") or 1)
    if name == "bias":
        b2 = raw("sigma_b2")
        return default if b2 is None else b2 > 0
    if name == "forster":
        inputs = raw("inputs")
        return default if inputs is None else inputs == "forster"
    return default


def _known(*values) -> bool:
    return all(v is not None for v in values)


# ---------------------------------------------------------------------------------------------
# predicates
# ---------------------------------------------------------------------------------------------
def _equals(name, expected):
    def predicate(s):
        value = fact(s, name)
        return None if value is None else value == expected
    return predicate


def _activation_is(*names):
    def predicate(s):
        act = fact(s, "activation")
        return None if act is None else str(act) in names
    return predicate


def _no_bias(s):
    bias = fact(s, "bias")
    return None if bias is None else not bias


def _sigma_w2_two(s):
    value = fact(s, "sigma_w2")
    return None if value is None else float(value) == 2.0


def _ntk(s):
    return str(fact(s, "parameterisation", "ntk")) == "ntk"


def _single_output(s):
    c = fact(s, "n_outputs")
    return None if c is None else int(c) == 1


def _bias_count(s) -> int:
    return 1 if fact(s, "bias", False) else 0


def _input_width(s):
    n, m0 = fact(s, "n_samples"), fact(s, "input_dim")
    return None if not _known(n, m0) else m0 + _bias_count(s) >= n


def _kfac_inputs(s):
    width_ok = _input_width(s)
    if width_ok:
        return True
    forster = fact(s, "forster")
    if forster:
        return True
    return None if width_ok is None or forster is None else False


def _forster(s):
    forster = fact(s, "forster")
    return None if forster is None else bool(forster)


def _distinct(s):
    inputs = fact(s, "inputs")
    if inputs is None:
        return None
    if inputs in ("duplicate", "near_duplicate"):
        return False
    return True if inputs in ("sphere", "raw", "forster", "positive") else None


def _linearly_independent(s):
    n, rank = fact(s, "n_samples"), fact(s, "input_rank")
    if _known(n, rank):
        return rank >= n
    if _input_width(s) is False or _distinct(s) is False:
        return False
    return None  # M_0 >= N with Gaussian inputs is independent almost surely, but a data set may not be


def _hidden_width(s):
    n, hidden, c = fact(s, "n_samples"), fact(s, "hidden_widths"), fact(s, "n_outputs", 1)
    if not _known(n, hidden):
        return None
    return all(m >= n * c for m in hidden)


def _layer_input_widths(s):
    """Every layer's fan-in ``M_{l-1} + bias >= N`` (input layer and hidden layers)."""
    return _all_known([_input_width(s), _hidden_width(s)])


def _all_known(values):
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _layer_jacobians(s):
    """Necessary conditions for full row rank ``N C`` of every ``J_l``: ``P_l >= N C`` (and hidden widths
    ``>= N``), distinct inputs, no dead units."""
    n, widths, c = fact(s, "n_samples"), fact(s, "widths"), fact(s, "n_outputs", 1)
    parts = [_hidden_width(s), _distinct(s), _no_dead(s)]
    if _known(n, widths):
        widths = tuple(widths)
        b = _bias_count(s)
        parts.append(all(widths[l + 1] * (widths[l] + b) >= n * c for l in range(len(widths) - 1)))
    return _all_known(parts)


def _ntk_positive_definite(s):
    return _all_known([_distinct(s), _no_dead(s)])


def _kfac_rank(s):
    """The dimension conditions of ``rank Delta_l = N C`` and ``rank Z_l = N`` (necessary only: relu
    can fail the ranks at any width; the numerics diagnostics check each draw)."""
    parts = [_hidden_width(s), _layer_input_widths(s), _distinct(s), _no_dead(s)]
    return False if any(v is False for v in parts) else None


def _rho_zero(s):
    rho = fact(s, "damping")
    return None if rho is None else float(rho) == 0.0


def _rho_positive(s):
    rho = fact(s, "damping")
    return None if rho is None else float(rho) > 0.0


def _no_dead(s):
    dead = fact(s, "dead_units")
    return None if dead is None else int(dead) == 0


def _phi_prime_nonzero(s):
    act = fact(s, "activation")
    if act is None:
        return None
    from theory.unit_wise_theory import active_fraction  # derived gamma = P(phi' != 0)

    return bool(active_fraction(str(act)) == 1)


def _pattern_one_in_range(s):
    S = fact(s, "pattern")
    if S is None:
        return None
    from theory.patterns import analyze_pattern

    return bool(analyze_pattern([list(r) for r in S]).one_in_range)


def _pattern_alpha_nonzero(s):
    S = fact(s, "pattern")
    if S is None:
        return None
    from theory.patterns import analyze_pattern

    a = analyze_pattern([list(r) for r in S])
    return bool(a.one_in_range and a.alpha != 0)


def _symmetric_pattern(s):
    S = fact(s, "pattern")
    if S is None:
        return None
    rows = [list(r) for r in S]
    L = len(rows)
    return all(len(r) == L for r in rows) and all(rows[i][j] == rows[j][i] and rows[i][j] in (0, 1)
                                                  for i in range(L) for j in range(L)) \
        and all(rows[i][i] == 1 for i in range(L))


def all_of(name: str, message: str, *parts: Assumption) -> Assumption:
    """An assumption that holds iff every part does (``None`` if some part is unknown and none fails)."""
    for p in parts:
        if not isinstance(p, Assumption):
            raise TypeError(f"all_of parts must be Assumption objects, got {type(p).__name__}")
    return Assumption(name, message, lambda s: _all_known([p.check(s) if p.predicate else True for p in parts]),
                      parts=parts)


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------
# architecture and parameterisation
NTK_PARAMETERISATION = Assumption("NTK parameterisation", "NTK parameterisation, i.i.d. N(0, 1) initialisation", _ntk)
RELU = Assumption("relu", "relu activation", _activation_is("relu"))
TANH = Assumption("tanh", "tanh activation (gamma = 1)", _activation_is("tanh"))
SIGMA_W2_TWO = Assumption("sigma_w2 = 2", "sigma_w2 = 2", _sigma_w2_two)
NO_BIAS = Assumption("no bias", "no bias (sigma_b2 = 0)", _no_bias)
WITH_BIAS = Assumption("sigma_b2 > 0", "sigma_b2 > 0 (bias parameters on)", lambda s: _negate(_no_bias(s)))
SINGLE_OUTPUT = Assumption("C = 1", "C = 1 (single output)", _single_output)
STANDARD_RELU_NET = all_of("standard relu network", "NTK parameterisation, relu, sigma_w2 = 2, no bias",
                           NTK_PARAMETERISATION, RELU, SIGMA_W2_TWO, NO_BIAS)
STANDARD_RELU_NET_C1 = all_of("standard relu network, C = 1", "NTK parameterisation, relu, sigma_w2 = 2, no bias, C = 1",
                              NTK_PARAMETERISATION, RELU, SIGMA_W2_TWO, NO_BIAS, SINGLE_OUTPUT)
STANDARD_NET = all_of("standard network", "NTK parameterisation, sigma_w2 = 2, no bias",
                      NTK_PARAMETERISATION, SIGMA_W2_TWO, NO_BIAS)

# data
DISTINCT_INPUTS = Assumption("distinct inputs", "distinct inputs (no two training inputs coincide)", _distinct)
INPUT_WIDTH = Assumption("M_0 >= N", "M_0 + bias >= N (the input Gram X X^T can be invertible)", _input_width)
FORSTER_INPUTS = Assumption("Forster inputs",
                            "inputs in radial isotropic position (Forster transform), M_0 < N, general position",
                            _forster)
KFAC_INPUTS = Assumption("M_0 >= N or Forster inputs",
                         "M_0 + bias >= N, or inputs in radial isotropic position (Forster transform)", _kfac_inputs,
                         parts=(INPUT_WIDTH, FORSTER_INPUTS))
LINEARLY_INDEPENDENT_INPUTS = Assumption(
    "rank X = N", "linearly independent inputs: rank X = N (M_0 >= N is necessary, not sufficient)",
    _linearly_independent, parts=(INPUT_WIDTH, DISTINCT_INPUTS))
NONZERO_VARIANCE = Assumption("nonzero inputs or sigma_b2 > 0",
                              "every input nonzero or sigma_b2 > 0 (positive pre-activation variance)")

# layer Jacobians and their ranks
HIDDEN_WIDTH = Assumption("hidden width >= N", "hidden widths M_l >= N C", _hidden_width)
FULL_ROW_RANK_JACOBIANS = Assumption(
    "layer Jacobians of full row rank",
    "every layer Gram J_l J_l^T positive definite (hidden widths >= N, distinct inputs)", _layer_jacobians,
    parts=(HIDDEN_WIDTH, DISTINCT_INPUTS))
# not from the hidden width: the NTK can be positive definite with M_l < N (P >= N parameters), and a
# singular NTK at small width (an input on which every layer-1 relu unit is inactive) is this assumption
# failing, not the width's
NTK_POSITIVE_DEFINITE = Assumption(
    "NTK positive definite", "the NTK Theta on the training inputs is positive definite (distinct unit-norm inputs)",
    _ntk_positive_definite, parts=(DISTINCT_INPUTS,))
KFAC_RANK = Assumption(
    "rank Delta_l = NC and rank Z_l = N for every hidden layer",
    "K-FAC: rank Delta_l = NC and rank Z_l = N for every hidden layer (an invertible J_l J_l^T is not enough; "
    "relu can fail it at any width), checked on every draw by the numerics diagnostics", _kfac_rank,
    parts=(HIDDEN_WIDTH, DISTINCT_INPUTS))
UNIT_INPUT_RANK = Assumption("Z_l full row rank", "M_0 >= N and hidden widths >= N (Z_l full row rank)",
                             _layer_input_widths, parts=(INPUT_WIDTH, HIDDEN_WIDTH))
PHI_PRIME_NONZERO = Assumption("phi' != 0 almost everywhere", "phi' != 0 almost everywhere (gamma = 1)",
                               _phi_prime_nonzero)
# a unit is dead only where phi' vanishes on its pre-activation for every input: on an interval (relu) or by
# float64 rounding (saturated tanh), so a dead unit is a consequence of relaxing phi' != 0
NO_DEAD_UNITS = Assumption("no dead relu units", "no dead units (every unit passes a signal on some input)", _no_dead,
                           parts=(PHI_PRIME_NONZERO,))
# the input-side twin of a dead unit: every unit of a layer inactive on one input (probability 2^-M_l for
# relu at width M_l, so likelier at small width -- but a consequence of inactive units, not of the width:
# a narrow layer without a silent input fails "hidden width >= N" on its own)
NO_SILENT_INPUTS = Assumption(
    "no silent inputs", "every nonzero input passes a signal through every layer (some unit of each layer active "
    "on it)", parts=(NO_DEAD_UNITS,))
WELL_CONDITIONED = Assumption("well-conditioned systems",
                              "the systems solved are well conditioned (float64 round-off stays small)")

# the preconditioner
RHO_TO_ZERO = Assumption("rho -> 0+", "rho -> 0+ (minimum-norm / pseudo-inverse step)", _rho_zero)
RHO_POSITIVE = Assumption("rho > 0", "rho > 0 fixed", _rho_positive)
BLOCK_STRUCTURE = Assumption("a layer-wise or unit-wise block structure",
                             "a layer-wise or unit-wise block structure of the Fisher approximation",
                             lambda s: None if fact(s, "approximation") is None
                             else fact(s, "approximation") != "diagonal")
ONE_IN_RANGE = Assumption("1 in range(S)", "1 in range(S) (the ones vector lies in the range of the block pattern)",
                          _pattern_one_in_range)
PATTERN_ALPHA_NONZERO = Assumption("alpha = 1^T S^+ 1 > 0", "alpha = 1^T S^+ 1 != 0 (the step makes progress)",
                                   _pattern_alpha_nonzero)
SYMMETRIC_PATTERN = Assumption("S symmetric 0/1", "S symmetric 0/1 with unit diagonal", _symmetric_pattern)

# limits and dynamics
INFINITE_WIDTH_DYNAMICS = Assumption("infinite width", "infinite width for the dynamics (checked by a width sweep)")
INFINITE_WIDTH_KERNELS = Assumption("infinite width for the kernels",
                                    "infinite width for the analytic kernels (checked by a width sweep)")
COUNT_CONCENTRATION = Assumption("active-count concentration",
                                 "infinite width (concentration of the active-unit counts)")
LAZY_TRAINING = Assumption("lazy training", "the real network follows its linearisation (lazy training)")
LINEARISED_DYNAMICS = Assumption("linearised dynamics", "linearised (lazy) dynamics: Theta_G constant in t")
ISOTROPIC_OPERATOR = Assumption("Theta_G = alpha I", "Theta_G = alpha I on the training set")
NON_FLAT_KERNEL = Assumption("Theta not a multiple of I", "Theta = J J^T / N not a multiple of I")
EXACT_FISHER = Assumption("exact Fisher", "exact Fisher F = J^T J / N")

# kernels
CLOSED_FORM_DUAL = Assumption("closed-form dual kernel", "activations with closed-form dual kernels")

# matrices (the pseudo-inverse product rule)
A_FULL_COLUMN_RANK = Assumption("A full column rank", "A has full column rank")
C_FULL_ROW_RANK = Assumption("C full row rank", "C has full row rank")
B_INVERTIBLE = Assumption("B invertible", "B is invertible",
                          lambda s: None if fact(s, "rank_b") is None or fact(s, "k") is None
                          else fact(s, "rank_b") >= fact(s, "k"))


def _negate(value):
    return None if value is None else not value


#: every catalogue constant, by name
CATALOGUE: Dict[str, Assumption] = {a.name: a for a in globals().copy().values() if isinstance(a, Assumption)}
__all__ += sorted(n for n, v in globals().copy().items() if isinstance(v, Assumption) and n.isupper())

#: other spellings (the theory's ``NotIsotropic.failed_assumption`` and the claims' former texts)
_SPELLINGS: Dict[str, Assumption] = {
    "C = 1 (single output)": SINGLE_OUTPUT,
    "M_0 + bias >= N": INPUT_WIDTH,
    "M_0 >= N": INPUT_WIDTH,
    "rho -> 0+ (minimum-norm step)": RHO_TO_ZERO,
    "pseudo-inverse of each Kronecker factor (rho -> 0+)": RHO_TO_ZERO,
    "pseudo-inverse per unit block (rho -> 0+)": RHO_TO_ZERO,
    "sigma_b2 > 0": WITH_BIAS,
}
_PATTERNS: List[Tuple[re.Pattern, Callable[[re.Match], Assumption]]] = [
    (re.compile(r"M_(\d+) \+ bias >= N"), lambda m: INPUT_WIDTH if m.group(1) == "0" else HIDDEN_WIDTH),
    (re.compile(r"M_(\d+) >= N C"), lambda m: HIDDEN_WIDTH),
    (re.compile(r"M_(\d+) >= C"), lambda m: HIDDEN_WIDTH),  # weaker than M_l >= N C: failing it fails that
]


def lookup(name: str) -> Optional[Assumption]:
    """The catalogue assumption whose name, message or known spelling is exactly ``name`` (the
    theory's ``NotIsotropic.failed_assumption`` included: ``"M_2 >= N C"`` is :data:`HIDDEN_WIDTH`);
    ``None`` if there is none.  Exact matches only: no substring search."""
    if not isinstance(name, str):
        raise TypeError(f"name={name!r} is not allowed: expected a string")
    text = name.strip()
    if text in CATALOGUE:
        return CATALOGUE[text]
    if text in _SPELLINGS:
        return _SPELLINGS[text]
    for a in CATALOGUE.values():
        if a.message == text:
            return a
    for pattern, pick in _PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            return pick(m)
    return None


def as_assumption(value: Union[str, Assumption, Relaxed]) -> Union[Assumption, Relaxed]:
    """``value`` itself if typed; a string becomes its catalogue assumption (:func:`lookup`) or, if it
    names none, a stated assumption without a predicate (``Assumption(text, text)``)."""
    if isinstance(value, (Assumption, Relaxed)):
        return value
    if isinstance(value, str):
        return lookup(value) or Assumption(value, value)
    raise TypeError(f"assumption {value!r} is not allowed: expected an Assumption, Relaxed or a string")


def check_all(assumptions: Iterable[Union[Assumption, Relaxed]], setting) -> List[Tuple[Any, Optional[bool]]]:
    """``[(assumption, holds)]`` with ``holds`` from each predicate on ``setting`` (``None``: unknown)."""
    return [(a, a.check(setting)) for a in assumptions]
