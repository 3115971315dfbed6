rule cgan_train:
    """Kudo et al.'s cGAN: keypoint depths learnt from the train split's 2D keypoints only."""
    input:
        result("data/crops_train.zarr"),
    output:
        model=result("cgan/model.pt"),
        curve=report(
            result("cgan/training_curve.png"),
            caption="../report/cgan_curve.rst",
            category="cGAN",
        ),
    log:
        f"{LOGS}/cgan_train.log",
    benchmark:
        f"{LOGS}/benchmarks/cgan_train.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("cgan_train")["threads"]
    resources:
        mem_mb=rule_resources("cgan_train")["mem_mb"],
        runtime=rule_resources("cgan_train")["runtime"],
        gpu=rule_resources("cgan_train")["gpu"],
    params:
        options=cli_flags({**config["cgan"], "device": config["device"]}),
        # Per-epoch checkpoints live outside the declared output, so a killed job resumes.
        checkpoint=result("cgan/.checkpoints"),
        code=code_version("cgan-train"),
    shell:
        "OMP_NUM_THREADS={threads} dlearn cgan-train --crops {input:q} --out {output.model:q} "
        "--curve {output.curve:q} --checkpoint-dir {params.checkpoint:q} {params.options} "
        "> {log:q} 2>&1"


rule cgan_predict:
    """Root-relative keypoint depths for every sample of a split."""
    input:
        model=result("cgan/model.pt"),
        crops=result("data/crops_{split}.zarr"),
    output:
        directory(result("cgan/depths_{split}.zarr")),
    log:
        f"{LOGS}/cgan_predict_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cgan_predict_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("cgan_predict")["mem_mb"],
        runtime=rule_resources("cgan_predict")["runtime"],
        gpu=rule_resources("cgan_predict")["gpu"],
    params:
        device=config["device"],
        code=code_version("cgan-predict"),
    shell:
        "dlearn cgan-predict --model {input.model:q} --crops {input.crops:q} --out {output:q} "
        "--device {params.device} > {log:q} 2>&1"


rule true_depths:
    """The ground truth's keypoint depths in the cGAN's format (depth_source: ground_truth)."""
    input:
        crops=result("data/crops_{split}.zarr"),
        gt=result("data/gt_{split}.zarr"),
    output:
        directory(result("data/true_depths_{split}.zarr")),
    log:
        f"{LOGS}/true_depths_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/true_depths_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("cgan_predict")["mem_mb"],
        runtime=rule_resources("cgan_predict")["runtime"],
    params:
        code=code_version("true-depths"),
    shell:
        "dlearn true-depths --crops {input.crops:q} --gt {input.gt:q} --out {output:q} "
        "> {log:q} 2>&1"


rule cgan_evaluate:
    """Accuracy of the cGAN depths on the test split (synthetic data: 3D is known)."""
    input:
        depths=result("cgan/depths_test.zarr"),
        train_depths=result("cgan/depths_train.zarr"),
        crops=result("data/crops_test.zarr"),
        gt=result("data/gt_test.zarr"),
    output:
        result("cgan/evaluation.json"),
    log:
        f"{LOGS}/cgan_evaluate.log",
    benchmark:
        f"{LOGS}/benchmarks/cgan_evaluate.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("cgan_predict")["mem_mb"],
        runtime=rule_resources("cgan_predict")["runtime"],
    params:
        code=code_version("cgan-evaluate"),
    shell:
        "dlearn cgan-evaluate --depths {input.depths:q} --train-depths {input.train_depths:q} "
        "--crops {input.crops:q} --gt {input.gt:q} --out {output:q} > {log:q} 2>&1"
