"""log: CoreDNS's line format, placeholders, class and name filters, setup errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.plugins.log import (
    Written,
    classify,
    go_seconds,
    parse_format,
    render,
    typify,
)
from clusterdns.request import Request
from tests.harness import Server, exchange, setup_error, validate_block

DURATION = r"(?:0|[1-9]\d*)(?:\.\d*[1-9])?s"  # Go's 'f', -1 format: never an exponent


def _line(srv: Server, text: str) -> str:
    """The whole output line that contains `text` (waiting for it)."""
    return srv.wait_output(rf"(?m)^.*{re.escape(text)}.*$").group(0)


def test_default_format_udp_and_tcp(server_factory: Callable[..., Server]) -> None:
    srv = server_factory("example.org:@PORT@ {\n bind 127.0.0.1\n log\n whoami\n}\n")
    q = dns.message.make_query("Foo.Example.ORG.", "A")
    q.id = 4242
    wire, cport = exchange(srv, q, "udp")
    head = (
        f'[INFO] 127.0.0.1:{cport} - 4242 "A IN foo.example.org. udp {len(q.to_wire())} '
        f'false 512" NOERROR qr,aa,rd {len(wire)} '
    )
    line = _line(srv, head)
    assert re.fullmatch(re.escape(head) + DURATION, line), line

    q = dns.message.make_query("bar.example.org.", "AAAA", want_dnssec=True)
    q.id = 4343
    wire, cport = exchange(srv, q, "tcp")
    head = (
        f'[INFO] 127.0.0.1:{cport} - 4343 "AAAA IN bar.example.org. tcp {len(q.to_wire())} '
        f'true 65535" NOERROR qr,aa,rd {len(wire)} '
    )
    assert re.fullmatch(re.escape(head) + DURATION, _line(srv, head))

    q = dns.message.make_query("baz.example.org.", "TXT", want_dnssec=True, payload=1400)
    q.id = 4444
    exchange(srv, q, "udp")
    assert ' - 4444 "TXT IN baz.example.org. udp' in _line(srv, " - 4444 ")
    assert 'true 1400" NOERROR' in _line(srv, " - 4444 ")


def test_a_plugin_error_is_logged_with_its_rcode(server_factory: Callable[..., Server]) -> None:
    srv = server_factory("fail.test:@PORT@ {\n bind 127.0.0.1\n log\n}\n")
    q = dns.message.make_query("x.fail.test.", "A")
    q.id = 777
    wire, cport = exchange(srv, q, "udp")
    assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL
    head = (
        f'[INFO] 127.0.0.1:{cport} - 777 "A IN x.fail.test. udp {len(q.to_wire())} false 512" '
        f"SERVFAIL qr,rd {len(wire)} "
    )
    assert re.fullmatch(re.escape(head) + DURATION, _line(srv, head))


def test_every_placeholder_and_combined(server_factory: Callable[..., Server]) -> None:
    fmt = (
        "{type}|{name}|{class}|{proto}|{size}|{remote}|{port}|{local}|{>id}|{>opcode}|{>do}|"
        "{>bufsize}|{rcode}|{rsize}|{>rflags}|{/meta}|{when}|{{type}}|{>ID}|{X}|}"
    )
    srv = server_factory(
        f'a.test:@PORT@ {{\n bind 127.0.0.1\n log . "FMT {fmt}"\n whoami\n}}\n'
        "b.test:@PORT@ {\n bind 127.0.0.1\n log . {combined}\n whoami\n}\n"
        "c.test:@PORT@ {\n bind 127.0.0.1\n log . {common}\n whoami\n}\n"
    )
    q = dns.message.make_query("X.a.test.", "TXT")
    q.id = 99
    wire, cport = exchange(srv, q, "udp")
    expect = (
        f"[INFO] FMT TXT|x.a.test.|IN|udp|{len(q.to_wire())}|127.0.0.1|{cport}|127.0.0.1|99|0|"
        f"false|512|NOERROR|{len(wire)}|qr,aa,rd|-|{{when}}|{{TXT}}|{{>ID}}|{{X}}|}}"
    )
    assert _line(srv, "[INFO] FMT ") == expect

    q = dns.message.make_query("x.b.test.", "A")
    q.id = 100
    exchange(srv, q, "tcp")
    line = _line(srv, " - 100 ")
    assert re.fullmatch(r'\[INFO\] 127\.0\.0\.1:\d+ - 100 "A IN x\.b\.test\. tcp \d+ false '
                        rf'65535" NOERROR qr,aa,rd \d+ {DURATION} "0"', line), line  # fmt: skip
    q.id = 101
    q.question[0].name = dns.name.from_text("x.c.test.")
    exchange(srv, q, "udp")
    assert re.search(rf'" NOERROR qr,aa,rd \d+ {DURATION}$', _line(srv, " - 101 "))


def test_names_pick_the_first_matching_rule(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n"
        ' log A.test b.test "N {name} {proto}"\n'
        " log c.test\n"
        ' log a.test "NEVER {name}"\n'
        " whoami\n}\n"
    )
    for name in ("x.d.test.", "x.a.test.", "x.b.test."):
        srv.query(name, "A")
    srv.query("y.c.test.", "A", proto="tcp")
    _line(srv, '"A IN y.c.test. tcp ')
    out = srv.output
    assert "[INFO] N x.a.test. udp\n" in out
    assert "[INFO] N x.b.test. udp\n" in out
    assert "x.d.test." not in out
    assert "NEVER" not in out
    assert "probe.invalid." not in out


CLASS_COREFILE = """
success.test:@PORT@ {
    bind 127.0.0.1
    log . "SUCCESS {name} {rcode}" {
        class success
    }
    whoami
}
failure.test:@PORT@ {
    bind 127.0.0.1
    log . "SUCCESS {name} {rcode}" {
        class success
    }
}
error.test:@PORT@ {
    bind 127.0.0.1
    log . "ERROR {name} {rcode}" {
        class error
    }
    whoami
}
errors.test:@PORT@ {
    bind 127.0.0.1
    log . "ERROR {name} {rcode}" {
        class denial
        class error
    }
}
denial.test:@PORT@ {
    bind 127.0.0.1
    log . "DENIAL {name}" {
        class denial
    }
    whoami
}
slow.test:@PORT@ {
    bind 127.0.0.1
    log . "SLOW {name}" {
        class denial
        minDuration 1ns
    }
    whoami
}
all.test:@PORT@ {
    bind 127.0.0.1
    log . "ALL {name}" {
        class error all
    }
    whoami
}
"""


def test_class_and_min_duration_filters(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(CLASS_COREFILE)
    names = ["success", "failure", "error", "errors", "denial", "slow", "all"]
    for n in names:
        srv.query(f"q.{n}.test.", "A")
    srv.query("last.all.test.", "A")
    _line(srv, "ALL last.all.test.")
    out = srv.output
    assert "[INFO] SUCCESS q.success.test. NOERROR\n" in out
    assert "q.failure.test." not in out  # a SERVFAIL is not a success
    assert "q.error.test." not in out
    assert "[INFO] ERROR q.errors.test. SERVFAIL\n" in out
    assert "q.denial.test." not in out  # whoami's answer is a success
    assert "[INFO] SLOW q.slow.test.\n" in out  # not a denial, but slower than 1ns
    assert "[INFO] ALL q.all.test.\n" in out


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("    log {\n        class foo\n    }\n", 3, "log: invalid Class: foo"),
        ("    log {\n        class\n    }\n", 3, "wrong argument count"),
        ("    log {\n        minDuration 1s 2s\n    }\n", 3, "wrong argument count"),
        ("    log {\n        minDuration soon\n    }\n", 3, "log: Illegal duration found: 'soon'"),
        ("    log {\n        color red\n    }\n", 3, "log: unknown property 'color'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    body = (
        "    log\n    log example.org\n    log a.org b.org {combined}\n"
        '    log . "{proto} Request: {name} {type} {>id}"\n'
        "    log . {\n        class denial success\n        minDuration\n    }\n"
    )
    code, err, _ = validate_block(tmp_path, body)
    assert code == 0, err
    code, err, conf = validate_block(tmp_path, "    log {combined}\n")
    assert code == 0, err
    assert f"{conf}:2 - log: '{{combined}}' is taken as a name" in err


# ---- pure functions ------------------------------------------------------------------------


def _reply(
    qname: str, qtype: str, rcode: dns.rcode.Rcode = dns.rcode.NOERROR
) -> dns.message.Message:
    q = dns.message.make_query(qname, qtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    return r


def _rr(text: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, *rest = text.split()
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, " ".join(rest))


SOA = "example.org. 300 IN SOA ns. host. 1 2 3 4 5"


def _typify_cases() -> list[tuple[dns.message.Message | None, str, str]]:
    a = _reply("a.example.org.", "A")
    a.answer = [_rr("a.example.org. 300 IN A 10.0.0.1")]
    cname_only = _reply("a.example.org.", "A")
    cname_only.answer = [_rr("a.example.org. 300 IN CNAME b.example.org.")]
    mx_cname = _reply("a.example.org.", "MX")
    mx_cname.answer = [_rr("a.example.org. 300 IN CNAME b.example.org.")]
    nx = _reply("a.example.org.", "A", dns.rcode.NXDOMAIN)
    nx.authority = [_rr(SOA)]
    nodata = _reply("a.example.org.", "A")
    nodata.authority = [_rr(SOA)]
    deleg = _reply("a.example.org.", "A")
    deleg.authority = [_rr("example.org. 300 IN NS ns1.example.org.")]
    axfr = _reply("example.org.", "AXFR")
    update = _reply("example.org.", "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    expired = _reply("a.example.org.", "A")
    expired.use_edns(0, dns.flags.DO)
    expired.answer = [
        _rr("a.example.org. 300 IN A 10.0.0.1"),
        _rr("a.example.org. 300 IN RRSIG A 8 3 300 20000101000000 19991201000000 1 example.org. AAAA"),
    ]  # fmt: skip
    return [
        (a, "NOERROR", "success"),
        (cname_only, "NODATA", "denial"),
        (mx_cname, "NOERROR", "success"),
        (nx, "NXDOMAIN", "denial"),
        (nodata, "NODATA", "denial"),
        (_reply("a.example.org.", "A"), "NOERROR", "success"),
        (_reply("a.example.org.", "A", dns.rcode.NXDOMAIN), "OTHERERROR", "error"),
        (_reply("a.example.org.", "A", dns.rcode.SERVFAIL), "SERVERERROR", "error"),
        (_reply("a.example.org.", "A", dns.rcode.NOTIMP), "SERVERERROR", "error"),
        (_reply("a.example.org.", "A", dns.rcode.REFUSED), "OTHERERROR", "error"),
        (deleg, "DELEGATION", "success"),
        (axfr, "META", "error"),
        (update, "UPDATE", "error"),
        (expired, "OTHERERROR", "error"),
        (None, "OTHERERROR", "error"),
    ]


@pytest.mark.parametrize(("msg", "rtype", "cls"), _typify_cases())
def test_typify_and_classify(msg: dns.message.Message | None, rtype: str, cls: str) -> None:
    assert typify(msg) == rtype
    assert classify(rtype) == cls


@pytest.mark.parametrize(
    ("secs", "text"),
    [(0.000289493, "0.000289493"), (0.0000125, "0.0000125"), (2.0, "2"), (0.0, "0"),
     (1.25, "1.25"), (61.000000001, "61.000000001")],
)  # fmt: skip
def test_duration_is_go_seconds(secs: float, text: str) -> None:
    assert go_seconds(secs) == text


@pytest.mark.parametrize(
    ("fmt", "out"),
    [
        ("", ""),
        ("A", "A"),
        ("A {A}", "A {A}"),
        ("{{remote}}", "{10.1.2.3}"),
        ("{ A {remote} A }", "{ A 10.1.2.3 A }"),
        ("{remote}}", "10.1.2.3}"),
        ("Foo } {remote}", "Foo } 10.1.2.3"),
        ("{ Foo", "{ Foo"),
        ("} Foo", "} Foo"),
        ("{/meta1}-{/meta2}", "---"),
        ("{remote}:{port} {local}", "10.1.2.3:5353 [::1]"),
    ],
)
def test_format_parsing_matches_coredns(fmt: str, out: str) -> None:
    q = dns.message.make_query("example.org.", "HINFO")
    req = Request(q, "10.1.2.3", 5353, "udp", len(q.to_wire()), local_ip="::1")
    assert render(parse_format(fmt), Written(req, None, 0, 0.0)) == out
