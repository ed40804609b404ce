"""Benchmarks: each prints ratios against a native baseline measured in the same run (see bench/README.md)."""
import sys
from pathlib import Path

# The integration harness (tests/harness.py: worker and beat processes, the host's JWT signer) is shared
# with the benches. Appended, not prepended: tests/ holds sandbox/ and strongroom/ test folders.
_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
