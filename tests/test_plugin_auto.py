"""auto: zones picked up from a directory, added, reloaded and removed; transfers; setup."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import Case, check, rrs, serve, setup_error, validate_block
from tests.xfr_client import records, transfer
from tests.zonefiles import EXAMPLE_NET, EXAMPLE_ORG, soa_serial

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    auto {
        directory zones
        reload 100ms
    }
    transfer {
        to *
    }
}
"""
WWW_ORG = "www.example.org. 3600 IN A 192.0.2.10"
WWW_NET = "www.example.net. 300 IN A 198.51.100.1"
NEW = "$ORIGIN new.test.\n@ 60 IN SOA ns hm 1 2 3 4 5\nwww 60 IN A 203.0.113.1\n"


def write_zones(tmp: Path) -> Path:
    zones = tmp / "zones"
    (zones / "sub").mkdir(parents=True)
    (zones / "db.example.org").write_text(EXAMPLE_ORG)
    (zones / "sub" / "db.example.net").write_text(EXAMPLE_NET)  # the walk is recursive
    (zones / "README").write_text("not a zone")
    return zones


def test_zones_come_change_and_go(tmp_path: Path) -> None:
    zones = write_zones(tmp_path)
    with serve(COREFILE, tmp_path) as s:
        check(s, [
            Case("www.example.org.", "A", answer=[WWW_ORG], flags={"AA"}),
            Case("www.example.net.", "A", answer=[WWW_NET], flags={"AA"}),
            Case("nope.example.net.", "A", dns.rcode.NXDOMAIN),
            # In the block's zone but no zone file: no next plugin, REFUSED.
            Case("www.new.test.", "A", dns.rcode.REFUSED),
        ])  # fmt: skip
        (zones / "db.new.test").write_text(NEW)
        s.wait_output(r"plugin/auto: Inserting zone `new.test.' from: .*db.new.test")
        check(s, [Case("www.new.test.", "A", answer=["www.new.test. 60 IN A 203.0.113.1"])])
        (zones / "db.example.org").write_text(
            soa_serial(EXAMPLE_ORG.replace("192.0.2.10", "192.0.2.11"), 2026120102)
        )
        s.wait_output(r'plugin/auto: Successfully reloaded zone "example.org."')
        check(s, [Case("www.example.org.", "A", answer=["www.example.org. 3600 IN A 192.0.2.11"])])
        (zones / "db.new.test").unlink()
        s.wait_output(r"plugin/auto: Deleting zone `new.test.'")
        check(s, [Case("www.new.test.", "A", dns.rcode.REFUSED)])
        # The transfer plugin finds auto's zones.
        msgs = transfer(s.port, dns.message.make_query("example.net.", "AXFR"))
        assert len(records(msgs)) == 4 and "SOA" in records(msgs)[0]


def test_bad_file_is_skipped(tmp_path: Path) -> None:
    zones = write_zones(tmp_path)
    (zones / "db.bad.test").write_text("$ORIGIN bad.test.\n@ 60 IN SOA ns hm 1 2 3 4 5\nx IN A 1\n")
    with serve(COREFILE, tmp_path) as s:
        s.wait_output(r"\[WARNING\] plugin/auto: Parse zone `bad.test.': .*db.bad.test:3")
        check(s, [
            Case("x.bad.test.", "A", dns.rcode.REFUSED),
            Case("www.example.org.", "A", answer=[WWW_ORG]),
        ])  # fmt: skip


def test_regexp_template_and_zones(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.org.zone").write_text(EXAMPLE_ORG)
    (zones / "example.org.zone.bak").write_text(EXAMPLE_ORG.replace("192.0.2.10", "10.0.0.1"))
    (zones / "example.net.zone").write_text(EXAMPLE_NET)
    corefile = r"""
.:@PORT@ {
    bind 127.0.0.1
    auto example.org {
        directory zones ^(.*)\.zone$ {1}
    }
    whoami
}
"""
    with serve(corefile, tmp_path) as s:
        check(s, [Case("www.example.org.", "A", answer=[WWW_ORG])])
        # example.net is loaded but outside the plugin's zones: whoami answers it.
        r = s.query("www.example.net.", "A")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.additional


def test_same_answers_as_coredns(tmp_path: Path) -> None:
    write_zones(tmp_path)
    questions = [("www.example.org.", "A"), ("alias.example.org.", "A"), ("example.net.", "NS"),
                 ("ext.example.org.", "A"), ("nope.example.net.", "A"), ("x.new.test.", "A"),
                 ("example.org.", "AXFR")]  # fmt: skip
    with serve(COREFILE, tmp_path) as ours, serve_coredns(COREFILE, tmp_path) as ref:
        for qname, qtype in questions:
            a, b = ours.query(qname, qtype), ref.query(qname, qtype)
            assert (a.rcode(), a.flags, rrs(a.answer), rrs(a.authority), rrs(a.additional)) == (
                b.rcode(), b.flags, rrs(b.answer), rrs(b.authority), rrs(b.additional)
            ), f"{qname} {qtype}"  # fmt: skip


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("auto {\n    directory\n  }", 3, "wrong argument count"),
        ("auto {\n    directory . db\\..*\n  }", 3, "wrong argument count"),
        ("auto {\n    directory . db\\..* {1}\n  }", 3, "Need at least one sub expression"),
        ("auto {\n    directory . db\\.(.* {1}\n  }", 3, "error parsing regexp"),
        ("auto {\n    directory . a b c d\n  }", 3, "wrong argument count"),
        ("auto {\n    reload\n  }", 3, "reload duration value is expected"),
        ("auto {\n    reload -1s\n  }", 3, "invalid duration"),
        ("auto {\n    bogus\n  }", 3, "unknown property 'bogus'"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_missing_directory_is_a_warning(tmp_path: Path) -> None:
    code, err, conf = validate_block(tmp_path, "  auto {\n    directory nothere\n  }\n")
    assert code == 0 and f"{conf}:3 - plugin/auto: Directory does not exist: nothere" in err, err
