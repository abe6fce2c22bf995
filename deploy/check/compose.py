"""docker-compose.yml without a Docker engine: interpolated as compose does, validated
against the Compose Specification's JSON schema (vendored), then checked for what the
schema cannot see: files that must exist, workers that can scale, secrets only in env
files (and consistent between them), Prometheus scraping the services that exist."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema

from .common import (
    COMPOSE, DEPLOY, PROMETHEUS, ROOT, SCHEMAS, CheckFailed, Problems, flag, load_yaml,
    metrics_port, read_env_file, rel,
)

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]+@")


def interpolate(node, env: dict[str, str], unset: set[str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, $$ over every string."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, unset) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, unset) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name, op, arg = m.group(2) or m.group(5), m.group(3), m.group(4) or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        if value is None:
            unset.add(name)
        return value or ""

    return _VAR.sub(sub, node)


def load() -> dict:
    """The compose file as compose sees it with an empty environment (defaults apply)."""
    raw = load_yaml(COMPOSE)
    unset: set[str] = set()
    doc = interpolate(raw, {}, unset)
    if unset:
        raise CheckFailed([f"variables without a default: {sorted(unset)}"])
    return doc


def schema() -> str:
    spec = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator_cls = jsonschema.validators.validator_for(spec)
    errors = sorted(validator_cls(spec).iter_errors(load()), key=lambda e: list(e.absolute_path))
    if errors:
        raise CheckFailed([f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors])
    return "valid against deploy/schemas/compose-spec.json"


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _env_files(service: dict) -> list[Path]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, (str, dict)) else files
    return [ROOT / (f["path"] if isinstance(f, dict) else f) for f in files]


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", str(duration)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def services() -> str:
    doc = load()
    svcs = doc.get("services") or {}
    p = Problems()
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in svcs.items():
        build = svc.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            p.require(context.is_dir(), f"{name}: build context {rel(context)} missing")
            if isinstance(build, dict) and build.get("dockerfile"):
                dockerfile = context / build["dockerfile"]
                p.require(dockerfile.is_file(), f"{name}: {rel(dockerfile)} missing")
        for f in _env_files(svc):
            p.require(f.is_file(), f"{name}: env_file {rel(f)} missing")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                p.require((ROOT / source).exists(), f"{name}: bind mount {source} missing")
            elif source:
                p.require(source in volumes, f"{name}: volume {source!r} not declared under volumes:")
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if p.require(dep in svcs, f"{name}: depends on unknown service {dep!r}"):
                p.require(not svcs[dep].get("profiles") or set(svcs[dep]["profiles"]) <= set(svc.get("profiles") or []),
                          f"{name}: depends on {dep!r}, which only starts with profile(s) {svcs[dep].get('profiles')}")
        for key, value in _env(svc).items():
            p.require(not SECRET_NAME.search(key), f"{name}: {key} set inline; put it in an env file")
            p.require(not URL_WITH_PASSWORD.search(value), f"{name}: {key} has a password inline; put it in an env file")
        for arg in _command(svc):
            p.require(not URL_WITH_PASSWORD.search(arg), f"{name}: a password on the command line; use an env file")

    worker = svcs.get("worker")
    if p.require(worker is not None, "no worker service"):
        p.require("container_name" not in worker, "worker: container_name stops --scale worker=N")
        p.require(not worker.get("ports"), "worker: host ports stop --scale worker=N (Prometheus reaches it inside)")
        cmd = _command(worker)
        p.require(cmd[:1] == ["mailhaul-worker"], "worker: command must run mailhaul-worker")
        drain = float(flag(cmd, "drain-timeout-secs") or 30)
        grace = _seconds(worker.get("stop_grace_period", "10s"))
        p.require(grace >= drain + 10, f"worker: stop_grace_period {grace:.0f}s must exceed --drain-timeout-secs {drain:.0f} by 10 s")
        p.require(metrics_port(_env(worker).get("MAILHAUL_METRICS_ADDR")) is not None, "worker: MAILHAUL_METRICS_ADDR must be set")
    coordinator = svcs.get("coordinator")
    if p.require(coordinator is not None, "no coordinator service"):
        p.require(_command(coordinator)[:2] == ["mailhaul", "migrate"], "coordinator: command must be `mailhaul migrate <manifest>`")
        p.require(bool(coordinator.get("profiles")), "coordinator: put it in a profile so `up -d` does not start a pass")
    for needed in ("rabbitmq", "redis", "prometheus", "grafana", "jaeger", "source-imap", "target-imap"):
        p.require(needed in svcs, f"no {needed} service")
    p.raise_if_any()
    return f"{len(svcs)} services: files exist, worker scales, no inline secrets"


def prometheus_targets() -> str:
    """Every scrape target is a compose service on the port it serves metrics on."""
    svcs = load().get("services") or {}
    prom = load_yaml(PROMETHEUS / "prometheus.yml")
    p = Problems()
    jobs = {}
    for job in prom.get("scrape_configs") or []:
        jobs[job["job_name"]] = job
        targets = [(n, sd.get("port")) for sd in job.get("dns_sd_configs") or [] for n in sd.get("names") or []]
        targets += [tuple(t.rsplit(":", 1)) for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        for host, port in targets:
            if host == "localhost":
                continue
            if not p.require(host in svcs, f"job {job['job_name']}: {host} is not a compose service"):
                continue
            served = metrics_port(_env(svcs[host]).get("MAILHAUL_METRICS_ADDR"))
            if served is not None:
                p.require(int(port) == served, f"job {job['job_name']}: {host} serves metrics on {served}, scraped on {port}")
    for job in ("mailhaul-worker", "mailhaul-coordinator", "rabbitmq"):
        p.require(job in jobs, f"prometheus.yml: no job {job!r} (the alerts use it)")
    rabbit = jobs.get("rabbitmq", {})
    p.require(rabbit.get("metrics_path") == "/metrics/per-object",
              "job rabbitmq: scrape /metrics/per-object (per-queue series for the queue panels and alerts)")
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    p.require("rabbitmq_prometheus" in plugins, "deploy/rabbitmq/enabled_plugins: rabbitmq_prometheus not enabled")
    p.raise_if_any()
    return f"{len(jobs)} jobs scrape compose services on their metrics ports"


def _url_password(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    return parts.username, parts.password


def secrets() -> str:
    """The demo env files agree with each other and with the demo manifest."""
    env_dir = DEPLOY / "demo" / "env"
    env = {f.stem: read_env_file(f) for f in sorted(env_dir.glob("*.env"))}
    p = Problems()
    mh, rabbit, redis, dovecot = (env.get(k, {}) for k in ("mailhaul", "rabbitmq", "redis", "dovecot"))
    user, password = _url_password(mh.get("MAILHAUL_AMQP_URL", ""))
    p.require((user, password) == (rabbit.get("RABBITMQ_DEFAULT_USER"), rabbit.get("RABBITMQ_DEFAULT_PASS")),
              "mailhaul.env MAILHAUL_AMQP_URL must log in as rabbitmq.env's RABBITMQ_DEFAULT_USER/PASS")
    p.require(_url_password(mh.get("MAILHAUL_REDIS_URL", ""))[1] == redis.get("REDIS_PASSWORD"),
              "mailhaul.env MAILHAUL_REDIS_URL must carry redis.env's REDIS_PASSWORD")
    manifest_path = DEPLOY / "demo" / "manifest.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise CheckFailed([f"{rel(manifest_path)}: {err}"]) from err
    refs = set(re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', manifest_path.read_text()))
    for ref in sorted(refs):
        if p.require(ref in mh, f"manifest.toml names env:{ref}, which mailhaul.env does not set"):
            p.require(mh[ref] == dovecot.get("DEMO_PASSWORD"), f"mailhaul.env {ref} must equal dovecot.env's DEMO_PASSWORD")
    svcs = load().get("services") or {}
    for side in ("source", "target"):
        host = manifest.get(side, {}).get("host")
        p.require(host in svcs, f"manifest.toml [{side}] host {host!r} is not a compose service")
    users = set(str(_env(svcs.get("source-imap", {})).get("DEMO_USERS", "")).split())
    for mb in manifest.get("mailbox") or []:
        p.require(mb.get("username") in users, f"manifest.toml mailbox {mb.get('email')}: no such demo user {sorted(users)}")
    p.raise_if_any()
    return f"{len(env)} env files agree; manifest's {len(refs)} env: references set"
