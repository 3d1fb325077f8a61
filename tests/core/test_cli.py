"""CLI dispatch: python -m pipelines.<verb> <module> goes to the module's own command line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.core import cli
from pipelines.core.modules import discover, get_module
from tests.conftest import ROOT


def test_every_module_with_a_cli_gets_a_sub_command():
    parser, clis = cli.build_parser("train")
    assert set(clis) == {name for name, m in discover().items() if m.cli}
    assert "sensor" in clis
    args = parser.parse_args(["sensor", "--repeats", "1", "--models", "xgboost"])
    assert (args.module, args.repeats, args.models) == ("sensor", 1, ["xgboost"])


def test_unknown_module_and_verb_are_clear_errors(capsys):
    with pytest.raises(SystemExit):
        cli.main("train", ["nosuchmodule"])
    assert "invalid choice: 'nosuchmodule'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="verb"):
        cli.main("deploy", ["sensor"])
    with pytest.raises(KeyError, match="known: .*sensor"):  # sorted: inspection comes first
        get_module("nosuchmodule")


def test_recalibrate_offers_only_the_modules_that_can(capsys):
    """A module without a recalibrate step is refused, never sent to its training."""
    _, clis = cli.build_parser("recalibrate")
    assert set(clis) == {"sensor"}
    with pytest.raises(SystemExit):
        cli.main("recalibrate", ["timeseries"])
    assert "invalid choice: 'timeseries'" in capsys.readouterr().err


def test_help_lists_the_modules():
    out = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sensor" in out.stdout


def test_recalibrate_verb_takes_a_csv_and_a_target_rate(tmp_path, capsys):
    parser, _ = cli.build_parser("recalibrate")
    args = parser.parse_args(["sensor", "--data", "recent.csv", "--target-far", "0.02"])
    assert (str(args.data), args.target_far, args.model) == ("recent.csv", 0.02, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["sensor"])  # --data is required
    assert "--data" in capsys.readouterr().err
