"""Print the hostile-input table: every run of tests/test_bad_input.py with its cost.

The test module runs the real ``edge-asc`` on each file of its corpus (headers claiming 1 Hz
or 1000 channels, files cut short, a FIFO, ``/dev/zero``, an hour of audio, signals while
writing ...) under a 1.5 GB address-space ceiling, and records exit code, peak resident
memory and time. This script runs it and prints that table as Markdown, ready for a report:

    python benchmarks/bad_input_table.py [extra pytest arguments, e.g. -k "not hour"]

It takes about 3-4 minutes on the 2-core development machine (the one-hour file alone about
half a minute).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    """Run the module with ``argv`` passed to pytest; print the table; return pytest's code."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "table.md"
        env = dict(os.environ, EDGE_ASC_BAD_INPUT_TABLE=str(table))
        command = [sys.executable, "-m", "pytest", "-q", "tests/test_bad_input.py", *argv]
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False)
        if table.exists():
            print()
            print(table.read_text(), end="")
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
