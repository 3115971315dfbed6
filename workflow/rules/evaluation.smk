rule evaluate:
    """3D joint errors of round k's registrations, predictions and the cGAN (synthetic ground truth)."""
    input:
        unpack(keypoint_regressor_input),
        model=result("body/model.pkl"),
        registration=result("round_{round}/registration.zarr"),
        predictions=expand(
            result("round_{{round}}/predictions_{split}.zarr"), split=SPLITS
        ),
        crops=expand(result("data/crops_{split}.zarr"), split=SPLITS),
        gt=expand(result("data/gt_{split}.zarr"), split=SPLITS),
        cgan=result("cgan/depths_test.zarr"),
    output:
        json=result("round_{round}/evaluation.json"),
        csv=result("round_{round}/evaluation.csv"),
    log:
        f"{LOGS}/evaluate_round{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate_round{{round}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("evaluate")["mem_mb"],
        runtime=rule_resources("evaluate")["runtime"],
    params:
        # evaluation.h36m is evaluate_h36m's (a workflow key of the block).
        options=cli_flags(stage_block(config, "evaluation")),
        keypoints=optional_input_flags("keypoint_regressor"),
        code=code_version("evaluate"),
    shell:
        "dlearn evaluate --round {wildcards.round} --body-model {input.model:q} {params.keypoints} "
        "--registration {input.registration:q} --crops-train {input.crops[0]:q} "
        "--crops-test {input.crops[1]:q} --gt-train {input.gt[0]:q} --gt-test {input.gt[1]:q} "
        "--predictions-train {input.predictions[0]:q} "
        "--predictions-test {input.predictions[1]:q} --cgan-depths {input.cgan:q} "
        "--out-json {output.json:q} --out-csv {output.csv:q} {params.options} > {log:q} 2>&1"


rule h36m_crops:
    """Crops of the Human3.6M evaluation frames (evaluation.h36m.npz)."""
    input:
        npz=H36M["npz"],
    output:
        directory(result("data/crops_h36m.zarr")),
    log:
        f"{LOGS}/h36m_crops.log",
    benchmark:
        f"{LOGS}/benchmarks/h36m_crops.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("crops")["mem_mb"],
        runtime=rule_resources("crops")["runtime"],
    params:
        image_root=H36M["image_root"],
        size=config["crops"]["image_size"],
        # Framed like the training crops (same margin around the person's box).
        box_scale=config["crops"]["box_scale"],
        code=code_version("h36m-crops"),
    shell:
        "dlearn h36m-crops --npz {input.npz:q} --image-root {params.image_root:q} "
        "--out {output:q} --image-size {params.size} --box-scale {params.box_scale} > {log:q} 2>&1"


rule evaluate_h36m:
    """Round k's ConvNet on Human3.6M, Protocol #1 (14 LSP joints from J_regressor_h36m)."""
    input:
        predictions=result("round_{round}/predictions_h36m.zarr"),
        npz=H36M["npz"],
        regressor=H36M["joint_regressor"],
        model=result("body/model.pkl"),
        # The canonical average skeleton's frames (training subjects), when given.
        train=[] if H36M["train_npz"] == "none" else [H36M["train_npz"]],
    output:
        json=result("round_{round}/evaluation_h36m.json"),
        csv=result("round_{round}/evaluation_h36m.csv"),
    log:
        f"{LOGS}/evaluate_h36m_round{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate_h36m_round{{round}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("evaluate")["mem_mb"],
        runtime=rule_resources("evaluate")["runtime"],
    params:
        bone_scaling=config["evaluation"]["bone_scaling"],
        max_skipped=H36M["max_skipped"],
        train=lambda wildcards, input: (
            f"--train-npz {shlex.quote(input.train[0])}" if input.train else ""
        ),
        code=code_version("evaluate-h36m"),
    shell:
        "dlearn evaluate-h36m --round {wildcards.round} --predictions {input.predictions:q} "
        "--npz {input.npz:q} --joint-regressor {input.regressor:q} --body-model {input.model:q} "
        "--bone-scaling {params.bone_scaling} --max-skipped {params.max_skipped} {params.train} "
        "--out-json {output.json:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule report:
    """Every round in one place: summary table and MPJPE history (paper Fig. 2); no torch."""
    input:
        evaluations=evaluation_files(),
    output:
        summary=result("evaluation/summary.csv"),
        history=report(
            result("report/mpjpe_history.png"),
            caption="../report/mpjpe_history.rst",
            category="Evaluation",
        ),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{LOGS}/benchmarks/report.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    params:
        evaluation=report_evaluation_flags,
        code=code_version("report"),
    shell:
        "dlearn report {params.evaluation} --summary {output.summary:q} "
        "--history {output.history:q} > {log:q} 2>&1"


rule render_report:
    """Every round's overlays, test meshes (.obj) and the regressors' loss curves."""
    input:
        unpack(render_report_inputs),
    output:
        losses=report(
            result("report/loss_curves.png"),
            caption="../report/loss_curves.rst",
            category="Evaluation",
        ),
        overlays=[
            report(
                result(f"report/overlay_round_{k}.png"),
                caption="../report/round_overlay.rst",
                category="Overlays",
            )
            for k in ROUNDS
        ],
        meshes=directory(result("report/meshes")),
    log:
        f"{LOGS}/render_report.log",
    benchmark:
        f"{LOGS}/benchmarks/render_report.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("report")["mem_mb"],
        runtime=rule_resources("report")["runtime"],
    params:
        overlay_samples=config["report"]["overlay_samples"],
        meshes_per_round=config["report"]["meshes_per_round"],
        code=code_version("render-report"),
    shell:
        "dlearn render-report --registrations {input.registrations:q} "
        "--predictions {input.predictions:q} --test-predictions {input.test_predictions:q} "
        "--regressors {input.regressors:q} --crops {input.crops:q} --body-model {input.model:q} "
        "--uv {input.uv:q} --overlays {output.overlays:q} --losses {output.losses:q} "
        "--meshes {output.meshes:q} --overlay-samples {params.overlay_samples} "
        "--meshes-per-round {params.meshes_per_round} > {log:q} 2>&1"
