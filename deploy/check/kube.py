"""deploy/kubernetes offline: core kinds against kubernetes-validate's schemas (strict:
unknown fields are errors), the CRDs (KEDA, Prometheus Operator) against the schemas
vendored in deploy/schemas, and the references between the objects (names, ports, labels,
secrets, queue, grace period) that no schema sees."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate

from .common import (
    KUBERNETES, SCHEMAS, CheckFailed, Problems, flag, load_yaml, load_yaml_docs, metrics_port,
)

# The oldest Kubernetes the manifests claim (podFailurePolicy is GA from 1.31) and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ("1.31.0", "1.36.0")
NAMESPACE = "mailhaul"
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml"}

CRD_FILES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crds/servicemonitors.monitoring.coreos.com.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "crds/prometheusrules.monitoring.coreos.com.yaml",
}
JSON_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def objects() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path, doc) for doc in load_yaml_docs(path))
    return out


def _where(path: Path, obj: dict) -> str:
    return f"{path.name} {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def _strict(node):
    """A CRD's structural schema as JSON Schema that, like kubeconform -strict, rejects
    unknown fields (the API server would silently drop them)."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _strict(v) for k, v in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = node.get("anyOf") or [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        node["additionalProperties"] = False
    return {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}


@cache
def _crd_schema(key: tuple[str, str]) -> dict:
    if key in JSON_SCHEMAS:
        return json.loads((SCHEMAS / JSON_SCHEMAS[key]).read_text())
    crd = load_yaml(SCHEMAS / CRD_FILES[key])
    version = key[0].split("/")[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = _strict(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
            schema.setdefault("properties", {})["metadata"] = OBJECT_META
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
            return schema
    raise CheckFailed([f"{CRD_FILES[key]}: no version {version}"])


def schemas() -> str:
    p = Problems()
    core = crds = 0
    for path, obj in objects():
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in CRD_FILES or key in JSON_SCHEMAS:
            crds += 1
            schema = _crd_schema(key)
            validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
            for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
                p.add(f"{_where(path, obj)}: {'.'.join(map(str, err.absolute_path)) or '(top)'}: {err.message}")
            continue
        core += 1
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                at = ".".join(map(str, err.absolute_path)) or "(top)"
                p.add(f"{_where(path, obj)}: Kubernetes {version}: {at}: {err.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as err:
                p.add(f"{_where(path, obj)}: Kubernetes {version}: {err.message}")
    p.raise_if_any()
    return f"{core} core objects (Kubernetes {' and '.join(K8S_VERSIONS)}, strict), {crds} custom resources (vendored CRD schemas)"


def _containers(obj: dict) -> list[dict]:
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return pod.get("containers") or []


def _pod(obj: dict) -> dict:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}


def references() -> str:
    objs = objects()
    p = Problems()
    by_kind: dict[str, dict[str, tuple[Path, dict]]] = {}
    for path, obj in objs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = (path, obj)
        if obj["kind"] != "Namespace":
            p.require(obj["metadata"].get("namespace") == NAMESPACE, f"{_where(path, obj)}: namespace must be {NAMESPACE}")

    kust = load_yaml(KUBERNETES / "kustomization.yaml")
    listed = set(kust.get("resources") or [])
    present = {f.name for f in KUBERNETES.glob("*.yaml")} - NOT_APPLIED
    p.require(listed == present, f"kustomization.yaml resources {sorted(listed)} != files {sorted(present)}")
    p.require(kust.get("namespace") == NAMESPACE, f"kustomization.yaml: namespace must be {NAMESPACE}")

    secrets = {name: obj.get("stringData") or {} for name, (_, obj) in by_kind.get("Secret", {}).items()}
    for name, data in secrets.items():
        for key, value in data.items():
            p.require("CHANGE-ME" in str(value), f"Secret {name} {key}: example values must be CHANGE-ME placeholders")
    configmaps = by_kind.get("ConfigMap", {})

    workloads = list(by_kind.get("Deployment", {}).values()) + list(by_kind.get("Job", {}).values())
    for path, obj in workloads:
        where, pod = _where(path, obj), _pod(obj)
        for vol in pod.get("volumes") or []:
            if "configMap" in vol:
                p.require(vol["configMap"]["name"] in configmaps, f"{where}: ConfigMap {vol['configMap']['name']} not defined")
        p.require(pod.get("automountServiceAccountToken") is False, f"{where}: automountServiceAccountToken: false (it needs no API access)")
        psc = pod.get("securityContext") or {}
        for c in _containers(obj):
            csc = c.get("securityContext") or {}
            p.require(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"), f"{where} {c['name']}: runAsNonRoot")
            p.require((psc.get("seccompProfile") or csc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                      f"{where} {c['name']}: seccompProfile RuntimeDefault")
            p.require(csc.get("allowPrivilegeEscalation") is False, f"{where} {c['name']}: allowPrivilegeEscalation: false")
            p.require((csc.get("capabilities") or {}).get("drop") == ["ALL"], f"{where} {c['name']}: capabilities drop [ALL]")
            p.require("memory" in ((c.get("resources") or {}).get("limits") or {}), f"{where} {c['name']}: memory limit")
            for ref in c.get("envFrom") or []:
                if "secretRef" in ref:
                    p.require(ref["secretRef"]["name"] in secrets, f"{where}: Secret {ref['secretRef']['name']} not in secret.example.yaml")
            ports = {port.get("name"): port["containerPort"] for port in c.get("ports") or []}
            served = metrics_port(_env(c).get("MAILHAUL_METRICS_ADDR"))
            p.require(served is not None and ports.get("metrics") == served,
                      f"{where} {c['name']}: port 'metrics' must be MAILHAUL_METRICS_ADDR's port ({served})")
            for probe in ("livenessProbe", "readinessProbe"):
                get = (c.get(probe) or {}).get("httpGet")
                if get:
                    p.require(get.get("port") in ports or get.get("port") in ports.values(), f"{where}: {probe} port {get.get('port')} not a container port")
                    p.require(get.get("path") == "/healthz", f"{where}: {probe} must ask /healthz")
            if obj["kind"] == "Deployment":
                p.require(bool(c.get("livenessProbe")) and bool(c.get("readinessProbe")), f"{where}: liveness and readiness probes on /healthz")
                args = (c.get("command") or []) + (c.get("args") or [])
                drain = float(flag(args, "drain-timeout-secs") or 30)
                grace = pod.get("terminationGracePeriodSeconds", 30)
                p.require(grace >= drain + 10, f"{where}: terminationGracePeriodSeconds {grace} must exceed --drain-timeout-secs {drain:.0f} by 10 s")

    def pods_matching(selector: dict) -> list[tuple[Path, dict]]:
        return [(path, obj) for path, obj in workloads
                if selector and selector.items() <= ((obj["spec"]["template"].get("metadata") or {}).get("labels") or {}).items()]

    services = by_kind.get("Service", {})
    for name, (path, svc) in services.items():
        matched = pods_matching(svc["spec"].get("selector") or {})
        if p.require(bool(matched), f"{_where(path, svc)}: selects no workload's pods"):
            names = {port.get("name") for _, w in matched for c in _containers(w) for port in c.get("ports") or []}
            for port in svc["spec"].get("ports") or []:
                p.require(port.get("targetPort") in names, f"{_where(path, svc)}: targetPort {port.get('targetPort')} not a container port")
    p.require({"mailhaul-worker", "mailhaul-coordinator"} <= services.keys(),
              "Services mailhaul-worker and mailhaul-coordinator (their names are the alerts' job labels)")
    for name, (path, sm) in by_kind.get("ServiceMonitor", {}).items():
        want = (sm["spec"].get("selector") or {}).get("matchLabels") or {}
        selected = [s for s in services.values() if want.items() <= (s[1]["metadata"].get("labels") or {}).items()]
        p.require({s[1]["metadata"]["name"] for s in selected} >= {"mailhaul-worker", "mailhaul-coordinator"},
                  f"{_where(path, sm)}: must select both metrics Services")
        ports = {port.get("name") for s in selected for port in s[1]["spec"].get("ports") or []}
        for ep in sm["spec"].get("endpoints") or []:
            p.require(ep.get("port") in ports, f"{_where(path, sm)}: endpoint port {ep.get('port')} not on the selected Services")

    deployments = by_kind.get("Deployment", {})
    auths = by_kind.get("TriggerAuthentication", {})
    for name, (path, so) in by_kind.get("ScaledObject", {}).items():
        target = so["spec"]["scaleTargetRef"]
        where = _where(path, so)
        if not p.require(target.get("name") in deployments, f"{where}: scales unknown Deployment {target.get('name')}"):
            continue
        container = _containers(deployments[target["name"]][1])[0]
        ns = _env(container).get("MAILHAUL_NAMESPACE", "mailhaul")
        for trig in so["spec"].get("triggers") or []:
            if trig.get("type") != "rabbitmq":
                continue
            meta = trig.get("metadata") or {}
            p.require(meta.get("queueName") == f"{ns}.tasks", f"{where}: queueName must be {ns}.tasks (the workers' MAILHAUL_NAMESPACE)")
            auth = (trig.get("authenticationRef") or {}).get("name")
            if p.require(auth in auths, f"{where}: TriggerAuthentication {auth} not defined"):
                for ref in auths[auth][1]["spec"].get("secretTargetRef") or []:
                    p.require(ref["key"] in secrets.get(ref["name"], {}), f"TriggerAuthentication {auth}: Secret {ref['name']} has no key {ref['key']}")
    p.raise_if_any()
    return f"{len(objs)} objects: names, labels, ports, probes, secrets, queue, grace period, restricted pods"


def manifest() -> str:
    """The ConfigMap's manifest is TOML whose env: references the Secret provides."""
    p = Problems()
    docs = dict(((o["kind"], o["metadata"]["name"]), o) for _, o in objects())
    cm = docs.get(("ConfigMap", "mailhaul-manifest"))
    if not cm or "manifest.toml" not in (cm.get("data") or {}):
        raise CheckFailed(["ConfigMap mailhaul-manifest must hold manifest.toml"])
    text = cm["data"]["manifest.toml"]
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CheckFailed([f"manifest.toml in configmap.yaml: {err}"]) from err
    secret = (docs.get(("Secret", "mailhaul-credentials")) or {}).get("stringData") or {}
    refs = set(re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', text))
    for ref in sorted(refs):
        p.require(ref in secret, f"manifest names env:{ref}; Secret mailhaul-credentials must have that key")
    p.require(not re.search(r'password\s*=\s*"(?!env:|file:)', text), "manifest: passwords must be env: or file: references")
    p.raise_if_any()
    return f"TOML, tenant {parsed.get('tenant')!r}, {len(refs)} env: references in the Secret"
