"""Renders keda.sh_v1alpha1_{scaledobject,triggerauthentication}.json, the JSON Schemas
scripts/check-deploy validates deploy/kubernetes/keda.yaml against.

KEDA publishes its CRDs only on GitHub; the package registries carry them as models
generated from those CRDs. This renders the pydantic models of PyPI's
cloudcoil.models.keda as strict JSON Schema: unknown fields rejected (the API server
would silently drop them), optional fields not nullable, pydantic's titles and defaults
dropped. Not run by CI; run it by hand to move to a newer KEDA:

    python3 -m venv /tmp/keda && /tmp/keda/bin/pip install cloudcoil.models.keda==2.16.1.0
    /tmp/keda/bin/python deploy/schemas/render_keda_schemas.py deploy/schemas
"""

import json
import sys
from importlib.metadata import version

import cloudcoil.models.keda.v1alpha1 as keda


def strict(node):
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items() if k not in ("title", "default")}
    any_of = node.get("anyOf")
    if any_of and len(any_of) == 2 and {"type": "null"} in any_of:
        other = next(a for a in any_of if a != {"type": "null"})
        node = {**other, **{k: v for k, v in node.items() if k != "anyOf"}}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def main(out_dir: str) -> None:
    for cls, name in [(keda.ScaledObject, "scaledobject"), (keda.TriggerAuthentication, "triggerauthentication")]:
        schema = strict(cls.model_json_schema(by_alias=True))
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"keda.sh/v1alpha1 {cls.__name__}: rendered from PyPI cloudcoil.models.keda=="
            f"{version('cloudcoil.models.keda')} (generated from KEDA's CRD) by "
            "deploy/schemas/render_keda_schemas.py; unknown fields rejected.",
            **schema,
        }
        with open(f"{out_dir}/keda.sh_v1alpha1_{name}.json", "w") as f:
            json.dump(schema, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
