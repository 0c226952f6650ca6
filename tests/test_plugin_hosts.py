"""hosts: answers from a hosts file and inline lines, NODATA/SERVFAIL, PTR, reload, metrics."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.harness import Case, Server, check, rrs, run_cli, serve

HOSTS_FILE = """\
# a comment line
10.0.0.1   example.org alias.example.org   # trailing comment
fd00::1    example.org
fd00::2    v6only.example.org
::FFFF:10.0.0.2 mapped.example.org
fe80::1%eth0 zoned.example.org
10.0.0.9   outside.test
10.1.1.1   host.example.net
# 10.0.0.8 hidden.example.org
bogus      nothing.example.org
10.0.0.10
"""

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    hosts hosts.txt example.org example.net {
        10.0.0.5 inline.example.org example.org
        fd00::5 inline.example.org
        ttl 300
    }
    whoami
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hosts")
    with serve(COREFILE, tmp, files={"hosts.txt": HOSTS_FILE}) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    """Every case over UDP and over TCP."""
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def test_table(srv: Server) -> None:
    nodata = {"answer": [], "flags": {"AA"}}
    check(
        srv,
        both(
            [
                # File and inline entries for one name are merged, file first.
                Case(
                    "example.org.",
                    "A",
                    answer=["example.org. 300 IN A 10.0.0.1", "example.org. 300 IN A 10.0.0.5"],
                    flags={"AA"},
                ),
                Case("alias.example.org.", "A", answer=["alias.example.org. 300 IN A 10.0.0.1"]),
                Case("example.org.", "AAAA", answer=["example.org. 300 IN AAAA fd00::1"]),
                Case(
                    "inline.example.org.",
                    "AAAA",
                    answer=["inline.example.org. 300 IN AAAA fd00::5"],
                ),
                Case("host.example.net.", "A", answer=["host.example.net. 300 IN A 10.1.1.1"]),
                # IPv4-mapped IPv6 is IPv4; an IPv6 zone index is dropped.
                Case("mapped.example.org.", "A", answer=["mapped.example.org. 300 IN A 10.0.0.2"]),
                Case("mapped.example.org.", "AAAA", **nodata),  # type: ignore[arg-type]
                Case(
                    "zoned.example.org.", "AAAA", answer=["zoned.example.org. 300 IN AAAA fe80::1"]
                ),
                # The name exists with another type: NODATA.
                Case("example.org.", "MX", **nodata),  # type: ignore[arg-type]
                Case("example.org.", "TXT", **nodata),  # type: ignore[arg-type]
                Case("v6only.example.org.", "A", **nodata),  # type: ignore[arg-type]
                # No such name (comments and bad lines included): SERVFAIL, as CoreDNS.
                Case("missing.example.org.", "A", rcode=dns.rcode.SERVFAIL, no_flags={"AA"}),
                Case("hidden.example.org.", "A", rcode=dns.rcode.SERVFAIL),
                Case("nothing.example.org.", "A", rcode=dns.rcode.SERVFAIL),
                Case("missing.example.net.", "MX", rcode=dns.rcode.SERVFAIL),
                # Reverse lookups, for entries inside the zones only.
                Case(
                    "1.0.0.10.in-addr.arpa.",
                    "PTR",
                    answer=[
                        "1.0.0.10.in-addr.arpa. 300 IN PTR example.org.",
                        "1.0.0.10.in-addr.arpa. 300 IN PTR alias.example.org.",
                    ],
                    flags={"AA"},
                ),
                Case(
                    "5.0.0.10.in-addr.arpa.",
                    "PTR",
                    answer=[
                        "5.0.0.10.in-addr.arpa. 300 IN PTR inline.example.org.",
                        "5.0.0.10.in-addr.arpa. 300 IN PTR example.org.",
                    ],
                ),
                Case(
                    "2.0.0.10.in-addr.arpa.",
                    "PTR",
                    answer=["2.0.0.10.in-addr.arpa. 300 IN PTR mapped.example.org."],
                ),
                Case(
                    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
                    "PTR",
                    answer=[
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
                        " 300 IN PTR example.org."
                    ],
                ),
            ]
        ),
    )


def _went_to_whoami(srv: Server, name: str, rdtype: str, proto: str = "udp") -> bool:
    r = srv.query(name, rdtype, proto=proto)
    return (
        r.rcode() == dns.rcode.NOERROR
        and not r.answer
        and any(rrset.rdtype == dns.rdatatype.SRV for rrset in r.additional)
    )


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_what_goes_to_the_next_plugin(srv: Server, proto: str) -> None:
    # A name outside ZONES, even one in the file.
    assert _went_to_whoami(srv, "outside.test.", "A", proto)
    assert _went_to_whoami(srv, "elsewhere.test.", "AAAA", proto)
    # PTR with no match always goes on: unknown address, entry outside ZONES, not a reverse name.
    assert _went_to_whoami(srv, "99.0.0.10.in-addr.arpa.", "PTR", proto)
    assert _went_to_whoami(srv, "9.0.0.10.in-addr.arpa.", "PTR", proto)
    assert _went_to_whoami(srv, "example.org.", "PTR", proto)


def test_names_are_case_insensitive(srv: Server) -> None:
    r = srv.query("ExAmPlE.OrG.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert {rd.to_text() for rd in r.answer[0]} == {"10.0.0.1", "10.0.0.5"}
    assert r.answer[0].name == dns.name.from_text("example.org.")
    r = srv.query("5.0.0.10.IN-ADDR.ARPA.", "PTR")
    assert {rd.to_text() for rd in r.answer[0]} == {"inline.example.org.", "example.org."}


def test_defaults_zones_to_the_server_block(tmp_path: Path) -> None:
    corefile = """
example.org:@PORT@ 10.0.0.0/24:@PORT@ {
    bind 127.0.0.1
    hosts hosts.txt
}
"""
    files = {"hosts.txt": "10.0.0.1 a.example.org\n10.0.0.2 a.other.test\n"}
    with serve(corefile, tmp_path, files=files) as s:
        check(
            s,
            [
                Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.0.0.1"]),
                Case(
                    "1.0.0.10.in-addr.arpa.",
                    "PTR",
                    answer=["1.0.0.10.in-addr.arpa. 3600 IN PTR a.example.org."],
                ),
            ],
        )
        # Names outside the block's zones are not loaded, so not reversed either.
        r = s.query("2.0.0.10.in-addr.arpa.", "PTR")
        assert r.rcode() == dns.rcode.SERVFAIL  # no next plugin after hosts
        assert not r.answer


def test_fallthrough(tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.0.0.1 a.example.org
        10.0.0.2 b.example.net
        fallthrough example.net
    }
    whoami
}
"""
    with serve(corefile, tmp_path) as s:
        # The file (/etc/hosts) may hold anything; only our names are asserted.
        check(s, [Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.0.0.1"])])
        assert _went_to_whoami(s, "missing.example.net.", "A")
        assert _went_to_whoami(s, "missing.example.net.", "A", "tcp")
        check(s, [Case("missing.example.org.", "A", rcode=dns.rcode.SERVFAIL)])
        # NODATA is an answer, not a miss: no fallthrough.
        check(s, [Case("b.example.net.", "MX", answer=[], flags={"AA"})])


def test_no_reverse(tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.0.0.1 a.example.org
        no_reverse
    }
    whoami
}
"""
    with serve(corefile, tmp_path) as s:
        check(s, [Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.0.0.1"])])
        assert _went_to_whoami(s, "1.0.0.10.in-addr.arpa.", "PTR")


def _metric(body: str, name: str) -> float | None:
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _replace(path: Path, text: str) -> None:
    """Rewrite atomically so the server never reads a half-written file."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_file_reload_and_metrics(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    hosts hosts.txt example.org {
        10.0.0.5 c.example.org
        reload 100ms
    }
}
"""
    srv = server_factory(corefile, files={"hosts.txt": "10.0.0.1 a.example.org b.example.org\n"})
    path = tmp_path / "hosts.txt"

    def a(name: str) -> list[str]:
        r = srv.query(name, "A")
        return sorted(rd.to_text() for rrset in r.answer for rd in rrset) or [
            dns.rcode.to_text(r.rcode())
        ]

    assert a("a.example.org.") == ["10.0.0.1"]
    body = srv.metrics()
    # 2 names + 2 reverse names from the file, 1 + 1 inline.
    assert _metric(body, "coredns_hosts_entries") == 6
    first_ts = _metric(body, "coredns_hosts_reload_timestamp_seconds")
    assert first_ts == pytest.approx(path.stat().st_mtime, abs=1e-3)

    _replace(path, "10.0.0.2 a.example.org\n10.0.0.3 new.example.org\n")
    assert _wait(lambda: a("a.example.org.") == ["10.0.0.2"]), srv.output
    assert a("new.example.org.") == ["10.0.0.3"]
    assert a("b.example.org.") == ["SERVFAIL"]
    assert a("c.example.org.") == ["10.0.0.5"]  # inline entries stay
    body = srv.metrics()
    assert _metric(body, "coredns_hosts_entries") == 6  # 2 + 2 from the file, 1 + 1 inline
    ts = _metric(body, "coredns_hosts_reload_timestamp_seconds")
    assert ts is not None and first_ts is not None and ts >= first_ts
    assert ts == pytest.approx(path.stat().st_mtime, abs=1e-3)

    # A deleted file keeps the entries last read.
    path.unlink()
    time.sleep(0.3)  # three reload periods
    assert a("new.example.org.") == ["10.0.0.3"]
    _replace(path, "10.0.0.4 back.example.org\n")
    assert _wait(lambda: a("back.example.org.") == ["10.0.0.4"]), srv.output


def test_reload_zero_disables(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    """`reload 0` means never, not a zero-length period (which would re-read at once)."""
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    hosts hosts.txt {
        reload 0
    }
}
"""
    srv = server_factory(corefile, files={"hosts.txt": "10.0.0.1 a.example.org\n"})
    _replace(tmp_path / "hosts.txt", "10.0.0.2 a.example.org\n")
    time.sleep(0.5)
    check(srv, [Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.0.0.1"])])


# ---- setup -------------------------------------------------------------------------------


def _validate(tmp_path: Path, body: str, cwd: Path | None = None) -> tuple[int, str, Path]:
    conf = tmp_path / "Corefile"
    conf.write_text(body)
    r = run_cli("-conf", str(conf), "-validate", cwd=cwd)
    return r.returncode, r.stderr, conf


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("hosts {\n  ttl\n}", 3, "ttl needs a time in second"),
        ("hosts {\n  ttl abc\n}", 3, "ttl needs a number of second"),
        ("hosts {\n  ttl 0\n}", 3, "ttl provided is invalid"),
        ("hosts {\n  ttl 65536\n}", 3, "ttl provided is invalid"),
        ("hosts {\n  reload\n}", 3, "reload needs a duration"),
        ("hosts {\n  reload 1s 2s\n}", 3, "reload needs a duration"),
        ("hosts {\n  reload soon\n}", 3, "invalid duration for reload 'soon'"),
        ("hosts {\n  reload -1s\n}", 3, "invalid negative duration for reload '-1s'"),
        # After fallthrough, a line that is no option is an error, not an inline entry.
        ("hosts {\n  fallthrough\n  10.0.0.1 a.example.org\n}", 4, "unknown property"),
        ("hosts /etc/hosts/x", 2, "unable to access hosts file"),
        ("hosts\n  hosts", 3, "can only be used once"),
        ("hosts {\n  fallthrough_unsupported\n}", 3, "requires fallthrough"),
        ("hosts {\n  fallthrough\n  fallthrough_unsupported x\n}", 4, "wrong argument count"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    code, err, conf = _validate(tmp_path, f".:1053 {{\n  {block}\n}}\n")
    assert code == 1, err
    assert f"{conf}:{line}" in err
    assert message in err


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    body = """.:1053 {
  hosts {
    10.0.0.1 a.example.org
    fallthrough
  }
}
example.org:1054 10.0.0.0/24:1054 {
  hosts /etc/hosts example.org 10.0.0.0/24 {
    ttl 65535
    reload 300ms
    no_reverse
  }
}
"""
    code, err, _ = _validate(tmp_path, body)
    assert code == 0, err


def test_relative_file_is_taken_from_the_corefile_directory(tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    confdir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (confdir / "myhosts").write_text("10.0.0.1 a.example.org\n")
    code, err, _ = _validate(confdir, ".:1053 {\n  hosts myhosts\n}\n", cwd=elsewhere)
    assert code == 0, err
    assert "does not exist" not in err
    # A missing file is only a warning, naming the path it was looked for at.
    code, err, conf = _validate(confdir, ".:1053 {\n  hosts nohosts\n}\n", cwd=elsewhere)
    assert code == 0, err
    assert f"{conf}:2" in err
    assert f"File does not exist: {confdir / 'nohosts'}" in err


# ---- wildcard owners and fallthrough_unsupported ------------------------------------------

WILD_FILE = """\
192.168.1.10 *.example.org
fd00::10     *.example.org
192.168.1.11 a.example.org
fd00::12     b.example.org
192.168.1.13 *.example.net
192.168.1.14 x.example.net
192.168.1.15 *.sub.example.org
"""

WILD_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    hosts hosts.txt example.org example.net 168.192.in-addr.arpa {
        10.0.0.30 *.inline.example.org
        fallthrough example.net
        fallthrough_unsupported
    }
    whoami
}
"""

WILD_NAMES = [
    "a.example.org.", "b.example.org.", "apps.example.org.", "example.org.",
    "deep.apps.example.org.", "y.sub.example.org.", "sub.example.org.",
    "x.inline.example.org.", "*.example.org.", "x.example.net.", "other.example.net.",
    "a.b.example.net.", "10.1.168.192.in-addr.arpa.", "11.1.168.192.in-addr.arpa.",
    "15.1.168.192.in-addr.arpa.",
]  # fmt: skip


def test_wildcards(tmp_path: Path) -> None:
    (tmp_path / "hosts.txt").write_text(WILD_FILE)
    ttl = "3600 IN"
    with serve(WILD_COREFILE, tmp_path) as s:
        check(
            s,
            [
                Case("a.example.org.", "A", answer=[f"a.example.org. {ttl} A 192.168.1.11"]),
                # per address family: a.example.org has no AAAA of its own, the wildcard's
                Case("a.example.org.", "AAAA", answer=[f"a.example.org. {ttl} AAAA fd00::10"]),
                Case("b.example.org.", "A", answer=[f"b.example.org. {ttl} A 192.168.1.10"]),
                Case("apps.example.org.", "A", answer=[f"apps.example.org. {ttl} A 192.168.1.10"]),
                Case("apps.example.org.", "MX", answer=[], flags={"AA"}),  # NODATA
                Case("example.org.", "A", dns.rcode.SERVFAIL),  # not the wildcard's apex
                Case("deep.apps.example.org.", "A", dns.rcode.SERVFAIL),  # one label only
                Case(
                    "y.sub.example.org.", "A", answer=[f"y.sub.example.org. {ttl} A 192.168.1.15"]
                ),
                Case("sub.example.org.", "A", answer=[f"sub.example.org. {ttl} A 192.168.1.10"]),
                Case(
                    "x.inline.example.org.",
                    "A",
                    answer=[f"x.inline.example.org. {ttl} A 10.0.0.30"],
                ),
                Case("*.example.org.", "A", answer=[f"*.example.org. {ttl} A 192.168.1.10"]),
                Case("x.example.net.", "A", answer=[f"x.example.net. {ttl} A 192.168.1.14"]),
                Case("y.example.net.", "A", answer=[f"y.example.net. {ttl} A 192.168.1.13"]),
                Case(
                    "11.1.168.192.in-addr.arpa.",
                    "PTR",
                    answer=[f"11.1.168.192.in-addr.arpa. {ttl} PTR a.example.org."],
                ),
            ],
        )
        # Wildcard entries have no PTR: whoami answers.
        assert _went_to_whoami(s, "10.1.168.192.in-addr.arpa.", "PTR")
        # fallthrough_unsupported: other types go on within the fallthrough zones only.
        assert _went_to_whoami(s, "x.example.net.", "TXT")
        assert _went_to_whoami(s, "a.b.example.net.", "A")
        check(s, [Case("a.example.org.", "TXT", answer=[], flags={"AA"})])


def test_wildcards_as_coredns(tmp_path: Path) -> None:
    from tests import coredns_ref

    coredns_ref.require()

    def norm(r: dns.message.Message) -> tuple[object, ...]:
        def section(sec: list[dns.rrset.RRset]) -> list[str]:
            out = []
            for line in rrs(sec):
                f = line.split()
                if f[3] == "SRV" and f[-1] == ".":
                    f[-2] = "PORT"  # whoami: the client's port
                out.append(" ".join(f))
            return out

        return (r.rcode(), r.flags, section(r.answer), section(r.authority), section(r.additional))

    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "hosts.txt").write_text(WILD_FILE)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "hosts.txt").write_text(WILD_FILE)
    with (
        serve(WILD_COREFILE, tmp_path / "ours") as ours,
        coredns_ref.serve_coredns(WILD_COREFILE, tmp_path / "ref") as ref,
    ):
        diffs = []
        for name in WILD_NAMES:
            for rdtype in ("A", "AAAA", "PTR", "TXT"):
                a, b = norm(ours.query(name, rdtype)), norm(ref.query(name, rdtype))
                if a != b:
                    diffs.append(f"{name} {rdtype}:\n  ours {a}\n  ref  {b}")
        assert not diffs, "\n".join(diffs)
