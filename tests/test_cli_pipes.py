"""`ec2gw actions | head` (issue 18): a reader that goes away ends the command quietly."""

from __future__ import annotations

import subprocess
import sys


def test_actions_into_a_closed_pipe_has_no_traceback() -> None:
    # The reader is gone before the table is written (as `head` is, once it has its lines
    # and the table is longer than the pipe's buffer).
    process = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.cli", "actions"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141  # as a shell reports a command ended by SIGPIPE
    assert stderr == ""


def test_actions_into_head() -> None:
    command = f"{sys.executable} -m ec2gw.cli actions | head -n 1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("| EC2 action |") and done.stderr == ""
