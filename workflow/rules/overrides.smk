# Command-line config overrides typed by the schema, before it validates them.
import yaml


def _schema_node(node, schema):
    """``node`` with its ``$ref`` (``#/definitions/name``) resolved against ``schema``."""
    while "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _typed(text, wanted):
    """``text`` as the schema's scalar type ``wanted``, or unchanged when it is not one."""
    try:
        if wanted == "integer":
            return int(text)
        if wanted == "number":
            return float(text) if any(c in text.lower() for c in ".en") else int(text)
    except ValueError:
        return text
    if wanted == "boolean":
        value = yaml.safe_load(text)
        return value if isinstance(value, bool) else text
    return text


def coerce_overrides(config, overrides, schema_path):
    """Give nested `--config` values the schema's types, in place in ``config``.

    Snakemake reads a value such as `registration={"weights":{"dense":999}}` with YAML's
    BaseLoader, so every leaf inside the block is a string ("999") that the schema would reject.
    Only the keys given on the command line are touched; a string that does not parse as the
    wanted type is left for the schema to reject with its message.
    """
    with open(os.path.join(workflow.basedir, schema_path)) as f:
        schema = yaml.safe_load(f)

    def walk(values, given, node):
        properties = _schema_node(node, schema).get("properties", {})
        for key, value in given.items():
            child = _schema_node(properties.get(key, {}), schema)
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                walk(values[key], value, child)
            elif isinstance(value, str) and isinstance(values.get(key), str):
                values[key] = _typed(values[key], child.get("type"))

    walk(config, overrides or {}, schema)
