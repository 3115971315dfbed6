# Helpers shared by the rules: result paths, per-rule resources and code versions.
import hashlib
import os
import shlex
from pathlib import Path

RESULTS = config["results"]
LOGS = "logs"
REPO = Path(workflow.basedir)


def result(path):
    """A path under the configured results folder."""
    return f"{RESULTS}/{path}"


def rule_resources(name):
    """The resources block of rule `name` from the config (schema-validated, with defaults)."""
    return config["resources"][name]


def code_version(*paths):
    """Hash of the dlearn sources a stage runs, passed as a param so that editing the
    stage's code reruns its rule (Snakemake does not track code of imported packages).
    """
    digest = hashlib.sha256()
    for rel in paths:
        root = REPO / rel
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for file in files:
            digest.update(str(file.relative_to(REPO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def body_model_files():
    return [result("body/model.pkl"), result("body/uv.mat"), result("body/preview.png")]


def cli_flags(options, prefix=""):
    """Config block -> `dlearn` flags: key `noise: {dense_jitter_px: 1}` -> `--noise-dense-jitter-px 1`
    (the flags are generated from the stage's options dataclass with the same names)."""
    flags = []
    for key, value in options.items():
        name = f"{prefix}{key}".replace("_", "-")
        if isinstance(value, dict):
            flags.append(cli_flags(value, prefix=f"{prefix}{key}_"))
        elif isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags.append(f"--{name} {shlex.quote(str(value))}")
    return " ".join(flag for flag in flags if flag)


SPLITS = ["train", "test"]
DATASET = config["dataset"]


def annotations(split):
    """The DensePose-COCO JSON of a split: generated, or the user's."""
    if DATASET["kind"] == "synthetic":
        return result(f"data/densepose_{split}.json")
    return DATASET["densepose_coco"][f"{split}_json"]


def image_root(split):
    if DATASET["kind"] == "synthetic":
        return result("data")
    return DATASET["densepose_coco"]["image_root"]


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
