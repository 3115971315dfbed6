wildcard_constraints:
    round=r"\d+",
    shard=r"\d+",


rule register:
    """Deformable registration (paper section 4) of one shard of the train split, round k."""
    input:
        unpack(registration_inputs),
    output:
        directory(result("round_{round}/registration/shard_{shard}.zarr")),
    log:
        f"{LOGS}/register_round{{round}}_shard{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/register_round{{round}}_shard{{shard}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: rule_resources("register")["threads"]
    resources:
        mem_mb=rule_resources("register")["mem_mb"],
        runtime=rule_resources("register")["runtime"],
        gpu=rule_resources("register")["gpu"],
    params:
        options=lambda wildcards: registration_options(wildcards.round),
        optional=optional_input_flags(
            "depths", "init", "previous", "keypoint_regressor"
        ),
        shards=REG["shards"],
        # Finished chunks live outside the declared output, so a killed job resumes.
        checkpoint=lambda wildcards: result(
            f"round_{wildcards.round}/registration/.checkpoint_{wildcards.shard}"
        ),
        code=code_version("register"),
    shell:
        "OMP_NUM_THREADS={threads} dlearn register --correspondences {input.correspondences:q} "
        "--crops {input.crops:q} --body-model {input.model:q} --out {output:q} "
        "--shard {wildcards.shard} --num-shards {params.shards} "
        "--checkpoint-dir {params.checkpoint:q} {params.optional} {params.options} > {log:q} 2>&1"


rule merge_registration:
    """Round k's registration of the whole train split, from its shards."""
    input:
        shards=expand(
            result("round_{{round}}/registration/shard_{shard}.zarr"),
            shard=range(REG["shards"]),
        ),
        correspondences=result("correspondences_train.zarr"),
        crops=result("data/crops_train.zarr"),
        model=result("body/model.pkl"),
        uv=result("body/uv.mat"),
    output:
        store=directory(result("round_{round}/registration.zarr")),
        overlay=report(
            result("round_{round}/registration_overlay.png"),
            caption="../report/registration_overlay.rst",
            category="Registration",
        ),
    log:
        f"{LOGS}/merge_registration_round{{round}}.log",
    benchmark:
        f"{LOGS}/benchmarks/merge_registration_round{{round}}.tsv"
    conda:
        "../../envs/dlearn.yaml"
    threads: 1
    resources:
        mem_mb=rule_resources("merge_registration")["mem_mb"],
        runtime=rule_resources("merge_registration")["runtime"],
    params:
        code=code_version("merge-registration"),
    shell:
        "dlearn merge-registration --shards {input.shards:q} "
        "--correspondences {input.correspondences:q} --out {output.store:q} "
        "--overlay {output.overlay:q} --crops {input.crops:q} --body-model {input.model:q} "
        "--uv {input.uv:q} > {log:q} 2>&1"
