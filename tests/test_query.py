"""`clusterdns query`: the example cluster answered in-process, printed like dig, with --trace.

The example Corefile is used as it is, except that `forward . /etc/resolv.conf` points at a
scripted upstream, so the answers do not depend on this machine's resolver. The in-process
answers are compared with the real server's answers over UDP.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import ROOT, Server, run_cli, start
from tests.k8s_apiserver import ApiServer, kubeconfig, namespace, service
from tests.upstreams import Upstream, serve_ip


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/Corefile in a directory of its own (with cluster/), forwarding to a stub."""
    tmp = tmp_path_factory.mktemp("example")
    (tmp / "cluster").symlink_to(ROOT / "examples" / "cluster")
    with Upstream(serve_ip("93.184.216.34")) as up:
        text = (ROOT / "examples" / "Corefile").read_text()
        assert "forward . /etc/resolv.conf" in text
        (tmp / "Corefile").write_text(text.replace("/etc/resolv.conf", up.addr))
        yield tmp


def query(conf: Path, *args: str) -> tuple[int, str, str]:
    r = run_cli("query", *args, "-conf", str(conf / "Corefile"))
    return r.returncode, r.stdout, r.stderr


def trace_lines(out: str) -> list[str]:
    """The trace's plugin lines, whitespace squeezed: `plugin verdict`."""
    lines = out.split("\n\n", 1)[0].splitlines()
    assert lines[0].startswith(";; TRACE "), out
    return [" ".join(x[2:].split()) for x in lines[2:]]


def test_prints_like_dig(example: Path) -> None:
    rc, out, _ = query(example, "web.demo.svc.cluster.local")
    assert rc == 0
    assert re.search(r"^;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: \d+$", out, re.M)
    assert ";; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1" in out
    assert "; EDNS: version: 0, flags:; udp: 1232" in out
    assert ";web.demo.svc.cluster.local.\t\tIN\tA" in out
    assert "\n;; ANSWER SECTION:\nweb.demo.svc.cluster.local.\t30\tIN\tA\t10.96.100.10\n" in out
    assert re.search(
        r"^;; SERVER: .*Corefile dns://127\.0\.0\.1:1053 \(in-process, udp\)$", out, re.M
    )
    assert re.search(r"^;; MSG SIZE  rcvd: \d+$", out, re.M)
    rc, out, _ = query(example, "nope.demo.svc.cluster.local", "AAAA")
    assert "status: NXDOMAIN" in out
    assert re.search(
        r"^;; AUTHORITY SECTION:\ncluster\.local\.\t30\tIN\tSOA\tns\.dns\.cluster\.local\. ",
        out,
        re.M,
    )


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (("kube-dns.kube-system.svc.cluster.local",), ["10.96.0.10"]),
        (("web.demo.svc.cluster.local", "AAAA"), ["fd00:10:96::100:a"]),
        (
            ("_https._tcp.web.demo.svc.cluster.local", "SRV"),
            ["0 50 443 web.demo.svc.cluster.local."],
        ),
        (("db.demo.svc.cluster.local",), ["10.244.1.20", "10.244.2.20"]),
        (("-x", "10.96.0.10"), ["kube-dns.kube-system.svc.cluster.local."]),
        (("dns-version.cluster.local", "TXT"), ['"1.1.0"']),
        (("db.example.org",), ["10.0.0.10"]),
        (("www.example.com",), ["93.184.216.34"]),
        (("search.demo.svc.cluster.local", "A"), ["www.example.com.", "93.184.216.34"]),
    ],
)
def test_short_answers_match_the_example(
    example: Path, args: tuple[str, ...], want: list[str]
) -> None:
    rc, out, _ = query(example, *args, "--short")
    assert rc == 0
    assert sorted(out.split("\n")[:-1]) == sorted(want)


def _records(lines: list[str]) -> list[tuple[str, int, str]]:
    """(owner, ttl, type and data) per record line; SOA serials left out (they are times)."""
    out = []
    for line in lines:
        name, ttl, rest = line.split("\t", 2)
        data = " ".join(rest.split())
        out.append((name, int(ttl), re.sub(r"(SOA \S+ \S+) \d+", r"\1", data)))
    return sorted(out)


def test_same_answers_as_the_running_server(example: Path, tmp_path: Path) -> None:
    text = (example / "Corefile").read_text()
    (tmp_path / "cluster").symlink_to(ROOT / "examples" / "cluster")
    # Every fixed port becomes a free one: the suite runs beside `make run`.
    for fixed, free in ((":1053", ":@PORT@"), (":8080", ":@P1@"), (":8181", ":@P2@"),
                        (":9153", ":@P3@")):  # fmt: skip
        text = text.replace(fixed, free)
    srv: Server = start(text, tmp_path)
    conf = tmp_path / "Corefile"  # the server's, with its port: the same blocks are picked
    began = time.monotonic()
    try:
        names = [("web.demo.svc.cluster.local", "A"), ("db.demo.svc.cluster.local", "A"),
                 ("search.demo.svc.cluster.local", "A"), ("nope.demo.svc.cluster.local", "A"),
                 ("db.example.org", "AAAA"), ("cluster.local", "SOA"), ("www.example.com", "A"),
                 ("whoami.example.org", "A")]  # fmt: skip
        for name, rdtype in names:
            wire = srv.query(name, rdtype)
            r = run_cli("query", name, rdtype, "-conf", str(conf), "--from", "127.0.0.1:5353")
            assert f"status: {dns.rcode.to_text(wire.rcode())}," in r.stdout
            got = _records([ln for ln in r.stdout.splitlines() if ln and not ln.startswith(";")])
            want = _records([f"{rr.name}\t{rr.ttl}\tIN {rr.rdtype.name} {rd.to_text()}"
                             for sec in (wire.answer, wire.authority, wire.additional)
                             for rr in sec for rd in rr])  # fmt: skip
            if name.startswith("whoami"):  # the client's port differs, and only that
                got = [g for g in got if "SRV" not in g[2]]
                want = [w for w in want if "SRV" not in w[2]]
            assert [(n, d) for n, _, d in got] == [(n, d) for n, _, d in want], name
            # The in-process answer is fresh; the server's may come from its cache (an
            # ExternalName's target cached earlier in this test), aged since then.
            aged = time.monotonic() - began + 1
            assert all(0 <= g[1] - w[1] <= aged for g, w in zip(got, want, strict=True)), name
    finally:
        srv.stop()


def test_trace_hosts_answers(example: Path) -> None:
    rc, out, _ = query(example, "db.example.org", "--trace")
    assert rc == 0
    assert out.splitlines()[1].startswith(";;   server block example.org:1053 (")
    assert trace_lines(out) == ["errors passed on", "log passed on",
                                "hosts answered NOERROR, 1 answer"]  # fmt: skip
    assert "\n;; ANSWER SECTION:\ndb.example.org.\t60\tIN\tA\t10.0.0.10" in out


def test_trace_hosts_falls_through_to_whoami(example: Path) -> None:
    _, out, _ = query(example, "whoami.example.org", "--trace", "--from", "10.1.2.3:4444", "--tcp")
    lines = trace_lines(out)
    assert lines[2] == "hosts fell through: name not in hosts"
    assert lines[3].startswith("whoami answered NOERROR, 2 additional, no data: whoami answers")
    assert "whoami.example.org.\t0\tIN\tA\t10.1.2.3" in out
    assert "_tcp.whoami.example.org.\t0\tIN\tSRV\t0 0 4444 ." in out


def test_trace_kubernetes_and_cache(example: Path) -> None:
    _, out, _ = query(example, "web.demo.svc.cluster.local", "--trace")
    lines = trace_lines(out)
    assert "cache passed on: cache miss" in lines
    assert lines[-1] == "kubernetes answered NOERROR, 1 answer"
    _, out, _ = query(example, "-x", "10.1.2.3", "--trace")
    lines = trace_lines(out)
    assert "kubernetes fell through: no such name in the cluster" in lines
    assert "loop passed on" in lines
    assert re.fullmatch(
        r"forward answered NOERROR, no data: answer from upstream 127\.0\.0\.1:\d+", lines[-1]
    )
    _, out, _ = query(example, "nope.demo.svc.cluster.local", "--trace")
    assert trace_lines(out)[-1] == (
        "kubernetes answered NXDOMAIN, 1 authority: no such name in the cluster"
    )


def test_trace_shows_nested_lookups(example: Path) -> None:
    """An ExternalName's target is resolved through the server again: shown indented."""
    _, out, _ = query(example, "search.demo.svc.cluster.local", "--trace")
    block = out.split("\n\n", 1)[0]
    assert ";;   kubernetes   answered NOERROR, 2 answers\n;;     -> www.example.com. A\n" in block
    assert re.search(
        r"^;;     forward      answered NOERROR, 1 answer: answer from upstream ", block, re.M
    )
    assert re.search(
        r"^;;     kubernetes   passed on: name outside the kubernetes plugin's zones$", block, re.M
    )


def test_trace_refused_and_no_next_plugin(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text("example.org:1053 {\n    hosts {\n        10.0.0.1 a.example.org\n"
                    "        fallthrough\n    }\n}\n")  # fmt: skip
    r = run_cli("query", "other.test", "--trace", "-conf", str(conf))
    assert r.returncode == 0
    assert ";;   no server block serves this name: REFUSED" in r.stdout
    assert "status: REFUSED" in r.stdout
    r = run_cli("query", "b.example.org", "--trace", "-conf", str(conf))
    assert trace_lines(r.stdout) == [
        "hosts passed on, but no plugin follows: SERVFAIL (no next plugin found): name not in hosts"
    ]
    assert "status: SERVFAIL" in r.stdout


def test_api_mode_connects(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    with ApiServer(token="t") as api:
        api.apply(namespace("default"), service("web", "default", cluster_ip="10.0.0.77"))
        kc.write_text(kubeconfig(api.url, token="t"))
        conf = tmp_path / "Corefile"
        conf.write_text(
            f".:1053 {{\n    kubernetes cluster.local {{\n        kubeconfig {kc}\n    }}\n}}\n"
        )
        r = run_cli("query", "web.default.svc.cluster.local", "--short", "-conf", str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "10.0.0.77\n"


@pytest.mark.parametrize(
    ("corefile", "args", "code", "error"),
    [
        (".:1053 {\n    whoami\n    nosuch\n}\n", ("a.",), 1, "Corefile:3 - "),
        (
            ".:1053 {\n    whoami\n}\n",
            ("a.", "NOTATYPE"),
            2,
            "'NOTATYPE' is neither a record type nor a class",
        ),
        (".:1053 {\n    whoami\n}\n", (), 2, "a NAME to look up is required"),
        (
            ".:1053 {\n    whoami\n}\n.:1054 {\n    whoami\n}\n",
            ("a.",),
            2,
            "no server block listens on port 53 (ports: 1053, 1054); use -p",
        ),
        (
            ".:1053 {\n    whoami\n}\n",
            ("a.", "--from", "nope"),
            2,
            "--from: 'nope' is not IP or IP:PORT",
        ),
    ],
)
def test_errors(
    tmp_path: Path, corefile: str, args: tuple[str, ...], code: int, error: str
) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(corefile)
    r = run_cli("query", *args, "-conf", str(conf))
    assert r.returncode == code
    assert error in r.stderr
    assert r.stdout == ""


def test_port_and_class_selection(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n    whoami\n}\n.:1054 {\n    chaos ClusterDNS-test\n}\n")
    r = run_cli("query", "version.bind", "TXT", "CH", "-p", "1054", "--short", "-conf", str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == '"ClusterDNS-test"\n'
    r = run_cli("query", "who.", "-p", "1053", "--short", "-conf", str(conf))
    assert r.returncode == 0 and r.stdout == ""  # whoami answers in the additional section


def test_main_command_line_still_works(tmp_path: Path) -> None:
    """The subcommands are dispatched before CoreDNS's single-dash flags, which still work."""
    r = run_cli("-version")
    assert r.returncode == 0 and r.stdout.startswith("ClusterDNS-")
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n    whoami\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
