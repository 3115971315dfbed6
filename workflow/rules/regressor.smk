rule regress:
    """The ResNet regressor (paper section 5) trained on round k's registrations."""
    input:
        unpack(regressor_inputs),
    output:
        model=result("round_{round}/regressor/model.pt"),
        curve=report(
            result("round_{round}/regressor/training_curve.png"),
            caption="../report/regressor_curve.rst",
            category="Regressor",
            subcategory="round {round}",
        ),
    log:
        f"{LOGS}/regress_round{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/regress_round{{round}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("regress")["threads"]
    resources:
        mem_mb=rule_resources("regress")["mem_mb"],
        runtime=rule_resources("regress")["runtime"],
        gpu=rule_resources("regress")["gpu"],
    params:
        options=cli_flags(
            {
                **stage_block(config, "regressor"),
                "device": config["device"],
            }
        ),
        optional=optional_input_flags("depths", "init_model", "keypoint_regressor"),
        # Per-epoch checkpoints live outside the declared output, so a killed job resumes.
        checkpoint=lambda wildcards: result(
            f"round_{wildcards.round}/regressor/.checkpoints"
        ),
        code=code_version("regress"),
    shell:
        "OMP_NUM_THREADS={threads} dlearn regress --crops {input.crops:q} "
        "--correspondences {input.correspondences:q} --registration {input.registration:q} "
        "--body-model {input.model:q} --out {output.model:q} --curve {output.curve:q} "
        "--checkpoint-dir {params.checkpoint:q} {params.optional} {params.options} > {log:q} 2>&1"


rule predict:
    """Round k's regressor applied to every crop of a split (train: round k+1's initialisation)."""
    input:
        unpack(keypoint_regressor_input),
        regressor=result("round_{round}/regressor/model.pt"),
        crops=result("data/crops_{split}.zarr"),
        model=result("body/model.pkl"),
    output:
        directory(result("round_{round}/predictions_{split}.zarr")),
    log:
        f"{LOGS}/predict_round{{round}}_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/predict_round{{round}}_{{split}}.tsv"
    wildcard_constraints:
        split="train|test|h36m",
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("predict")["threads"]
    resources:
        mem_mb=rule_resources("predict")["mem_mb"],
        runtime=rule_resources("predict")["runtime"],
        gpu=rule_resources("predict")["gpu"],
    params:
        options=cli_flags({**config["predict"], "device": config["device"]}),
        keypoints=optional_input_flags("keypoint_regressor"),
        code=code_version("predict"),
    shell:
        "OMP_NUM_THREADS={threads} dlearn predict --model {input.regressor:q} "
        "--crops {input.crops:q} --body-model {input.model:q} {params.keypoints} "
        "--out {output:q} {params.options} > {log:q} 2>&1"
