rule body_model:
    """Body model and UV charts: the procedural stand-in, or the user's SMPL and DensePose files
    checked and linked."""
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
        code=code_version("dlearn/body", "dlearn/densepose/uv.py"),
    shell:
        "dlearn body-model --model {params.model:q} --uv {params.uv:q} "
        "--out-model {output.model:q} --out-uv {output.uv:q} --out-preview {output.preview:q} "
        "> {log:q} 2>&1"
