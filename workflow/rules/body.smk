rule check_data:
    """Every input the config names (body files, annotations, images) checked before any stage."""
    output:
        result("check_data.txt"),
    log:
        f"{LOGS}/check_data.log",
    benchmark:
        f"{LOGS}/benchmarks/check_data.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("body_model")["mem_mb"],
        runtime=rule_resources("body_model")["runtime"],
    params:
        inputs=checked_inputs(),
        code=code_version("check-data"),
    shell:
        "dlearn check-data --config-json {params.inputs:q} --out {output:q} > {log:q} 2>&1"


rule body_model:
    """Body model and UV charts: the procedural stand-in, or the user's SMPL and DensePose files
    checked and linked."""
    input:
        result("check_data.txt"),
    output:
        model=result("body/model.pkl"),
        uv=result("body/uv.mat"),
        preview=report(
            result("body/preview.png"),
            caption="../report/body_preview.rst",
            category="Body model",
        ),
    log:
        f"{LOGS}/body_model.log",
    benchmark:
        f"{LOGS}/benchmarks/body_model.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("body_model")["threads"]
    resources:
        mem_mb=rule_resources("body_model")["mem_mb"],
        runtime=rule_resources("body_model")["runtime"],
    params:
        model=config["body"]["model"],
        uv=config["body"]["uv"],
        code=code_version("body-model"),
    shell:
        "dlearn body-model --model {params.model:q} --uv {params.uv:q} "
        "--out-model {output.model:q} --out-uv {output.uv:q} --out-preview {output.preview:q} "
        "> {log:q} 2>&1"
