"""proofs.adaptive: budgets, schedule, purity of the measurements, what is spent, bad input."""
import numpy as np
import pytest

from proofs.adaptive import Budget, SweepSpec, adaptive_sweep


def power_law_measure(slope=-0.5, noise=0.3, calls=None):
    def measure(width, rep):
        if calls is not None:
            calls.append((width, rep))
        rng = np.random.default_rng([width, rep])
        return {"iso": width ** slope * float(np.exp(noise * rng.standard_normal()))}
    return measure


def test_schedule_and_looks():
    b = Budget(2, 12, (4096,))
    assert b.schedule() == [2, 4, 8, 12] and b.looks == 5


@pytest.mark.parametrize("kw", [dict(repeats=0), dict(repeats=3, max_repeats=2), dict(repeats=2, max_repeats=8.5),
                                dict(repeats=2.9), dict(repeats=True, max_repeats=True),
                                dict(extra_widths=(1024.7,)), dict(extra_widths=(0,))])
def test_budget_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Budget(**kw)


def test_measurements_do_not_depend_on_the_number_of_looks():
    """A point (width, rep) gives the same number whatever budget reached it, and is measured once."""
    calls_a, calls_b = [], []
    a = adaptive_sweep(power_law_measure(calls=calls_a), [64, 128, 256], [SweepSpec("iso")], Budget(2, 2))
    b = adaptive_sweep(power_law_measure(calls=calls_b), [64, 128, 256], [SweepSpec("iso")], Budget(2, 16, (512,)))
    for w in (64, 128, 256):
        assert b.errors["iso"][w][:2] == a.errors["iso"][w]
    assert len(calls_b) == len(set(calls_b)) == b.spent["networks"]
    assert b.spent["looks"] <= Budget(2, 16, (512,)).looks


def test_an_undecided_sweep_gets_more_evidence_and_records_it():
    run = adaptive_sweep(power_law_measure(noise=0.3), [64, 128, 256, 512], [SweepSpec("iso")],
                         Budget(2, 16, (1024,)))
    assert run.spent["looks"] > 1 and run.spent["history"][0]["verdicts"]["iso"] == "inconclusive"
    assert run.parts[0].verdict == "verified"


@pytest.mark.parametrize("widths, specs, match", [([64, 128], [SweepSpec("iso")], "at least 3"),
                                                  ([64, 128, 128], [SweepSpec("iso")], "distinct"),
                                                  ([64, 128, 256], [], "at least one"),
                                                  ([64, 128, 256], [SweepSpec("iso"), SweepSpec("iso")], "distinct names")])
def test_bad_sweeps_are_rejected(widths, specs, match):
    with pytest.raises(ValueError, match=match):
        adaptive_sweep(power_law_measure(), widths, specs)


def test_missing_quantity_is_named():
    with pytest.raises(ValueError, match="no value for"):
        adaptive_sweep(lambda w, r: {"other": 1.0}, [64, 128, 256], [SweepSpec("iso")])
    with pytest.raises(TypeError, match="mapping"):
        adaptive_sweep(lambda w, r: 1.0, [64, 128, 256], [SweepSpec("iso")])


def test_a_serial_sweep_imports_no_dask_and_records_no_execution():
    """Points are Dask tasks only under a proofs.distributed point executor; serially nothing of Dask loads."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from proofs.adaptive import Budget, SweepSpec, adaptive_sweep\n"
            "run = adaptive_sweep(lambda w, r: {'iso': w ** -0.5}, [64, 128, 256], [SweepSpec('iso')], Budget(1, 1))\n"
            "assert 'execution' not in run.spent\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'cloudpickle')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
