"""The plugin contract: the server core learns a plugin's fast-path policy and classes from the
plugin itself, and the registry is CoreDNS 1.14.7's plugin.cfg."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import dns.rcode
import dns.rdataclass
import pytest

from clusterdns import registry
from clusterdns.plugin import Plugin, Replay
from tests.harness import ROOT, Case, check, fast_like_chain, serve, setup_error

SRC = ROOT / "src" / "clusterdns"
CORE = [*sorted((SRC / "server").glob("*.py")), SRC / "config.py", SRC / "runtime.py",
        SRC / "plugin.py"]  # fmt: skip

#: plugin.cfg of CoreDNS v1.14.7, every name in its order.
PLUGIN_CFG = [
    "root",
    "metadata",
    "geoip",
    "cancel",
    "proxyproto",
    "quic",
    "grpc_server",
    "https",
    "https3",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "shed",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "rewrite",
    "autopath",
    "acl",
    "cache",
    "header",
    "dnssec",
    "tls",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
]


def _imports(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_no_plugin_and_names_none(path: Path) -> None:
    assert not [m for m in _imports(path) if m.startswith("clusterdns.plugins")]
    strings = {
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    # "auto" (the -workers value) and "on" (an env switch) are words, not directives here.
    assert not (strings & set(registry.ORDER)) - {"auto", "on"}


def test_plugins_import_no_other_plugin() -> None:
    for path in sorted((SRC / "plugins").rglob("*.py")):
        rel = path.relative_to(SRC / "plugins").parts
        own = "clusterdns.plugins." + rel[0].removesuffix(".py")
        for m in _imports(path):
            if m.startswith("clusterdns.plugins"):
                assert m == own or m.startswith(own + "."), f"{path} imports {m}"


def test_order_is_coredns_plugin_cfg() -> None:
    order = list(registry.ORDER)
    order.remove("proxy")
    assert order == PLUGIN_CFG
    assert registry.ORDER.index("proxy") == registry.ORDER.index("forward") + 1


@pytest.mark.parametrize("name", sorted(registry.AVAILABLE))
def test_every_plugin_declares_its_module_and_policy(name: str) -> None:
    mod = importlib.import_module(f"clusterdns.plugins.{registry.AVAILABLE[name]}")
    cls = mod.PLUGIN
    assert issubclass(cls, Plugin) and cls.name == name
    assert isinstance(cls.replay, Replay)
    assert mod.__doc__ and mod.__doc__.startswith(f"{name}:"), "docstring gives the syntax"


@pytest.mark.parametrize("name", [n for n in PLUGIN_CFG if n not in registry.AVAILABLE])
def test_coredns_plugins_missing_here_are_named(tmp_path: Path, name: str) -> None:
    setup_error(tmp_path, f"  {name}\n", 2, f"plugin '{name}' is not supported by ClusterDNS")


def test_unknown_directive(tmp_path: Path) -> None:
    setup_error(tmp_path, "  nosuchplugin\n", 2, "unknown directive 'nosuchplugin'")


HOSTS = """
.:@PORT@ {{
    bind 127.0.0.1
    {extra}
    hosts {{
        10.0.0.1 db.example.org
        fallthrough
    }}
    whoami
}}
"""


def test_non_in_classes_are_refused_without_chaos(tmp_path: Path) -> None:
    with serve(HOSTS.format(extra=""), tmp_path) as srv:
        check(srv, [
            Case("db.example.org.", "A", answer=["db.example.org. 3600 IN A 10.0.0.1"]),
            Case("db.example.org.", "A", qclass="CH", rcode=dns.rcode.REFUSED, answer=[]),
            Case("db.example.org.", "A", qclass="HS", rcode=dns.rcode.REFUSED, answer=[]),
            Case("version.bind.", "TXT", qclass="CH", rcode=dns.rcode.REFUSED, answer=[]),
        ])  # fmt: skip


def test_chaos_on_the_listener_lets_the_chain_decide(tmp_path: Path) -> None:
    """As CoreDNS: with chaos loaded, other classes reach the chain (hosts answers IN A)."""
    with serve(HOSTS.format(extra="chaos"), tmp_path) as srv:
        check(srv, [
            Case("db.example.org.", "A", qclass="CH", answer=["db.example.org. 3600 IN A 10.0.0.1"]),
            Case("version.bind.", "TXT", qclass="CH", answer=None),
        ])  # fmt: skip
        r = srv.query("version.bind.", "TXT", "CH")
        assert r.answer and r.answer[0].rdclass == dns.rdataclass.CH


def test_declared_replayable_plugins_are_replayed_like_the_chain(tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    any
    hosts {
        10.0.0.1 db.example.org
    }
}
"""
    qs = [("db.example.org.", "A"), ("db.example.org.", "ANY"), ("nope.example.org.", "A")]
    assert fast_like_chain(corefile, tmp_path, qs) >= len(qs)


def test_forward_on_the_listener_passes_other_classes_on(tmp_path: Path) -> None:
    """forward (like proxy) opens other classes, as CoreDNS's EnableChaos: the upstream answers."""
    import dns.message

    from tests.upstreams import Upstream

    def empty(q: dns.message.Message, proto: str) -> list[dns.message.Message]:
        return [dns.message.make_response(q)]

    with Upstream(empty) as up:
        corefile = f".:@PORT@ {{\n    bind 127.0.0.1\n    forward . {up.addr}\n}}\n"
        with serve(corefile, tmp_path) as srv:
            for qclass in ("CH", "HS", "IN"):
                r = srv.query("version.bind.", "TXT", qclass)
                assert r.rcode() == dns.rcode.NOERROR, qclass


@pytest.mark.parametrize(
    ("rules", "question"),
    [
        ("rewrite name exact alias.example.org. db.example.org.", ("alias.example.org.", "A")),
        ("rewrite name suffix .corp.example. .example.org. answer auto", ("db.corp.example.", "A")),
        ('template IN A tmpl.test {\n        answer "{{ .Name }} 60 IN A 10.9.9.9"\n    }',
         ("x.tmpl.test.", "A")),
        ("template ANY AAAA {\n        rcode NOERROR\n    }", ("db.example.org.", "AAAA")),
    ],
    ids=["rewrite-exact", "rewrite-answer-auto", "template-answer", "template-rcode"],
)  # fmt: skip
def test_rewritten_and_templated_answers_are_replayed(
    tmp_path: Path, rules: str, question: tuple[str, str]
) -> None:
    """Their answers depend only on the rules: the fast path replays them, byte for byte."""
    corefile = f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    {rules}
    hosts {{
        10.0.0.1 db.example.org
    }}
}}
"""
    assert fast_like_chain(corefile, tmp_path, [question]) >= 1


@pytest.mark.parametrize("name", sorted(registry.AVAILABLE))
def test_every_plugin_has_its_page_and_readme_row(name: str) -> None:
    assert (ROOT / "docs" / "plugins" / f"{name}.md").is_file()
    assert f"| [{name}](docs/plugins/{name}.md) |" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("extra", ["", "chaos"])
def test_classes_as_the_reference_coredns(tmp_path: Path, extra: str) -> None:
    """The same questions in classes IN, CH and HS get the same rcode and records from the
    reference CoreDNS, with and without a plugin that opens other classes on the listener."""
    from tests.coredns_ref import binary, serve_coredns

    if binary() is None:
        pytest.skip("the reference CoreDNS binary is not available")
    corefile = HOSTS.format(extra=extra).replace("    whoami\n", "")
    questions = [("db.example.org.", "A"), ("version.bind.", "TXT"), ("nope.example.org.", "A")]
    (tmp_path / "ours").mkdir()
    with (
        serve(corefile, tmp_path / "ours") as ours,
        serve_coredns(corefile, tmp_path / "ref") as ref,
    ):
        for name, qtype in questions:
            for qclass in ("IN", "CH", "HS"):
                got, want = ours.query(name, qtype, qclass), ref.query(name, qtype, qclass)
                assert got.rcode() == want.rcode(), (name, qtype, qclass)
                mine = [rr.to_text() for rr in got.answer]
                theirs = [rr.to_text() for rr in want.answer]
                if qtype == "TXT":  # the version string names each server
                    mine, theirs = (
                        [m.rsplit(" ", 1)[0] for m in mine],
                        [t.rsplit(" ", 1)[0] for t in theirs],
                    )
                assert mine == theirs, (name, qtype, qclass)
