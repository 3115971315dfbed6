"""The `dlearn` command line: every stage documents itself, options map onto dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys

import pytest

from dlearn.cli import build_parser, main
from dlearn.options import add_options, cli_flags, options_from_args
from dlearn.regressor.options import RegressorOptions


def _stage_parsers() -> argparse._SubParsersAction:
    (stages,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return stages


#: Every subcommand of `dlearn`, from the parser itself: a new stage is covered without listing it.
STAGES = list(_stage_parsers().choices)


def test_the_stages_are_collected_from_the_parser() -> None:
    assert len(STAGES) == len(set(STAGES)) >= 19
    assert {"make-body", "synth", "cgan-train", "register", "regress", "report", "evaluate-h36m"} <= set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([stage, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dlearn " + stage)
    assert "options:" in out


def test_every_stage_has_a_summary_in_the_stage_list() -> None:
    summaries = {action.dest: action.help for action in _stage_parsers()._choices_actions}
    assert set(summaries) == set(STAGES)
    assert all(summaries.values()), [stage for stage, text in summaries.items() if not text]


def test_the_module_entry_point_lists_every_stage() -> None:
    proc = subprocess.run([sys.executable, "-m", "dlearn", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for stage in STAGES:
        assert stage in proc.stdout


@dataclasses.dataclass(frozen=True)
class _Inner:
    """Inner.

    Attributes:
        jitter_px: pixel jitter.
    """

    jitter_px: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Outer:
    """Outer.

    Attributes:
        image_size: side in pixels.
        flip: mirror samples.
        noise: nested options.
    """

    image_size: int = 64
    flip: bool = True
    noise: _Inner = _Inner()


def test_options_round_trip_through_flags() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, _Outer)
    assert options_from_args(parser.parse_args([]), _Outer) == _Outer()
    args = parser.parse_args(["--image-size", "32", "--no-flip", "--noise-jitter-px", "1.5"])
    assert options_from_args(args, _Outer) == _Outer(image_size=32, flip=False, noise=_Inner(1.5))
    assert "side in pixels. (default: 64)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--image-size", "big"])


def test_stored_options_give_back_the_flags_that_made_them() -> None:
    # A model.pt stores asdict(options); experiments/retrain_regressor.sh rebuilds its flags so.
    parser = argparse.ArgumentParser()
    add_options(parser, _Outer)
    options = _Outer(image_size=32, flip=False, noise=_Inner(1.5))
    flags = cli_flags(dataclasses.asdict(options))
    assert flags == "--image-size 32 --no-flip --noise-jitter-px 1.5"
    assert options_from_args(parser.parse_args(shlex.split(flags)), _Outer) == options
    # The regressor's own options (nested loss weights and augmentation, strings, floats).
    parser = argparse.ArgumentParser()
    add_options(parser, RegressorOptions)
    stored = RegressorOptions(epochs=3, lr=7e-4, backbone="tiny16", pretrained="/data/my weights.pth")
    assert options_from_args(parser.parse_args(shlex.split(cli_flags(dataclasses.asdict(stored)))), RegressorOptions) == stored


def test_make_body_writes_model_charts_and_preview(tmp_path, prebuilt_standin) -> None:  # noqa: ANN001
    assert main(["make-body", "--out", str(tmp_path)]) == 0
    for name in ("SMPL_NEUTRAL.pkl", "UV_Processed.mat", "preview.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_input_errors_exit_non_zero_with_the_message(tmp_path, caplog) -> None:  # noqa: ANN001
    missing = tmp_path / "nope.pkl"
    code = main(
        ["body-model", "--model", str(missing), "--uv", str(tmp_path / "uv.mat"),
         "--out-model", str(tmp_path / "m.pkl"), "--out-uv", str(tmp_path / "u.mat"),
         "--out-preview", str(tmp_path / "p.png")]
    )  # fmt: skip
    assert code == 1
    assert f"{missing}: body model file does not exist" in caplog.text
    assert not (tmp_path / "m.pkl").exists()
