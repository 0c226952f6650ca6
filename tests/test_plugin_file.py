"""file: authoritative answers from a zone file; reload; setup errors; CoreDNS differential."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import Case, Server, check, rrs, serve, setup_error, validate_block
from tests.zonefiles import EXAMPLE_NET, EXAMPLE_ORG, soa_serial

COREFILE = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org
}
example.net:@PORT@ {
    bind 127.0.0.1
    file db.example.net
}
"""
FILES = {"db.example.org": EXAMPLE_ORG, "db.example.net": EXAMPLE_NET}

SOA = (
    "example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. "
    "2026120101 7200 3600 1209600 300"
)
NS = ["example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.other.net."]
WWW_A = "www.example.org. 3600 IN A 192.0.2.10"
SUB_NS = ["sub.example.org. 3600 IN NS ns.sub.example.org.",
          "sub.example.org. 3600 IN NS ns.elsewhere.net."]  # fmt: skip
SUB_GLUE = ["ns.sub.example.org. 3600 IN A 192.0.2.200",
            "ns.sub.example.org. 3600 IN AAAA 2001:db8::200"]  # fmt: skip
AA = {"AA"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("file"), files=FILES) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def ok(qname: str, qtype: str, answer: list[str], ns: list[str] | None = None,
       extra: list[str] | None = None) -> Case:  # fmt: skip
    return Case(qname, qtype, answer=answer, ns=NS if ns is None else ns,
                extra=[] if extra is None else extra, flags=AA)  # fmt: skip


def nodata(qname: str, qtype: str) -> Case:
    return Case(qname, qtype, answer=[], ns=[SOA], extra=[], flags=AA)


def nxdomain(qname: str, qtype: str = "A", answer: list[str] | None = None) -> Case:
    return Case(qname, qtype, dns.rcode.NXDOMAIN, answer=answer or [], ns=[SOA], flags=AA)


def test_exact_answers(srv: Server) -> None:
    check(srv, both([
        Case("example.org.", "SOA", answer=[SOA], ns=NS, extra=[], flags=AA),
        Case("example.org.", "NS", answer=NS, ns=[],
             extra=["ns1.example.org. 3600 IN A 192.0.2.53"], flags=AA),
        ok("example.org.", "MX", ["example.org. 3600 IN MX 10 mail.example.org."],
           extra=["mail.example.org. 3600 IN A 192.0.2.25"]),
        ok("www.example.org.", "A", [WWW_A]),
        ok("www.example.org.", "AAAA", ["www.example.org. 3600 IN AAAA 2001:db8::10"]),
        ok("txt.example.org.", "TXT", ['txt.example.org. 3600 IN TXT "hello" "world"']),
        ok("upper.example.org.", "A", ["upper.example.org. 3600 IN A 192.0.2.77"]),
        ok("_sip._tcp.example.org.", "SRV",
           ["_sip._tcp.example.org. 3600 IN SRV 0 5 5060 mail.example.org."],
           extra=["mail.example.org. 3600 IN A 192.0.2.25"]),
    ]))  # fmt: skip


def test_negative_answers(srv: Server) -> None:
    check(srv, both([
        nxdomain("nope.example.org."),
        nxdomain("deep.nope.example.org.", "AAAA"),
        nodata("www.example.org.", "TXT"),
        nodata("example.org.", "A"),
        nodata("example.org.", "ANY"),
        # Empty non-terminals exist: NOERROR without records.
        nodata("b.c.example.org.", "A"),
        nodata("c.example.org.", "A"),
    ]))  # fmt: skip


def test_cnames(srv: Server) -> None:
    alias = "alias.example.org. 3600 IN CNAME www.example.org."
    check(srv, both([
        ok("alias.example.org.", "A", [alias, WWW_A]),
        ok("alias2.example.org.", "A",
           ["alias2.example.org. 3600 IN CNAME alias.example.org.", alias, WWW_A]),
        ok("alias.example.org.", "CNAME", [alias]),
        # Out of the zone: resolved through the server (example.net is served here too).
        Case("ext.example.org.", "A", answer=[
            "ext.example.org. 3600 IN CNAME www.example.net.",
            "www.example.net. 300 IN A 198.51.100.1"], ns=NS, flags=AA),
        # A target missing in the zone: NXDOMAIN, the CNAME kept.
        nxdomain("dangling.example.org.", "A",
                 ["dangling.example.org. 3600 IN CNAME nothere.example.org."]),
        # A target under a delegation: the CNAME and a referral.
        Case("tosub.example.org.", "A",
             answer=["tosub.example.org. 3600 IN CNAME host.sub.example.org."], ns=SUB_NS,
             extra=SUB_GLUE, flags=AA),
    ]))  # fmt: skip


def test_wildcards(srv: Server) -> None:
    check(srv, both([
        ok("x.wild.example.org.", "A", ["x.wild.example.org. 3600 IN A 192.0.2.99"]),
        ok("y.x.wild.example.org.", "TXT", ['y.x.wild.example.org. 3600 IN TXT "wild"']),
        nodata("x.wild.example.org.", "MX"),
        nodata("wild.example.org.", "A"),
        ok("x.cw.example.org.", "A", ["x.cw.example.org. 3600 IN CNAME www.example.org.", WWW_A]),
        ok("z.ent.example.org.", "A", ["z.ent.example.org. 3600 IN A 192.0.2.98"]),
        # y.ent is an empty non-terminal closer than *.ent (RFC 4592): no wildcard below it.
        nxdomain("q.y.ent.example.org."),
    ]))  # fmt: skip


def test_delegation_is_a_referral_with_glue(srv: Server) -> None:
    referral = {"answer": [], "ns": SUB_NS, "extra": SUB_GLUE, "no_flags": AA}
    check(srv, both([
        Case("sub.example.org.", "A", **referral),  # type: ignore[arg-type]
        Case("deep.sub.example.org.", "A", **referral),  # type: ignore[arg-type]
        Case("ns.sub.example.org.", "A", **referral),  # type: ignore[arg-type]
        Case("sub.example.org.", "NS", **referral),  # type: ignore[arg-type]
        # DS at the cut is the parent's to answer.
        nodata("sub.example.org.", "DS"),
    ]))  # fmt: skip


def test_dname(srv: Server) -> None:
    dn = "dn.example.org. 3600 IN DNAME example.net."
    check(srv, both([
        ok("dn.example.org.", "DNAME", [dn]),
        nodata("dn.example.org.", "A"),
        ok("foo.dn.example.org.", "CNAME", [dn, "foo.dn.example.org. 3600 IN CNAME foo.example.net."]),
        Case("www.dn.example.org.", "A", answer=[
            dn, "www.dn.example.org. 3600 IN CNAME www.example.net.",
            "www.example.net. 300 IN A 198.51.100.1"], ns=NS, flags=AA),
        Case("foo.dn.example.org.", "A", dns.rcode.NXDOMAIN, answer=[
            dn, "foo.dn.example.org. 3600 IN CNAME foo.example.net."], ns=[SOA], flags=AA),
    ]))  # fmt: skip


def test_transfers_and_other_names_are_refused(srv: Server) -> None:
    """No transfer plugin: AXFR is REFUSED; file is the last plugin, so other names too."""
    check(srv, [
        Case("example.org.", "AXFR", dns.rcode.REFUSED, proto="tcp", no_flags=AA),
        Case("example.org.", "IXFR", dns.rcode.REFUSED, proto="tcp", no_flags=AA),
    ])  # fmt: skip


# ---- differential: the same questions to the reference CoreDNS --------------------------------

QUESTIONS = [
    ("example.org.", "SOA"), ("example.org.", "NS"), ("example.org.", "MX"),
    ("example.org.", "A"), ("www.example.org.", "A"), ("www.example.org.", "TXT"),
    ("nope.example.org.", "A"), ("alias.example.org.", "A"), ("alias2.example.org.", "AAAA"),
    ("alias.example.org.", "CNAME"), ("ext.example.org.", "A"), ("dangling.example.org.", "A"),
    ("x.wild.example.org.", "A"), ("x.wild.example.org.", "MX"), ("y.x.wild.example.org.", "TXT"),
    ("wild.example.org.", "A"), ("x.cw.example.org.", "A"), ("b.c.example.org.", "A"),
    ("a.b.c.example.org.", "A"), ("z.ent.example.org.", "A"), ("q.y.ent.example.org.", "A"),
    ("y.ent.example.org.", "A"), ("sub.example.org.", "A"), ("ns.sub.example.org.", "AAAA"),
    ("deep.sub.example.org.", "A"), ("sub.example.org.", "NS"), ("sub.example.org.", "DS"),
    ("tosub.example.org.", "A"), ("foo.dn.example.org.", "A"), ("foo.dn.example.org.", "CNAME"),
    ("dn.example.org.", "DNAME"), ("www.dn.example.org.", "A"), ("x.dn2.example.org.", "A"),
    ("_sip._tcp.example.org.", "SRV"), ("txt.example.org.", "TXT"), ("upper.example.org.", "A"),
    ("example.org.", "ANY"), ("example.org.", "AXFR"), ("other.org.", "A"),
]  # fmt: skip


def summary(r: dns.message.Message) -> tuple[object, ...]:
    return (dns.rcode.to_text(r.rcode()), dns.flags.to_text(r.flags), rrs(r.answer),
            rrs(r.authority), rrs(r.additional))  # fmt: skip


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_same_answers_as_coredns(srv: Server, tmp_path: Path, proto: str) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    with serve_coredns(COREFILE, tmp_path) as ref:
        for qname, qtype in QUESTIONS:
            ours = summary(srv.query(qname, qtype, proto=proto))
            theirs = summary(ref.query(qname, qtype, proto=proto))
            assert ours == theirs, f"{qname} {qtype}"


# ---- reload ------------------------------------------------------------------------------------

RELOADING = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org {
        reload 100ms
    }
}
"""


def test_reload_on_serial_change_and_bad_reload_keeps_old(tmp_path: Path) -> None:
    zone = tmp_path / "db.example.org"
    with serve(RELOADING, tmp_path, files={"db.example.org": EXAMPLE_ORG}) as s:
        check(s, [ok("www.example.org.", "A", [WWW_A])])
        # A new address without a new serial is not picked up ...
        changed = EXAMPLE_ORG.replace("192.0.2.10", "192.0.2.11")
        zone.write_text(changed + "new IN A 192.0.2.5\n")
        # ... but a new serial is.
        zone.write_text(soa_serial(changed, 2026120102))
        s.wait_output(r'Successfully reloaded zone "example.org." .* with 2026120102 SOA serial')
        check(s, [ok("www.example.org.", "A", ["www.example.org. 3600 IN A 192.0.2.11"])])
        # A broken file with a newer serial: the error is logged, the old zone still served.
        broken = soa_serial(changed, 2026120103) + "bad IN A 1.2.3\n"
        zone.write_text(broken)
        s.wait_output(r'\[ERROR\] plugin/file: Parsing zone "example.org.": .*db.example.org:\d+')
        check(s, [ok("www.example.org.", "A", ["www.example.org. 3600 IN A 192.0.2.11"])])
        # Fixed: served again.
        zone.write_text(soa_serial(EXAMPLE_ORG, 2026120104))
        s.wait_output(r"with 2026120104 SOA serial")
        check(s, [ok("www.example.org.", "A", [WWW_A])])


def test_missing_file_serves_servfail_until_it_appears(tmp_path: Path) -> None:
    with serve(RELOADING, tmp_path) as s:
        assert "Failed to open" in s.output
        check(s, [Case("www.example.org.", "A", dns.rcode.SERVFAIL)])
        (tmp_path / "db.example.org").write_text(EXAMPLE_ORG)
        s.wait_output(r"Successfully reloaded zone")
        check(s, [ok("www.example.org.", "A", [WWW_A])])


# ---- fallthrough -------------------------------------------------------------------------------


def test_fallthrough_hands_nxdomain_on(tmp_path: Path) -> None:
    corefile = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org {
        fallthrough
    }
    whoami
}
"""
    with serve(corefile, tmp_path, files=FILES) as s:
        r = s.query("nope.example.org.", "A")
        assert r.rcode() == dns.rcode.NOERROR and any(a.rdtype == 1 for a in r.additional)
        check(s, [ok("www.example.org.", "A", [WWW_A]), nodata("www.example.org.", "MX")])


# ---- setup -------------------------------------------------------------------------------------


def test_bad_zone_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "db.bad").write_text(
        "$ORIGIN example.org.\n$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 1.2.3\n"
        "www IN A 1.2.3.4\n"
    )
    code, err, conf = validate_block(tmp_path, f"  file {tmp_path}/db.bad example.org\n")
    assert code == 1
    assert f"{conf}:2 - plugin/file: {tmp_path}/db.bad:5: " in err, err


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("$ORIGIN example.org.\n$TTL 60\nwww IN A 1.2.3.4\n", "has no SOA record"),
        ("$ORIGIN example.org.\n@ 60 IN SOA ns hm 1 2 3 4 5\nwww IN BOGUS 1\n", "db.z:3: "),
        ("$ORIGIN example.org.\n@ 60 IN SOA ns hm 1 2 3 4 5\nwww 60 IN CNAME a\nwww 60 IN A 1.2.3.4\n",
         "db.z:4: "),
        ("$ORIGIN example.org.\n@ 60 IN SOA ns hm 1 2 3 4 5\n$INCLUDE nothere\n", "nothere"),
    ],
)  # fmt: skip
def test_broken_zone_files(tmp_path: Path, zone: str, message: str) -> None:
    (tmp_path / "db.z").write_text(zone)
    code, err, _ = validate_block(tmp_path, f"  file {tmp_path}/db.z example.org\n")
    assert code == 1 and message in err, err


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("file", 2, "wrong argument count"),
        ("file db.x {\n    reload\n  }", 3, "reload duration value is expected"),
        ("file db.x {\n    reload soon\n  }", 3, "plugin/file"),
        ("file db.x {\n    bogus\n  }", 3, "unknown property 'bogus'"),
        ("file db.x {\n    reload 0\n  }", 2, "no such file or directory"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_missing_file_is_a_warning_with_reload(tmp_path: Path) -> None:
    code, err, conf = validate_block(tmp_path, "  file db.nothere\n")
    assert code == 0, err
    assert f"{conf}:2 - plugin/file: Failed to open" in err, err


def test_include_and_origins_from_args(tmp_path: Path) -> None:
    # A relative $INCLUDE is taken from the including file's directory, as miekg/dns does.
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "www.inc").write_text("www IN A 192.0.2.10\n")
    zone = "$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n$INCLUDE www.inc\n"
    (tmp_path / "zones" / "db.shared").write_text(zone)
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    file zones/db.shared example.org example.com
}
"""
    with serve(corefile, tmp_path) as s:
        check(s, [
            Case("www.example.org.", "A", answer=[WWW_A], flags=AA),
            Case("www.example.com.", "A", answer=["www.example.com. 3600 IN A 192.0.2.10"],
                 flags=AA),
            Case("www.example.net.", "A", dns.rcode.REFUSED),
        ])  # fmt: skip


# ---- the shared custom-zone-file Corefile -------------------------------------------------------

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"


def test_shared_custom_zone_file_corefile(tmp_path: Path) -> None:
    """../shared/corefiles/custom-zone-file.Corefile validates (k8s_external aside while it is
    not available) and its zone block serves the zone file and its transfers."""
    from clusterdns.registry import AVAILABLE
    from tests.harness import run_cli
    from tests.xfr_client import records, transfer

    path = SHARED / "custom-zone-file.Corefile"
    if not path.exists():
        pytest.skip("../shared/corefiles is not there")
    text = path.read_text()
    if "k8s_external" not in AVAILABLE:
        text = "\n".join(x for x in text.splitlines() if "k8s_external" not in x) + "\n"
    conf = tmp_path / "custom-zone-file.Corefile"
    conf.write_text(text)
    env = {"SHARED_COREFILES": str(SHARED)}
    r = run_cli("-conf", str(conf), "-validate", env=env)
    assert r.returncode == 0, r.stderr
    block = text[: text.index("\n}\n") + 3].replace("corp.example:53", "corp.example:@PORT@")
    block = block.replace("    errors\n", "    errors\n    bind 127.0.0.1\n")
    block = block.replace("{$SHARED_COREFILES}", str(SHARED))
    with serve(block, tmp_path) as s:
        check(s, [
            Case("www.corp.example.", "A", answer=["www.corp.example. 300 IN A 10.20.1.10"],
                 flags=AA),
            Case("intranet.corp.example.", "AAAA", answer=[
                "intranet.corp.example. 300 IN CNAME www.corp.example.",
                "www.corp.example. 300 IN AAAA fd00:20::10"], flags=AA),
            Case("x.apps.corp.example.", "A", answer=["x.apps.corp.example. 300 IN A 10.20.2.1"]),
            Case("corp.example.", "MX", answer=["corp.example. 300 IN MX 10 mail.corp.example."],
                 extra=["mail.corp.example. 300 IN A 10.20.1.25"]),
            Case("_ldap._tcp.corp.example.", "SRV",
                 answer=["_ldap._tcp.corp.example. 300 IN SRV 0 100 389 ldap.corp.example."],
                 extra=["ldap.corp.example. 300 IN A 10.20.1.30"]),
            Case("nope.corp.example.", "A", dns.rcode.NXDOMAIN),
        ])  # fmt: skip
        msgs = transfer(s.port, dns.message.make_query("corp.example.", "AXFR"))
        assert len(records(msgs)) == 11 + 1  # the SOA closes the transfer again
