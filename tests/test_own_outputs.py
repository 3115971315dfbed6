"""dlearn deletes or replaces only what it recognises as its own (issue 18, item 2).

A user who points an output flag at their own data gets a one-line error naming the path, and
keeps the data: a folder as checkpoint folder, an image root as crops store, their SMPL files as
the body-model outputs, the working directory. dlearn's own outputs are still replaced on rerun,
its checkpoints still resume, and what killed jobs left next to an output is cleaned.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dlearn.checkpoint import atomic_save
from dlearn.cli import OUTPUTS, build_parser, main
from dlearn.data.store import StoreWriter, open_store, write_store
from dlearn.errors import InputError
from dlearn.outputs import CHECKPOINT_MARKER, OutputError, claim_checkpoint_dir, release_checkpoint_dir
from dlearn.registration import stage
from dlearn.registration.stage import RegistrationOptions, register
from dlearn.regressor.train import RegressorOptions, train_regressor
from helpers import killed_on_call

# A PID no process can have (Linux's pid_max is at most 2^22): a killed job's leftover.
DEAD_PID = 2**22 + 7
TINY_FIT = RegistrationOptions(steps=2, patience=1, batch_size=4, chunk_size=3, device="cpu")


def _user_folder(path: Path) -> Path:
    """A folder of the user's, with a file and a subfolder that must survive."""
    (path / "notes").mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / "notes" / "todo.txt").write_text("keep")
    return path


def _intact(path: Path) -> bool:
    return (path / "thesis.tex").read_text() == "years of work" and (path / "notes" / "todo.txt").is_file()


def _register_args(data: dict, out: Path, checkpoint: Path) -> list[str]:
    return [
        "register", "--correspondences", str(data["corr"]), "--crops", str(data["crops"]),
        "--body-model", str(data["model"]), "--out", str(out), "--checkpoint-dir", str(checkpoint),
        "--steps", "2", "--device", "cpu",
    ]  # fmt: skip


def _regress_args(data: dict, out: Path, checkpoint: Path) -> list[str]:
    return [
        "regress", "--crops", str(data["crops"]), "--correspondences", str(data["corr"]),
        "--registration", str(data["truth"]), "--body-model", str(data["model"]), "--out", str(out),
        "--checkpoint-dir", str(checkpoint), "--epochs", "1", "--device", "cpu",
    ]  # fmt: skip


# --- checkpoint folders ------------------------------------------------------------------------


def test_register_refuses_a_user_folder_as_checkpoint_folder(
    exact_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = _user_folder(tmp_path / "mine")
    assert main(_register_args(exact_data, tmp_path / "reg.zarr", user)) == 1
    assert _intact(user) and not (tmp_path / "reg.zarr").exists()
    assert str(user) in caplog.text and CHECKPOINT_MARKER in caplog.text
    # The stage function itself (no CLI) refuses too.
    with pytest.raises(OutputError, match="not a dlearn checkpoint folder"):
        register(exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr", TINY_FIT,
                 checkpoint_dir=user)  # fmt: skip
    assert _intact(user)


def test_regress_refuses_a_user_folder_as_checkpoint_folder(
    exact_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = _user_folder(tmp_path / "mine")
    assert main(_regress_args(exact_data, tmp_path / "model.pt", user)) == 1
    assert _intact(user) and not (tmp_path / "model.pt").exists()
    assert str(user) in caplog.text
    options = RegressorOptions(backbone="resnet18", head_hidden=8, epochs=1, batch_size=3, device="cpu")
    with pytest.raises(OutputError, match="not a dlearn checkpoint folder"):
        train_regressor(exact_data["crops"], exact_data["corr"], exact_data["truth"], exact_data["model"],
                        tmp_path / "model.pt", user, options, depths=exact_data["depths"])  # fmt: skip
    assert _intact(user)


def test_the_working_directory_is_not_a_checkpoint_folder(
    exact_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _user_folder(tmp_path / "home")
    monkeypatch.chdir(tmp_path / "home")
    for args in (_register_args(exact_data, Path("reg.zarr"), Path(".")),
                 _regress_args(exact_data, Path("model.pt"), Path("."))):  # fmt: skip
        assert main(args) == 1
        assert _intact(Path("."))
    assert "--checkpoint-dir" in caplog.text or CHECKPOINT_MARKER in caplog.text


def test_checkpoint_folders_dlearn_made_go_and_adopted_empty_ones_stay(tmp_path: Path) -> None:
    made = claim_checkpoint_dir(tmp_path / "made")
    (made / "chunk_00000.npz").write_bytes(b"x")
    release_checkpoint_dir(made)
    assert not made.exists()
    (tmp_path / "empty").mkdir()
    adopted = claim_checkpoint_dir(tmp_path / "empty")
    (adopted / "chunk_00000.npz").write_bytes(b"x")
    assert claim_checkpoint_dir(adopted) == adopted  # marked: dlearn's own on the next run
    release_checkpoint_dir(adopted)
    assert adopted.is_dir() and not any(adopted.iterdir())
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        claim_checkpoint_dir(tmp_path / "mine.txt")
    assert (tmp_path / "mine.txt").read_text() == "x"


def test_a_killed_registration_still_resumes_from_its_marked_checkpoint(exact_data: dict, tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    with killed_on_call(stage, "_fit_chunk", 2):
        register(exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr", TINY_FIT,
                 checkpoint_dir=checkpoint)  # fmt: skip
    assert (checkpoint / CHECKPOINT_MARKER).is_file() and len(list(checkpoint.glob("chunk_*.npz"))) == 1
    # A half-written chunk of the killed job is cleaned; the finished one is resumed.
    (checkpoint / f".chunk_00001.npz.tmp-{DEAD_PID}").write_bytes(b"half")
    summary = register(exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr",
                       TINY_FIT, checkpoint_dir=checkpoint)  # fmt: skip
    assert summary["resumed_chunks"] == 1 and not checkpoint.exists()
    # Other options: the marked folder's old chunks are discarded, not resumed.
    claim_checkpoint_dir(checkpoint)
    (checkpoint / "fingerprint.txt").write_text("another run")
    np.savez(checkpoint / "chunk_00000.npz", junk=np.zeros(1))
    summary = register(exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr",
                       TINY_FIT, checkpoint_dir=checkpoint)  # fmt: skip
    assert summary["resumed_chunks"] == 0 and not checkpoint.exists()


# --- stores --------------------------------------------------------------------------------------


def test_crops_into_its_own_image_root_is_refused(
    exact_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "coco"
    shutil.copytree(exact_data["root"] / "images", root / "images")
    annotations = shutil.copy(exact_data["root"] / "densepose_train.json", tmp_path / "densepose_train.json")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code = main(["crops", "--annotations", str(annotations), "--image-root", str(root),
                 "--out", str(root), "--image-size", "16", "--workers", "1"])  # fmt: skip
    assert code == 1 and sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert f"--out {root} is the input --image-root" in caplog.text
    # A store inside the image root (the workflow's synthetic layout) is fine.
    assert main(["crops", "--annotations", str(annotations), "--image-root", str(root),
                 "--out", str(root / "crops.zarr"), "--image-size", "16", "--workers", "1"]) == 0  # fmt: skip
    open_store(root / "crops.zarr", stage="crops")


def test_the_store_writer_replaces_only_dlearn_stores(tmp_path: Path) -> None:
    ids = ["1_1", "1_2"]
    user = _user_folder(tmp_path / "mine.zarr")
    with pytest.raises(OutputError, match="not a dlearn store"):
        write_store(user, {"x": np.zeros(2)}, stage="crops", sample_id=ids)
    assert _intact(user)
    (tmp_path / "file.zarr").write_text("mine")
    with pytest.raises(InputError, match="file.zarr: a file that is not a dlearn store"):
        write_store(tmp_path / "file.zarr", {"x": np.zeros(2)}, stage="crops", sample_id=ids)
    assert (tmp_path / "file.zarr").read_text() == "mine"
    # dlearn's own store is replaced on rerun.
    write_store(tmp_path / "ours.zarr", {"x": np.zeros(2)}, stage="crops", sample_id=ids)
    write_store(tmp_path / "ours.zarr", {"x": np.ones(2)}, stage="crops", sample_id=ids)
    assert open_store(tmp_path / "ours.zarr", stage="crops")["x"][...].tolist() == [1.0, 1.0]


def test_stale_temporary_siblings_of_killed_jobs_are_cleaned(tmp_path: Path) -> None:
    ids = ["1_1"]
    out = tmp_path / "out.zarr"
    stale = [tmp_path / f".out.zarr.tmp-{DEAD_PID}", tmp_path / f".out.zarr.old-{DEAD_PID}"]
    for path in stale:
        (path / "c").mkdir(parents=True)
    others = [tmp_path / ".other.zarr.tmp-123", tmp_path / ".out.zarr.tmp-notapid", tmp_path / "out.zarr.tmp-5"]
    for path in others:
        path.write_text("not ours to clean")
    write_store(out, {"x": np.zeros(1)}, stage="crops", sample_id=ids)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in others)
    model = tmp_path / "model.pt"
    (tmp_path / f".model.pt.tmp-{DEAD_PID}").write_bytes(b"half a checkpoint")
    atomic_save({"format": "dlearn-regressor"}, model)
    assert not (tmp_path / f".model.pt.tmp-{DEAD_PID}").exists()
    # The current process's own sibling is never taken for a stale one.
    own = tmp_path / f".out.zarr.tmp-{os.getpid()}"
    with StoreWriter(out, stage="crops", sample_id=ids) as writer:
        assert own.is_dir()
        writer.write("x", np.ones(1))
    assert open_store(out)["x"][...].tolist() == [1.0]


# --- files -------------------------------------------------------------------------------------


def test_model_files_replace_only_dlearn_files_of_their_kind(tmp_path: Path) -> None:
    user = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, user)
    with pytest.raises(OutputError, match="weights.pt: format tag None"):
        atomic_save({"format": "dlearn-regressor"}, user)
    assert "conv1.weight" in torch.load(user, weights_only=True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt: not a torch file"):
        atomic_save({"format": "dlearn-regressor"}, tmp_path / "notes.txt")
    folder = _user_folder(tmp_path / "folder.pt")
    with pytest.raises(OutputError, match="is a folder"):
        atomic_save({"format": "dlearn-regressor"}, folder)
    assert _intact(folder)
    ours = tmp_path / "model.pt"
    atomic_save({"format": "dlearn-regressor", "epoch": 1}, ours)
    atomic_save({"format": "dlearn-regressor", "epoch": 2}, ours)
    assert torch.load(ours, weights_only=True)["epoch"] == 2


def test_body_model_outputs_equal_to_its_inputs_are_refused(
    standin_files: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, uv = tmp_path / "SMPL_NEUTRAL.pkl", tmp_path / "UV_Processed.mat"
    shutil.copy(standin_files[0], model)
    shutil.copy(standin_files[1], uv)
    data = model.read_bytes(), uv.read_bytes()
    code = main(["body-model", "--model", str(model), "--uv", str(uv), "--out-model", str(model),
                 "--out-uv", str(uv), "--out-preview", str(tmp_path / "preview.png")])  # fmt: skip
    assert code == 1 and "is the input --model" in caplog.text
    assert not model.is_symlink() and not uv.is_symlink() and (model.read_bytes(), uv.read_bytes()) == data
    # Through the stage function too, where the link would point at itself.
    from dlearn.body.prepare import prepare_body_files

    with pytest.raises(OutputError, match="itself"):
        prepare_body_files(str(model), str(uv), model, uv, tmp_path / "preview.png")
    assert not model.is_symlink() and model.read_bytes() == data[0]
    # Linking to the inputs and rerunning over those links is the normal case.
    out = tmp_path / "results"
    for _ in range(2):
        assert main(["body-model", "--model", str(model), "--uv", str(uv), "--out-model", str(out / "model.pkl"),
                     "--out-uv", str(out / "uv.mat"), "--out-preview", str(out / "preview.png")]) == 0  # fmt: skip
    assert (out / "model.pkl").resolve() == model.resolve() and model.read_bytes() == data[0]


def test_synth_does_not_empty_a_user_image_folder(standin_files: tuple[Path, Path], tmp_path: Path) -> None:
    photos = tmp_path / "data" / "images" / "train"
    photos.mkdir(parents=True)
    (photos / "holiday.jpg").write_bytes(b"jpeg")
    code = main(["synth", "--body-model", str(standin_files[0]), "--uv", str(standin_files[1]),
                 "--out", str(tmp_path / "data"), "--num-train", "1", "--num-test", "1"])  # fmt: skip
    assert code == 1 and (photos / "holiday.jpg").read_bytes() == b"jpeg"


def test_an_output_may_not_replace_another(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    same = tmp_path / "evaluation.json"
    code = main(["evaluate-h36m", "--round", "0", "--predictions", str(tmp_path / "p.zarr"), "--npz",
                 str(tmp_path / "h.npz"), "--joint-regressor", str(tmp_path / "j.npy"), "--body-model",
                 str(tmp_path / "m.pkl"), "--out-json", str(same), "--out-csv", str(same)])  # fmt: skip
    assert code == 1 and "--out-json" in caplog.text and "--out-csv" in caplog.text


def test_every_stage_declares_outputs_that_exist_as_flags() -> None:
    parser = build_parser()
    stages = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(OUTPUTS) == set(stages)
    for name, sub in stages.items():
        dests = {action.dest for action in sub._actions}
        assert set(OUTPUTS[name]) <= dests, name
        # Every flag whose name says it is written is declared as an output.
        written = {d for d in dests if d.startswith("out") or d == "checkpoint_dir"}
        assert written <= set(OUTPUTS[name]), name


def test_make_body_keeps_a_users_real_model_files(tmp_path: Path, prebuilt_standin: object) -> None:
    import pickle

    from dlearn.body.standin import write_standin

    user_model = tmp_path / "SMPL_NEUTRAL.pkl"  # a real SMPL file as its authors pickled it
    with user_model.open("wb") as fh:
        pickle.dump({"v_template": np.zeros((3, 3)), "f": np.zeros((1, 3), np.uint32)}, fh, protocol=2)
    before = user_model.read_bytes()
    with pytest.raises(OutputError, match="SMPL_NEUTRAL.pkl: exists and was not written by dlearn"):
        write_standin(tmp_path)
    assert user_model.read_bytes() == before
    user_model.unlink()
    (tmp_path / "UV_Processed.mat").write_bytes(b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: 2017")
    with pytest.raises(OutputError, match="UV_Processed.mat: exists and was not written by dlearn"):
        write_standin(tmp_path)
    (tmp_path / "UV_Processed.mat").unlink()
    model, uv = write_standin(tmp_path)
    written = model.read_bytes(), uv.read_bytes()
    assert write_standin(tmp_path) == (model, uv)  # its own files are replaced, with the same bytes
    assert (model.read_bytes(), uv.read_bytes()) == written
