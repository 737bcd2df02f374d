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
