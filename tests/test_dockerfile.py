"""The Dockerfile, checked by parsing it (no Docker engine here): what it copies exists and is
not excluded by .dockerignore, the image runs `clusterdns -conf /etc/coredns/Corefile` as a
non-root user, and it exposes what the Deployment and CoreDNS's probes use."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib

import pytest

from tests.harness import ROOT, run_cli

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not buf:
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        full = (buf + line).strip()
        buf = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def final(name: str) -> str:
    values = [args for ins, args in stages()[-1] if ins == name]
    assert values, f"no {name} in the final stage"
    return values[-1]


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pat = raw.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "*/"))
            for p in prefixes
        ):
            ignored = not neg
    return ignored


def test_multi_stage_slim_python() -> None:
    froms = [args for ins, args in instructions() if ins == "FROM"]
    assert len(froms) >= 2
    args = {
        a.split("=")[0]: a.split("=")[1] for ins, a in instructions() if ins == "ARG" and "=" in a
    }
    for f in froms:
        image = f.split()[0].replace("${PYTHON_VERSION}", args.get("PYTHON_VERSION", ""))
        assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", image), image
    assert args["PYTHON_VERSION"] == "3.11"  # pyproject's requires-python floor


def test_copied_paths_exist_and_reach_the_build_context() -> None:
    copies = [args for ins, args in instructions() if ins == "COPY"]
    local = [shlex.split(c) for c in copies if not c.startswith("--from")]
    assert local
    for words in local:
        *sources, _dest = [w for w in words if not w.startswith("--")]
        for src in sources:
            assert (ROOT / src).exists(), src
            assert not _ignored(src.rstrip("/")), f"{src} is excluded by .dockerignore"
    # everything pip needs to build the package: pyproject's readme too
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {s.rstrip("/") for words in local for s in words[:-1]}
    assert {"pyproject.toml", "src", meta["project"]["readme"]} <= copied
    assert not _ignored("src/clusterdns/cli.py")
    assert _ignored(".venv") and _ignored("tests") and _ignored(".git")
    # a --from copy names a stage of this file
    names = {args.split()[-1] for ins, args in instructions() if ins == "FROM" and " AS " in args}
    for c in copies:
        if c.startswith("--from="):
            assert c.split()[0].removeprefix("--from=") in names


def test_entrypoint_and_cmd_run_the_coredns_command_line() -> None:
    entry = json.loads(final("ENTRYPOINT"))
    cmd = json.loads(final("CMD"))
    assert entry == ["clusterdns"]
    assert cmd == ["-conf", "/etc/coredns/Corefile"]
    # `clusterdns` is the console script pyproject installs, and the command line is valid
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["clusterdns"] == "clusterdns.cli:main"
    assert "/opt/clusterdns/bin" in final("ENV")
    r = run_cli(*cmd[:1], "/nonexistent/Corefile", "-validate")
    assert r.returncode == 1 and "cannot read Corefile" in r.stderr  # parsed as -conf, not junk


def test_runs_as_non_root_and_read_only_friendly() -> None:
    user = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    env = final("ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    runs = " ".join(args for ins, args in instructions() if ins == "RUN")
    assert "--compile" in runs  # bytecode made at build time, never at run time
    from tests.test_deploy import manifests

    _, docs = manifests("--cluster-ip", "10.0.0.10")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


@pytest.mark.parametrize("port", ["53/udp", "53/tcp", "9153", "8080", "8181"])
def test_exposes(port: str) -> None:
    exposed = " ".join(args for ins, args in stages()[-1] if ins == "EXPOSE").split()
    assert port in exposed
