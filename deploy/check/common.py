"""What every check shares: the repository's paths, YAML loading, running tools, and the
`Problems` a check collects before it reports them all at once."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mailhaul.json"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS_RULE = KUBERNETES / "prometheusrule.yaml"
SCHEMAS = DEPLOY / "schemas"
COMPOSE = ROOT / "docker-compose.yml"


class CheckFailed(Exception):
    """A check found problems; `lines` says each one."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


class Problems:
    """Collects a check's problems so one run reports all of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def require(self, ok: bool, line: str) -> bool:
        if not ok:
            self.add(line)
        return ok

    def raise_if_any(self) -> None:
        if self.lines:
            raise CheckFailed(self.lines)


def rel(path: Path) -> str:
    """`path` relative to the repository root, for messages."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CheckFailed([f"{rel(path)}: {err}"]) from err


def load_yaml_docs(path: Path) -> list:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as err:
        raise CheckFailed([f"{rel(path)}: {err}"]) from err


def tool(name: str, install_hint: str) -> str:
    found = shutil.which(name)
    if not found:
        raise CheckFailed([f"{name} not found; {install_hint}"])
    return found


def run(args: list[str], what: str) -> str:
    """Runs a tool; its output is the failure's explanation."""
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        # Blank lines and repeats (promtool prints a parse error once per test) dropped.
        lines = list(dict.fromkeys(l.rstrip() for l in output.splitlines() if l.strip()))
        raise CheckFailed([f"{what} failed:"] + ["  " + l for l in lines])
    return output


def promtool() -> str:
    return tool("promtool", "run scripts/install-deps (Debian package prometheus)")


def read_env_file(path: Path) -> dict[str, str]:
    """A compose env file: KEY=VALUE lines, # comments."""
    values = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise CheckFailed([f"{rel(path)}:{n}: not KEY=VALUE"])
        values[key] = value
    return values


def metrics_port(addr: str | None) -> int | None:
    """The port of a MAILHAUL_METRICS_ADDR value like 0.0.0.0:9464."""
    if not addr or ":" not in addr:
        return None
    port = addr.rsplit(":", 1)[1]
    return int(port) if port.isdigit() else None


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in a command line."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None
