# Helpers shared by the rules: result paths, per-rule resources and code versions.
import hashlib
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
