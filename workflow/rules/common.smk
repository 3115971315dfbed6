# Helpers shared by the rules: result paths, per-rule resources and code versions.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

RESULTS = config["results"]
LOGS = "logs"
REPO = Path(workflow.basedir)

# The code versions come from this checkout's sources, whichever dlearn is installed (if any).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
import dlearn.codeversion as codeversion
from dlearn.options import cli_flags  # config block -> dlearn flags
from dlearn.options import stage_block  # the stage blocks less the workflow's own keys


def dlearn_command():
    """The command line that runs `dlearn`. The jobs' PATH need not hold the console script (a
    venv that was not activated), so the package runs with the interpreter that runs Snakemake,
    which SLURM jobs share (the executor starts `sys.executable -m snakemake` on the node). With
    `--software-deployment-method conda` the rule's environment (envs/dlearn.yaml) holds the
    dependencies and its `python` runs this checkout's package.
    """
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return f"PYTHONPATH={shlex.quote(str(REPO))} python -m dlearn"
    return f"{shlex.quote(sys.executable)} -m dlearn"


# Every rule's shell command calls `dlearn <stage>`: a bash function, defined ahead of each
# command, that runs dlearn_command() (not a param: a moved venv must not rerun every rule).
# Snakemake formats the prefix, so braces are doubled; bash's default strict mode is kept.
shell.prefix(
    'set -euo pipefail; dlearn() {{ %s "$@"; }}; '
    % dlearn_command().replace("{", "{{").replace("}", "}}")
)


def result(path):
    """A path under the configured results folder."""
    return f"{RESULTS}/{path}"


def rule_resources(name):
    """The resources block of rule `name` from the config (schema-validated, with defaults)."""
    return config["resources"][name]


def code_version(command):
    """Hash of every dlearn source file that `dlearn <command>` imports (dlearn/codeversion.py),
    passed as a param so that editing the stage's code reruns its rule and nothing else
    (Snakemake does not track the code of imported packages).
    """
    return codeversion.code_version(REPO, command)


def checked_inputs():
    """The config blocks `check_data` looks at, as JSON (its params: only they rerun it)."""
    blocks = {"body": config["body"], "dataset": {"kind": DATASET["kind"]}}
    for kind in ("densepose_coco", "densepose_predictions"):
        if DATASET["kind"] in (kind, "mixed"):
            blocks["dataset"][kind] = DATASET[kind]
            blocks["crops"] = {
                "allow_absolute_paths": config["crops"]["allow_absolute_paths"]
            }
    return json.dumps(blocks, sort_keys=True)


def keypoint_regressor_input(wildcards=None):
    """body.keypoint_regressor as a named input, {} for none (the model file's own keypoints)."""
    path = config["body"]["keypoint_regressor"]
    return {} if path == "none" else {"keypoint_regressor": path}


def body_model_files():
    return [result("body/model.pkl"), result("body/uv.mat"), result("body/preview.png")]


SPLITS = ["train", "test"]
DATASET = config["dataset"]


def annotations(split):
    """The DensePose-COCO JSON of a split: generated, built from predictions, or the user's."""
    if DATASET["kind"] == "synthetic":
        return result(f"data/densepose_{split}.json")
    if DATASET["kind"] == "densepose_predictions":
        return result(f"data/predicted_{split}.json")
    if DATASET["kind"] == "mixed":
        return result(f"data/mixed_{split}.json")
    return DATASET["densepose_coco"][f"{split}_json"]


def image_root(split):
    if DATASET["kind"] == "synthetic":
        return result("data")
    if DATASET["kind"] == "mixed":
        return mixed_image_root()
    return DATASET[DATASET["kind"]]["image_root"]


def mixed_image_root():
    """The folder holding both sources' image roots: the mixed file's names are relative to it."""
    # By file: the dlearn.densepose package imports numpy, which Snakemake's own env may lack.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "dlearn_mix", REPO / "dlearn" / "densepose" / "mix.py"
    )
    mix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mix)
    return mix.common_root(
        [
            DATASET[kind]["image_root"]
            for kind in ("densepose_coco", "densepose_predictions")
        ]
    )


def prediction_options():
    """The densepose_predictions block's sampling options (the paths are the rule's inputs)."""
    return stage_block(config, "dataset.densepose_predictions")


def annotation_naming():
    """The user's files' keypoint naming for the crops stage ({} for synthetic data: COCO's)."""
    if DATASET["kind"] in ("synthetic", "mixed"):  # mixed: written with COCO's names
        return {}
    return {"keypoint_names": DATASET["densepose_coco"].get("keypoint_names", "coco")}


def data_inputs(wildcards):
    """Annotation file, and for synthetic data the rendered images, of the rule's split."""
    inputs = {"annotations": annotations(wildcards.split)}
    if DATASET["kind"] == "synthetic":
        inputs["images"] = result("data/images")
    return inputs


def data_files():
    return expand(result("data/crops_{split}.zarr"), split=SPLITS) + expand(
        result("correspondences_{split}.zarr"), split=SPLITS
    )


REG = config["registration"]


def registration_options(round_k):
    """The register flags of round k: round 0 uses the stiff first-round weights (paper section 6)."""
    options = stage_block(config, "registration")
    if int(round_k) == 0:
        options["weights"] = {**REG["weights"], **REG["first_round"]["weights"]}
    return cli_flags({**options, "device": config["device"]})


def depths_file(split):
    """The keypoint depths that the registration and the regressor use (config depth_source)."""
    if config["depth_source"] == "ground_truth":
        return result(f"data/true_depths_{split}.zarr")
    return result(f"cgan/depths_{split}.zarr")


def registration_inputs(wildcards):
    """Round k's inputs: data and keypoint depths; for k >= 1 also round k-1's predictions and fit."""
    k = int(wildcards.round)
    inputs = {
        "correspondences": result("correspondences_train.zarr"),
        "crops": result("data/crops_train.zarr"),
        "model": result("body/model.pkl"),
        **keypoint_regressor_input(),
    }
    if REG["use_depth"]:
        inputs["depths"] = depths_file("train")
    if k >= 1:
        inputs["init"] = result(f"round_{k - 1}/predictions_train.zarr")
        if REG["keep_best"]:
            inputs["previous"] = result(f"round_{k - 1}/registration.zarr")
    return inputs


def optional_input_flags(*names):
    """A params function: `--name path` for each of the optional inputs ``names`` that the job
    has (e.g. round 0 has no previous round), `init_model` giving `--init-model`."""

    def flags(wildcards, input):
        return " ".join(
            f"--{name.replace('_', '-')} {shlex.quote(str(input[name]))}"
            for name in names
            if name in input.keys()
        )

    return flags


ROUNDS = list(range(config["iterations"]))
REGRESSOR = config["regressor"]


def registration_files():
    return expand(result("round_{round}/registration.zarr"), round=ROUNDS)


def regressor_inputs(wildcards):
    """Round k's training data; with warm_start, k >= 1 also round k-1's network."""
    k = int(wildcards.round)
    inputs = {
        "crops": result("data/crops_train.zarr"),
        "correspondences": result("correspondences_train.zarr"),
        "registration": result(f"round_{k}/registration.zarr"),
        "model": result("body/model.pkl"),
        **keypoint_regressor_input(),
    }
    if REGRESSOR["use_depth"]:
        inputs["depths"] = depths_file("train")
    if REGRESSOR["warm_start"] and k >= 1:
        inputs["init_model"] = result(f"round_{k - 1}/regressor/model.pt")
    return inputs


H36M = config["evaluation"]["h36m"]


def evaluation_files():
    """Per-round evaluations where 3D ground truth exists: synthetic data, Human3.6M frames."""
    files = []
    if DATASET["kind"] == "synthetic":
        files += expand(result("round_{round}/evaluation.csv"), round=ROUNDS)
    if H36M["npz"] != "none":
        files += expand(result("round_{round}/evaluation_h36m.csv"), round=ROUNDS)
    return files


def render_report_inputs(wildcards):
    return {
        "registrations": expand(
            result("round_{round}/registration.zarr"), round=ROUNDS
        ),
        "predictions": expand(
            result("round_{round}/predictions_train.zarr"), round=ROUNDS
        ),
        "test_predictions": expand(
            result("round_{round}/predictions_test.zarr"), round=ROUNDS
        ),
        "regressors": expand(result("round_{round}/regressor/model.pt"), round=ROUNDS),
        "crops": result("data/crops_train.zarr"),
        "model": result("body/model.pkl"),
        "uv": result("body/uv.mat"),
    }


def report_evaluation_flags(wildcards, input):
    files = " ".join(shlex.quote(str(f)) for f in input.evaluations)
    return f"--evaluations {files}" if files else ""


def report_files():
    return [
        result("evaluation/summary.csv"),
        result("report/mpjpe_history.png"),
        result("report/loss_curves.png"),
    ]


def cgan_files():
    files = expand(result("cgan/depths_{split}.zarr"), split=SPLITS)
    if DATASET["kind"] == "synthetic":
        files.append(result("cgan/evaluation.json"))
    return files


def prediction_inputs(wildcards):
    """The keypoint file of the split, and its apply_net dump when the block names dumps."""
    block = DATASET["densepose_predictions"]
    inputs = {"keypoints": block[f"{wildcards.split}_keypoints"]}
    if f"{wildcards.split}_dump" in block:
        inputs["dump"] = block[f"{wildcards.split}_dump"]
    return inputs


def prediction_source_flags(wildcards, input):
    """--dump <the split's dump> or --iuv-dir <the PNG folder>."""
    if "dump" in input.keys():
        return f"--dump {shlex.quote(str(input.dump))}"
    return f"--iuv-dir {shlex.quote(DATASET['densepose_predictions']['iuv_dir'])}"
