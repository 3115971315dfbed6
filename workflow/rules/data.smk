wildcard_constraints:
    split="train|test",


rule synth:
    """Synthetic DensePose-COCO-format dataset with exact 3D ground truth (dataset.kind: synthetic)."""
    input:
        unpack(keypoint_regressor_input),
        model=result("body/model.pkl"),
        uv=result("body/uv.mat"),
    output:
        train=result("data/densepose_train.json"),
        test=result("data/densepose_test.json"),
        gt_train=directory(result("data/gt_train.zarr")),
        gt_test=directory(result("data/gt_test.zarr")),
        images=directory(result("data/images")),
        sheet=report(
            result("data/contact_sheet.png"),
            caption="../report/contact_sheet.rst",
            category="Data",
        ),
    log:
        f"{LOGS}/synth.log",
    benchmark:
        f"{LOGS}/benchmarks/synth.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("synth")["threads"]
    resources:
        mem_mb=rule_resources("synth")["mem_mb"],
        runtime=rule_resources("synth")["runtime"],
    params:
        # The folder that holds every output of the rule.
        out=lambda wildcards, output: os.path.dirname(output.train),
        options=cli_flags(DATASET["synthetic"]),
        keypoints=optional_input_flags("keypoint_regressor"),
        code=code_version("synth"),
    shell:
        "dlearn synth --body-model {input.model:q} --uv {input.uv:q} --out {params.out:q} "
        "{params.keypoints} {params.options} --workers {threads} > {log:q} 2>&1"


rule densepose_predictions:
    """DensePose's predicted IUV maps + 2D keypoints -> DensePose-COCO JSON (dataset.kind:
    densepose_predictions): a seeded subset of each person's instance pixels as dense points.
    """
    input:
        unpack(prediction_inputs),
        check=result("check_data.txt"),
    output:
        result("data/predicted_{split}.json"),
    log:
        f"{LOGS}/densepose_predictions_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/densepose_predictions_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("crops")["mem_mb"],
        runtime=rule_resources("crops")["runtime"],
    params:
        source=prediction_source_flags,
        image_root=DATASET["densepose_predictions"].get("image_root", ""),
        options=cli_flags(
            {
                **prediction_options(),
                "allow_absolute_paths": config["crops"]["allow_absolute_paths"],
            }
        ),
        code=code_version("densepose-predictions"),
    shell:
        "dlearn densepose-predictions --keypoints {input.keypoints:q} {params.source} "
        "--image-root {params.image_root:q} --out {output:q} {params.options} > {log:q} 2>&1"


rule mix_datasets:
    """DensePose-COCO annotations + DensePose predictions as one train/test file (dataset.kind:
    mixed): ids renumbered, sample ids prefixed by their source, names relative to a common root.
    """
    input:
        coco=lambda wildcards: DATASET["densepose_coco"][f"{wildcards.split}_json"],
        predicted=result("data/predicted_{split}.json"),
    output:
        result("data/mixed_{split}.json"),
    log:
        f"{LOGS}/mix_datasets_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/mix_datasets_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("crops")["mem_mb"],
        runtime=rule_resources("crops")["runtime"],
    params:
        coco_root=DATASET["densepose_coco"].get("image_root", ""),
        naming=DATASET["densepose_coco"].get("keypoint_names", "coco"),
        predicted_root=DATASET["densepose_predictions"].get("image_root", ""),
        image_root=lambda wildcards: image_root(wildcards.split),
        code=code_version("mix-datasets"),
    shell:
        "dlearn mix-datasets --source densepose_coco {input.coco:q} {params.coco_root:q} {params.naming:q} "
        "--source densepose_predictions {input.predicted:q} {params.predicted_root:q} coco "
        "--image-root {params.image_root:q} --out {output:q} > {log:q} 2>&1"


rule crops:
    """Square person crops (the regressor's input) and keypoints in normalised crop coordinates."""
    input:
        unpack(data_inputs),
    output:
        directory(result("data/crops_{split}.zarr")),
    log:
        f"{LOGS}/crops_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/crops_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("crops")["threads"]
    resources:
        mem_mb=rule_resources("crops")["mem_mb"],
        runtime=rule_resources("crops")["runtime"],
    params:
        image_root=lambda wildcards: image_root(wildcards.split),
        options=cli_flags({**config["crops"], **annotation_naming()}),
        code=code_version("crops"),
    shell:
        "dlearn crops --annotations {input.annotations:q} --image-root {params.image_root:q} "
        "--out {output:q} {params.options} --workers {threads} > {log:q} 2>&1"


rule match:
    """UV-to-vertex matching (paper section 6.1): nearest chart vertex of the point's part."""
    input:
        unpack(data_inputs),
        crops=result("data/crops_{split}.zarr"),
        model=result("body/model.pkl"),
        uv=result("body/uv.mat"),
    output:
        directory(result("correspondences_{split}.zarr")),
    log:
        f"{LOGS}/match_{{split}}.log",
    benchmark:
        f"{LOGS}/benchmarks/match_{{split}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("match")["threads"]
    resources:
        mem_mb=rule_resources("match")["mem_mb"],
        runtime=rule_resources("match")["runtime"],
    params:
        code=code_version("match"),
    shell:
        "dlearn match --annotations {input.annotations:q} --crops {input.crops:q} "
        "--body-model {input.model:q} --uv {input.uv:q} --out {output:q} --workers {threads} "
        "> {log:q} 2>&1"
