"""The README's Python example runs and prints what the README says it prints."""
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_matches_its_comments():
    block = re.search(r"```python\n(.*?)```", README.read_text(), flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 -- our own README
    # the comments in the block state these values; exact identities at float64 precision
    assert np.abs(namespace["T"] - 41 * np.eye(20)).max() < 1e-9
    loss = namespace["hist"].train_loss
    assert namespace["hist"].learning_rate == 1 / 3
    # README: [0.164, 2.2e-4, 9.2e-10] (seeded, so reproducible to the printed digits)
    np.testing.assert_allclose(loss, [0.164, 2.2e-4, 9.2e-10], rtol=0.03)


def test_readme_timings_table_quotes_what_the_help_says():
    """The README's measured timings and --help quote the same rounded values (proofs.cli.TIMINGS)."""
    import re
    from pathlib import Path

    from proofs.cli import TIMINGS

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {"verify": r"`ngd-verify verify` \(quick", "verify_full": r"`ngd-verify verify --full`",
            "report": r"`ngd-verify report --out DIR` \(quick\)", "tests": r"`python -m pytest`"}
    for key, label in rows.items():
        m = re.search(label + r"[^|]*\|\s*(\d+) s\s*\|\s*([^|]+?)\s*\|", text)
        assert m, f"README Timings table has no row for {key}"
        assert m.group(2) == TIMINGS[key], (key, m.group(2), TIMINGS[key])
        seconds, quoted = int(m.group(1)), int(re.search(r"\d+", TIMINGS[key]).group())
        assert 0.5 * quoted * 60 <= seconds <= 1.5 * quoted * 60, (key, seconds, TIMINGS[key])
    assert "TIMING" not in text.replace("TIMINGS", "")
