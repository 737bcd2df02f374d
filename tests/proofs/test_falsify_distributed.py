"""``ngd-verify falsify`` in shards: ``--shards K`` splits the budget into K independent searches seeded from
their own coordinates, so ``--workers 2`` (the shards as Dask tasks on an embedded cluster) prints exactly what
the serial ``--shards 2`` prints, timings aside; the usage errors name the option."""
import pytest

from proofs.claim import RunConfig
from proofs.falsify import falsify, format_outcome, shard_budgets
from proofs.registry import get_claim
from test_falsify_search import run, untimed   # the CLI runner and timing scrubber of the falsify tests
from theory.assumptions import HIDDEN_WIDTH, INPUT_WIDTH, KFAC_INPUTS


def test_budgets_add_up_and_differ_by_at_most_one():
    for n, k in [(50, 1), (50, 4), (7, 7), (10, 3)]:
        b = shard_budgets(n, k)
        assert sum(b) == n and len(b) == k and max(b) - min(b) <= 1 and min(b) >= 1


def test_sharded_search_is_deterministic_and_names_the_shard():
    c = get_claim("ngd.block_tridiagonal.alpha", None)
    a = falsify(c, RunConfig(seed=4), max_examples=30, relax=[HIDDEN_WIDTH], shards=3)
    b = falsify(c, RunConfig(seed=4), max_examples=30, relax=[HIDDEN_WIDTH], shards=3)
    assert a.counterexample is not None and a.shards == 3 and a.shard is not None
    assert untimed(format_outcome(a)) == untimed(format_outcome(b))
    assert "3 independent hypothesis searches of 10 examples" in format_outcome(a)
    assert f"of shard {a.shard + 1}" in format_outcome(a)


def test_sharded_search_with_nothing_relaxed_counts_every_shard():
    out = falsify(get_claim("ngd.block_tridiagonal.alpha", None), RunConfig(), max_examples=12, shards=3)
    assert out.counterexample is None and out.draws == 12 and "no counterexample in 12 examples" in format_outcome(out)


def test_bad_shard_counts_are_refused():
    c = get_claim("ngd.block_tridiagonal.alpha", None)
    for bad in (0, 51, True, 2.0):
        with pytest.raises(ValueError, match="shards=.* is not allowed: expected an integer in 1 .. max_examples = 50"):
            falsify(c, RunConfig(), max_examples=50, shards=bad)
    code, _, err = run(["falsify", "ngd.block_tridiagonal.alpha", "--shards", "60"])
    assert code == 2 and "--shards 60 is not allowed with --max-examples 50" in err
    code, _, err = run(["falsify", "ngd.block_tridiagonal.alpha", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2 and "--scheduler needs --shards K" in err


def test_workers_2_prints_what_the_serial_shards_print(tmp_path):
    pytest.importorskip("distributed")
    argv = ["falsify", "ngd.kfac.alpha_definition", "--relax", "M_0 >= N", "--max-examples", "20", "--seed", "2"]
    code_d, out_d, err_d = run(argv + ["--workers", "2"])
    code_s, out_s, err_s = run(argv + ["--shards", "2"])
    assert code_d == code_s == 1, err_d + err_s
    assert untimed(out_d) == untimed(out_s)
    assert "2 independent hypothesis searches of 10 examples" in out_d


def test_counterexample_from_a_worker_keeps_typed_flags():
    pytest.importorskip("distributed")
    from proofs.distributed import Execution

    out = falsify(get_claim("ngd.kfac.alpha_definition", None), RunConfig(), max_examples=10, relax=[INPUT_WIDTH],
                  shards=2, execution=Execution(workers=2))
    ex = out.counterexample
    assert ex is not None and ex.relaxed_assumption is INPUT_WIDTH     # this process's catalogue object
    assert any(f.violates(KFAC_INPUTS) for f in ex.flags)


def test_database_is_replayed_before_the_shards(tmp_path):
    db = tmp_path / "db"
    argv = ["falsify", "ngd.block_diagonal", "--relax", "hidden width >= N", "--database", str(db),
            "--max-examples", "20", "--shards", "2"]
    code, first, _ = run(argv)
    assert code == 1 and any(db.iterdir())
    code, again, _ = run(argv)
    assert code == 1 and "[replayed from the database]" in again


@pytest.mark.parametrize("address, port", [("tcp://127.0.0.1:99999", 99999), ("tcp://127.0.0.1:0", 0)])
def test_scheduler_port_out_of_range_is_named(address, port):
    """A port outside 1..65535 used to wrap around modulo 2^16 and read "Connection refused"."""
    code, _, err = run(["verify", "sanity.pinv_product_rule", "--scheduler", address])
    assert code == 2 and f"port {port} is not allowed: expected a TCP port in 1 .. 65535" in err, err
