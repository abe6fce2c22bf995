"""The images without building them: deploy/Dockerfile builds the workspace's real
binaries with the toolchain Cargo.toml asks for, runs them unprivileged; the demo Dovecot's
configuration is accepted by doveconf and its scripts by shellcheck."""

from __future__ import annotations

import re
import shlex
import tomllib

from .common import DEPLOY, ROOT, CheckFailed, Problems, rel, run, tool


def _workspace() -> tuple[str, set[str]]:
    """The workspace's rust-version and every binary target's name."""
    root = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = root["workspace"]["package"]["rust-version"]
    bins = set()
    for member in root["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        declared = {b["name"] for b in manifest.get("bin") or []}
        if not declared and (ROOT / member / "src" / "main.rs").exists():
            declared = {manifest["package"]["name"]}
        bins |= declared
    return version, bins


def dockerfile() -> str:
    path = DEPLOY / "Dockerfile"
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    stages = [l.split() for l in lines if l.upper().startswith("FROM ")]
    p = Problems()
    version, bins = _workspace()
    p.require(len(stages) >= 2, "multi-stage: a builder and a runtime stage")
    if stages:
        p.require(stages[0][1] == f"rust:{version}-bookworm",
                  f"builder must be rust:{version}-bookworm (Cargo.toml rust-version {version}), not {stages[0][1]}")
        p.require(stages[-1][1] == "debian:bookworm-slim", f"runtime must be debian:bookworm-slim, not {stages[-1][1]}")
    build = next((l for l in lines if "cargo build" in l), "")
    p.require("--release" in build and "--locked" in build, "cargo build --release --locked")
    built = set(re.findall(r"--bin\s+(\S+)", build))
    p.require(built == {"mailhaul", "mailhaul-worker"}, f"builds --bin mailhaul --bin mailhaul-worker, not {sorted(built)}")
    for name in sorted(built - bins):
        p.add(f"--bin {name}: no such binary in the workspace ({sorted(bins)})")
    runtime = lines[max(i for i, l in enumerate(lines) if l.upper().startswith("FROM ")):]
    p.require(any("ca-certificates" in l for l in runtime), "runtime: install ca-certificates (TLS is verified)")
    copies = " ".join(l for l in runtime if l.upper().startswith("COPY --FROM"))
    for name in ("mailhaul", "mailhaul-worker"):
        p.require(re.search(rf"/{re.escape(name)}(\s|$)", copies) is not None, f"runtime: copy {name} from the builder")
    users = [l.split()[1] for l in runtime if l.upper().startswith("USER ")]
    p.require(bool(users) and users[-1].split(":")[0] == "10001", "runtime: USER 10001 (non-root)")
    p.require(any(l.upper().startswith("EXPOSE") and "9464" in l.split() for l in runtime), "runtime: EXPOSE 9464")
    cmd = [l for l in runtime if l.upper().startswith("CMD ")]
    p.require(bool(cmd) and "mailhaul-worker" in cmd[-1], "runtime: CMD runs mailhaul-worker")
    ignore = {l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()}
    p.require({"target", ".git"} <= ignore, ".dockerignore must list target/ and .git")
    p.raise_if_any()
    return f"rust:{version} builder, both binaries, non-root runtime"


def dovecot() -> str:
    conf = DEPLOY / "demo" / "dovecot.conf"
    doveconf = tool("doveconf", "run scripts/install-deps (Debian package dovecot-core)")
    run([doveconf, "-n", "-c", str(conf)], f"doveconf -n -c {rel(conf)}")
    text = (DEPLOY / "demo" / "dovecot.Dockerfile").read_text()
    p = Problems()
    for name in ("dovecot.conf", "dovecot-entrypoint.sh"):
        p.require(f"COPY {name} " in text, f"dovecot.Dockerfile must COPY {name}")
    p.raise_if_any()
    return "doveconf accepts deploy/demo/dovecot.conf"


def shell_scripts() -> str:
    scripts = [DEPLOY / "demo" / "dovecot-entrypoint.sh", ROOT / "scripts" / "check-deploy", ROOT / "scripts" / "install-deps"]
    shellcheck = tool("shellcheck", "run scripts/install-deps (Debian package shellcheck)")
    missing = [rel(s) for s in scripts if not s.exists()]
    if missing:
        raise CheckFailed([f"{m} missing" for m in missing])
    run([shellcheck] + [str(s) for s in scripts], "shellcheck " + " ".join(shlex.quote(rel(s)) for s in scripts))
    return f"shellcheck: {', '.join(rel(s) for s in scripts)}"
