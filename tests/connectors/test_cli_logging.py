"""The CLI's log handler outlives an in-process run: a command run by ``CliRunner`` (or an
app embedding the CLI) has its stderr swapped back and closed afterwards, while threads it
started, a server's among them, may go on logging."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.cli import app as cli_app


def test_a_record_after_an_in_process_run_reaches_the_stderr_of_then(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = CliRunner().invoke(cli_app, ["analyze", str(tmp_path / "missing.wav")])
    assert result.exit_code != 0  # it ran far enough to set up logging, then refused the path
    capsys.readouterr()
    # a server thread the command left behind logs once the run's stderr is closed
    said = threading.Thread(target=logging.getLogger("callsense.test").warning, args=("later",))
    said.start()
    said.join()
    err = capsys.readouterr().err
    assert "Logging error" not in err and "WARNING callsense.test: later" in err
