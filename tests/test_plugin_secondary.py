"""secondary: a ClusterDNS pulling a zone by AXFR from another ClusterDNS's file plugin."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import Case, Server, check, free_port, rrs, serve, setup_error
from tests.xfr_client import records, transfer
from tests.zonefiles import EXAMPLE_ORG, soa_serial

PRIMARY = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org {
        reload 100ms
    }
    transfer {
        to *
    }
}
"""
SECONDARY = """
example.org:@PORT@ {
    bind 127.0.0.1
    secondary {
        transfer from 127.0.0.1:PRIMARY
    }
    transfer {
        to *
    }
}
"""
#: refresh and retry 1s, so that a test sees a refresh.
FAST = EXAMPLE_ORG.replace("2026120101 7200 3600 1209600 300", "2026120101 1 1 1209600 300")
QUESTIONS = [("www.example.org.", "A"), ("example.org.", "NS"), ("example.org.", "SOA"),
             ("alias.example.org.", "A"), ("nope.example.org.", "A"), ("x.wild.example.org.", "A"),
             ("deep.sub.example.org.", "A"), ("foo.dn.example.org.", "CNAME"),
             ("_sip._tcp.example.org.", "SRV")]  # fmt: skip


def summary(s: Server, qname: str, qtype: str) -> tuple[object, ...]:
    r = s.query(qname, qtype)
    return r.rcode(), r.flags, rrs(r.answer), rrs(r.authority), rrs(r.additional)


def test_secondary_serves_and_refreshes(tmp_path: Path) -> None:
    p_dir, s_dir = tmp_path / "p", tmp_path / "s"
    p_dir.mkdir()
    s_dir.mkdir()
    with serve(PRIMARY, p_dir, files={"db.example.org": FAST}) as primary:
        corefile = SECONDARY.replace("PRIMARY", str(primary.port))
        with serve(corefile, s_dir) as sec:
            sec.wait_output(r"plugin/file: Transferred: example.org. from 127.0.0.1:\d+")
            for qname, qtype in QUESTIONS:
                assert summary(sec, qname, qtype) == summary(primary, qname, qtype), qname
            # The transfer plugin passes the secondary zone on.
            msgs = transfer(sec.port, dns.message.make_query("example.org.", "AXFR"))
            ref = transfer(primary.port, dns.message.make_query("example.org.", "AXFR"))
            assert sorted(records(msgs)) == sorted(records(ref))
            # A new serial on the primary reaches the secondary at its SOA refresh.
            (p_dir / "db.example.org").write_text(
                soa_serial(FAST.replace("192.0.2.10", "192.0.2.11"), 2026120102)
            )
            primary.wait_output("Successfully reloaded")
            sec.wait_output(r"Transferred: example.org.(.|\n)*Transferred: example.org.", 15)
            check(sec, [Case("www.example.org.", "A",
                             answer=["www.example.org. 3600 IN A 192.0.2.11"], flags={"AA"})])  # fmt: skip


def test_servfail_until_the_primary_answers(tmp_path: Path) -> None:
    port = free_port()
    p_dir, s_dir = tmp_path / "p", tmp_path / "s"
    p_dir.mkdir()
    s_dir.mkdir()
    with serve(SECONDARY.replace("PRIMARY", str(port)), s_dir) as sec:
        check(sec, [Case("www.example.org.", "A", dns.rcode.SERVFAIL)])
        sec.wait_output(r"plugin/secondary: All 'example.org.' masters failed to transfer")
        primary = (
            PRIMARY.replace("example.org:@PORT@", f"example.org:{port}")
            + """
.:@PORT@ {
    bind 127.0.0.1
    whoami
}
"""
        )
        with serve(primary, p_dir, files={"db.example.org": EXAMPLE_ORG}):
            sec.wait_output(r"Transferred: example.org.", 15)
            check(sec, [Case("www.example.org.", "A",
                             answer=["www.example.org. 3600 IN A 192.0.2.10"])])  # fmt: skip


def test_coredns_secondary_takes_our_transfer(tmp_path: Path) -> None:
    """The reference CoreDNS as the secondary of a ClusterDNS primary: same answers."""
    p_dir, s_dir = tmp_path / "p", tmp_path / "s"
    p_dir.mkdir()
    with serve(PRIMARY, p_dir, files={"db.example.org": EXAMPLE_ORG}) as primary:
        corefile = SECONDARY.replace("PRIMARY", str(primary.port))
        with serve_coredns(corefile, s_dir) as ref:
            ref.wait_output(r"Transferred: example.org.")
            for qname, qtype in QUESTIONS:
                assert summary(ref, qname, qtype) == summary(primary, qname, qtype), qname


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("secondary", 2, "secondary zones require a transfer from property"),
        ("secondary {\n    transfer\n  }", 3, "wrong argument count"),
        ("secondary {\n    transfer from\n  }", 3, "wrong argument count"),
        ("secondary {\n    transfer to 10.0.0.1\n  }", 3, "unknown property to"),
        ("secondary {\n    transfer from *\n  }", 3, "can't use '*' in transfer from"),
        ("secondary {\n    transfer from example.net\n  }", 3, "must specify an IP address"),
        ("secondary {\n    transfer from 10.0.0.1\n    catalog\n  }", 4, "not supported"),
        ("secondary {\n    bogus\n  }", 3, "unknown property 'bogus'"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)
