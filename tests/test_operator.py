"""What an operator sees: the start banner, reload lines, signal lines, and messages that name
what the user wrote (unset environment variables), tested by their text."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import dns.rcode
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import Server, run_cli, serve

BANNER = """
.:@PORT@ example.org:@P1@ {
    whoami
}
example.net:@P2@ {
    bind 127.0.0.1
    whoami
}
"""

VERSION = r"ClusterDNS-\d+\.\d+\.\d+\n(\w+)/(\w+), python3\.\d+\.\d+\n"


def _normalized(srv: Server) -> str:
    """The output with the random ports replaced by their @NAME@ placeholders."""
    out = srv.output.replace(f":{srv.port}\n", ":@PORT@\n")
    for name, port in srv.ports.items():
        out = out.replace(f":{port}\n", f":@{name}@\n").replace(f":{port} ", f":@{name}@ ")
    return out


def _zone_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\S*:@\w+@", line)]


def test_start_banner_lists_zones_then_version(tmp_path: Path) -> None:
    with serve(BANNER, tmp_path) as srv:
        srv.wait_output(VERSION)
        out = _normalized(srv)
    assert _zone_lines(out) == [
        ".:@PORT@",
        "example.org.:@P1@",
        "example.net.:@P2@ on 127.0.0.1",
    ]
    assert out.index("example.net.:@P2@ on 127.0.0.1\n") < out.index("ClusterDNS-")
    assert "listening on" not in out


def test_start_banner_matches_coredns(tmp_path: Path) -> None:
    with serve_coredns(BANNER, tmp_path / "ref") as ref:
        ref.wait_output(r"CoreDNS-\S+\n\w+/\w+, ")
        theirs = _normalized(ref)
    (tmp_path / "ours").mkdir()
    with serve(BANNER, tmp_path / "ours") as srv:
        srv.wait_output(VERSION)
        ours = _normalized(srv)
    # CoreDNS starts its servers in Go map order: the same lines, maybe in another order.
    assert sorted(_zone_lines(ours)) == sorted(_zone_lines(theirs))
    m = re.search(VERSION, ours)
    assert m is not None
    platform_ref = re.search(r"CoreDNS-\S+\n(\w+)/(\w+), ", theirs)
    assert platform_ref is not None
    assert m.groups() == platform_ref.groups()  # linux/amd64 as Go names them


def test_zone_outside_rfc1035_syntax_is_warned_in_the_banner(tmp_path: Path) -> None:
    with serve("_tcp.example.org:@PORT@ {\n    whoami\n}\n", tmp_path, wait=False) as srv:
        srv.wait_output(VERSION)
        out = _normalized(srv)
    assert (
        'Warning: Domain "_tcp.example.org." does not follow RFC1035 preferred syntax\n'
        "_tcp.example.org.:@PORT@\n"
    ) in out


def test_quiet_keeps_the_reload_line_only(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    reload\n    whoami\n}\n", tmp_path, args=("-quiet",)) as srv:
        srv.wait_output(r"\[INFO\] plugin/reload: Running configuration SHA512 = [0-9a-f]{128}")
        assert srv.query("x.", "A").rcode() == dns.rcode.NOERROR
        out = _normalized(srv)
    assert ".:@PORT@" not in out and "ClusterDNS-" not in out


def test_reload_lines_as_coredns(tmp_path: Path) -> None:
    body = ".:@PORT@ {\n    reload 2s 1s\n    whoami\n}\n"
    with serve(body, tmp_path) as srv:
        srv.wait_output(VERSION)
        first = srv.output
        # the SHA line comes between the zones and the version, as CoreDNS prints it
        assert re.search(r"^\.:\d+\n\[INFO\] plugin/reload: Running configuration SHA512 = "
                         r"[0-9a-f]{128}\nClusterDNS-", first, re.M), first  # fmt: skip
        srv.conf.write_text(srv.conf.read_text() + "# changed\n")
        srv.wait_output(r"\[INFO\] Reloading complete")
        after = srv.output[len(first) :]
    assert re.fullmatch(
        r"\[INFO\] Reloading\n"
        r"\[INFO\] plugin/reload: Running configuration SHA512 = [0-9a-f]{128}\n"
        r"\[INFO\] Reloading complete\n(\[INFO\] SIGTERM: .*\n)?",
        after,
    ), after


def test_sigusr1_and_a_failed_reload(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    whoami\n}\n", tmp_path) as srv:
        srv.conf.write_text(srv.conf.read_text() + "example.org {\n    nosuchplugin\n}\n")
        srv.signal(signal.SIGUSR1)
        srv.wait_output(r"\[ERROR\] SIGUSR1: .*Corefile:5 - unknown directive 'nosuchplugin'")
        out = srv.output
        assert "[INFO] SIGUSR1: Reloading\n" in out
        assert re.search(r"\[ERROR\] Restart failed: .*Corefile:5 - unknown directive", out)
        assert srv.query("x.", "A").rcode() == dns.rcode.NOERROR  # the old one serves on


# ---- signals --------------------------------------------------------------------------------

LAMEDUCK = """
.:@PORT@ {
    bind 127.0.0.1
    health 127.0.0.1:@P1@ {
        lameduck 20s
    }
    whoami
}
"""


def test_sigint_shuts_down(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as srv:
        srv.signal(signal.SIGINT)
        assert srv.proc.wait(10) == 0
        srv.wait_output(r"\[INFO\] SIGINT: Shutting down\n")
        assert "SIGTERM" not in srv.output


def test_second_sigint_during_lameduck_forces_quit(tmp_path: Path) -> None:
    with serve(LAMEDUCK, tmp_path) as srv:
        srv.signal(signal.SIGINT)
        srv.wait_output(r"\[INFO\] SIGINT: Shutting down\n")
        srv.signal(signal.SIGINT)  # lameduck has 20s to go
        assert srv.proc.wait(10) == 2
        srv.wait_output(r"\[INFO\] SIGINT: Force quit\n")


def test_sigterm_text(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as srv:
        assert srv.stop() == 0
        srv.wait_output(r"\[INFO\] SIGTERM: Shutting down servers then terminating\n")


def test_sigquit_quits_at_once(tmp_path: Path) -> None:
    with serve(LAMEDUCK, tmp_path) as srv:
        srv.signal(signal.SIGQUIT)
        assert srv.proc.wait(10) == 0
        srv.wait_output(r"\[INFO\] SIGQUIT: Quitting process immediately\n")


def test_sighup_and_sigusr2_do_not_stop_the_server(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as srv:
        srv.signal(signal.SIGHUP)
        srv.signal(signal.SIGUSR2)
        srv.wait_output(r"\[INFO\] SIGUSR2: Upgrading\n\[ERROR\] SIGUSR2: upgrading: not supported")
        assert srv.query("x.", "A").rcode() == dns.rcode.NOERROR
        assert srv.proc.poll() is None


# ---- command line ---------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    r = run_cli("-h")
    assert r.returncode == 0
    assert "clusterdns query [-conf Corefile] [--trace] NAME [TYPE]" in r.stdout
    assert "clusterdns manifests --cluster-ip IP" in r.stdout


def test_query_without_corefile_says_it_uses_the_default(tmp_path: Path) -> None:
    r = run_cli("query", "whoami.example.", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no Corefile (no -conf, none in this directory): using the built-in default" in r.stderr
    assert "status: NOERROR" in r.stdout


# ---- unset environment variables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("corefile", "line", "message"),
    [
        (
            ".:{$OPS_TEST_UNSET_PORT} {\n    whoami\n}\n",
            1,
            "invalid server block key '.:': expecting data after last colon: '.:' "
            "(the environment variable OPS_TEST_UNSET_PORT is not set)",
        ),
        (
            "{env.OPS_TEST_UNSET_ZONE}:1053 {\n    whoami\n}\n",
            1,
            "(the environment variable OPS_TEST_UNSET_ZONE is not set)",
        ),
        (
            ".:1053 {\n    kubernetes cluster.local {\n        ttl {$OPS_TEST_UNSET_TTL}\n"
            "    }\n}\n",
            3,
            'kubernetes: strconv.Atoi: parsing "": invalid syntax '
            "(the environment variable OPS_TEST_UNSET_TTL is not set)",
        ),
        (
            '.:1053 {\n    reload "{$OPS_TEST_UNSET_A}" {$OPS_TEST_UNSET_B}\n}\n',
            2,
            "reload: invalid duration '': empty duration (the environment variables "
            "OPS_TEST_UNSET_A and OPS_TEST_UNSET_B are not set)",
        ),
    ],
)
def test_unset_environment_variable_is_named(
    tmp_path: Path, corefile: str, line: int, message: str
) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(corefile)
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:{line} - " in r.stderr and message in r.stderr, r.stderr


def test_unset_environment_variable_is_named_in_warnings(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text("example.org:1053 {\n    file {$OPS_TEST_UNSET_DIR}/db.example.org\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
    assert f"{conf}:2 - plugin/file: Failed to open" in r.stderr, r.stderr
    assert "(the environment variable OPS_TEST_UNSET_DIR is not set)" in r.stderr, r.stderr


def test_set_environment_variable_is_not_mentioned(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n    bufsize {$OPS_TEST_BUF}\n}\n")
    r = run_cli("-conf", str(conf), "-validate", env={"OPS_TEST_BUF": "x"})
    assert r.returncode == 1
    assert r.stderr.endswith("bufsize: 'x' is not a number\n"), r.stderr


# ---- no warning about values the user never wrote -------------------------------------------


@pytest.mark.parametrize("line", ["reload 10s", "reload 4s 10s", "reload 10s 0s"])
def test_reload_lowers_the_jitter_silently(tmp_path: Path, line: str) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(f".:1053 {{\n    {line}\n    whoami\n}}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_reload_jitter_below_a_second_names_zero_as_allowed(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n    reload 10s 500ms\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:2 - reload: jitter value must be 0 or greater or equal to 1s" in r.stderr


# ---- the docs agree with the product --------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _generated_rules() -> list[tuple[str, list[str]]]:
    import yaml

    docs = list(yaml.safe_load_all((ROOT / "deploy" / "clusterdns.yaml").read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    return [(r["apiGroups"][0], sorted(r["resources"])) for r in role["rules"]]


def test_one_rbac_list_everywhere() -> None:
    import yaml

    generated = _generated_rules()
    assert generated == [("", ["endpoints", "namespaces", "pods", "services"]),
                         ("discovery.k8s.io", ["endpointslices"])]  # fmt: skip
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    role = next(d for b in blocks for d in yaml.safe_load_all(b) if d["kind"] == "ClusterRole")
    assert [(r["apiGroups"][0], sorted(r["resources"])) for r in role["rules"]] == generated
    for resources in re.findall(r"--resource=(\S+)", text):
        names = {r.split(".")[0] for r in resources.split(",")}
        assert names <= {"endpoints", "services", "pods", "namespaces", "endpointslices"}
    create = re.search(r"create clusterrole clusterdns \\\n\s+--verb=list,watch \\\n\s+"
                       r"--resource=(\S+)", text)  # fmt: skip
    assert create is not None
    assert sorted(r.split(".")[0] for r in create.group(1).split(",")) == sorted(
        res for _, rs in generated for res in rs
    )


def test_one_image_name_everywhere() -> None:
    from clusterdns.deploy import DEFAULT_IMAGE

    for path in ("Dockerfile", "docs/migrating-from-coredns.md", "deploy/clusterdns.yaml"):
        text = (ROOT / path).read_text()
        names = set(re.findall(r"[\w./-]*clusterdns:\d+\.\d+\.\d+", text))
        assert names == {DEFAULT_IMAGE}, (path, names)


def test_readme_has_no_stale_claims() -> None:
    text = (ROOT / "README.md").read_text()
    assert "not available yet" not in text
    assert "within two seconds" not in text
    assert ".venv/bin/clusterdns" in text
