# dlearn: the deform-and-learn workflow (Yoshiyasu & Gamez). Rules live in workflow/rules/,
# every rule is a thin wrapper around one `dlearn <stage>` command.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/overrides.smk"


# Values nested in a --config block arrive as strings: typed by the schema first.
coerce_overrides(
    config,
    workflow.config_settings.overwrite_config,
    "workflow/schemas/config.schema.yaml",
)
# Reject a bad config before any job runs; fills in the schema's defaults.
validate(config, "workflow/schemas/config.schema.yaml")


# What the schema cannot express: finite numbers, a results folder that is not a file.
include: "workflow/rules/config_checks.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/body.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/cgan.smk"
include: "workflow/rules/registration.smk"
include: "workflow/rules/regressor.smk"
include: "workflow/rules/evaluation.smk"


rule all:
    default_target: True
    input:
        body_model_files(),
        data_files(),
        cgan_files(),
        registration_files(),
        report_files(),
