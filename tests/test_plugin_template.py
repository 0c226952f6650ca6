"""template: answers rendered from Go templates, option for option as CoreDNS 1.14.7's.

One server holds the templates (most from CoreDNS's README) in front of hosts and kubernetes
(from manifests); the same templates run in the reference CoreDNS for the differential test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from clusterdns.config import build
from clusterdns.corefile.parser import parse_corefile_text
from tests.coredns_ref import serve_coredns
from tests.harness import (
    DEMO_WEB,
    HOST,
    Case,
    Server,
    check,
    exchange,
    metric,
    run_cli,
    serve,
)

NX, SERVFAIL = dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL

TEMPLATES = r"""
    template IN A example {
        match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    template IN MX example {
        match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
        additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        authority "example. 60 IN NS ns0.example." "example. 60 IN NS ns1.example."
        additional "ns0.example. 60 IN A 203.0.113.8"
        fallthrough
    }
    template IN A example {
        match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
        answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt (index .Group \"c\") 16 8 }}.{{ 8 | parseInt .Group.d 16 }}"
        fallthrough
    }
    template IN A example {
        match "^ip-(?P<a>10)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]dc[.]example[.]$"
        match "^(?P<a>[0-9]*)[.](?P<b>[0-9]*)[.](?P<c>[0-9]*)[.](?P<d>[0-9]*)[.]ext[.]example[.]$"
        answer "{{ .Name }} 60 IN A {{ .Group.a}}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
    }
    template IN PTR in-addr.arpa {
        match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
        answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }
    template ANY ANY invalid {
        rcode NXDOMAIN
        authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
        ederror 21 "Blocked according to RFC2606"
    }
    template IN TXT ede.test {
        ederror 18
    }
    template IN ANY foogle.test {
        match "^foogle\.test\.$"
        answer "foogle.test 60 IN CNAME google.test"
        upstream
    }
    template IN A google.test {
        answer "google.test. 30 IN A 192.0.2.1"
    }
    template IN TXT data.test {
        match "^(?P<first>[a-z]+)[.]"
        answer "{{ .Name }} 0 IN TXT \"{{ .Zone }}\" \"{{ .Class }}/{{ .Type }}\" \"{{ .Regex }}\" \"{{ .Match }}\" \"{{ .Group }}\" \"{{ index .Group \"first\" }}\" \"{{ .Group.nope }}\" \"{{ .Question }}\" \"[{{ .Meta \"x\" }}]\" \"{{ .Remote }}\""
    }
    template IN A apps.test {
        match "^(?P<app>[a-z0-9-]+)[.](?P<env>[a-z]+)[.]apps[.]test[.]$"
        answer "{{ .Name }} 60 IN A 192.0.2.10" "{{ .Name }} 60 IN A 192.0.2.11"
        additional "{{ .Group.app }}.{{ .Group.env }}.apps.test. 60 IN TXT \"{{ .Group.app }}\" \"{{ .Group.env }}\""
    }
    template IN A fail.test {
        match ^exec[.]
        answer "{{ .Name }} 60 IN A {{ index .Match 3 }}"
        fallthrough
    }
    template IN A fail.test {
        answer "{{ .Name }} 60 IN A not-an-address"
    }
    template IN A servfail.test {
        rcode SERVFAIL
    }
    template IN A strict.test {
        match ^only[.]
    }
    template IN A fall.test {
        match ^never$
        fallthrough sub.fall.test
    }
    template IN A cluster.local {
        match ^special[.]
        answer "{{ .Name }} 5 IN A 10.0.0.99"
        fallthrough
    }
    template ANY ANY refused.test {
        rcode REFUSED
    }
    template IN TXT who.test {
        answer "{{ .Name }} 0 IN TXT {{ .Remote }}"
    }
    hosts {
        192.0.2.50 x.sub.fall.test x.fall.test
        fallthrough
    }
"""

MANIFEST = (
    DEMO_WEB
    + """\
---
apiVersion: v1
kind: Service
metadata:
  name: dual
  namespace: demo
spec:
  clusterIP: 10.96.0.60
  clusterIPs: [10.96.0.60, "fd00:10:96::60"]
  ipFamilies: [IPv4, IPv6]
  ports:
  - name: http
    port: 80
"""
)

MAIN = f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    errors
{TEMPLATES}
    kubernetes cluster.local {{
        manifests k8s.yaml
    }}
}}
"""
REFERENCE = f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    errors
{TEMPLATES}
}}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(MAIN, tmp_path_factory.mktemp("template"), files={"k8s.yaml": MANIFEST}) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


AA = {"AA"}


def test_readme_examples(srv: Server) -> None:
    check(srv, both([
        Case("ip-1-2-3-4.example.", answer=["ip-1-2-3-4.example. 60 IN A 1.2.3.4"], flags=AA),
        # (^|[.]): any name below one is a wildcard of it
        Case("www.ip-1-2-3-4.example.", answer=["www.ip-1-2-3-4.example. 60 IN A 1.2.3.4"]),
        Case("4.3.2.1.in-addr.arpa.", "PTR",
             answer=["4.3.2.1.in-addr.arpa. 60 IN PTR ip-1-2-3-4.example."], flags=AA),
        # parseInt, also with the bit size piped in as the last argument
        Case("ip0a7b0cff.example.", answer=["ip0a7b0cff.example. 60 IN A 10.123.12.255"]),
        # two regexes, one answer template for both (named groups)
        Case("ip-10-1-2-3.dc.example.", answer=["ip-10-1-2-3.dc.example. 60 IN A 10.1.2.3"]),
        Case("5.6.7.8.ext.example.", answer=["5.6.7.8.ext.example. 60 IN A 5.6.7.8"]),
        # answer, authority and additional sections
        Case("ip-10-0-0-9.example.", "MX",
             answer=["ip-10-0-0-9.example. 60 IN MX 10 ip-10-0-0-9.example."],
             ns=["example. 60 IN NS ns0.example.", "example. 60 IN NS ns1.example."],
             extra=["ip-10-0-0-9.example. 60 IN A 10.0.0.9", "ns0.example. 60 IN A 203.0.113.8"],
             flags=AA),
        # .invalid: NXDOMAIN with a made-up SOA, for any class the server takes and any type
        Case("foo.invalid.", "AAAA", NX, answer=[],
             ns=["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"], flags=AA),
        # a fabricated CNAME, its target looked up through the server (another template)
        Case("foogle.test.", answer=["foogle.test. 60 IN CNAME google.test.",
                                     "google.test. 30 IN A 192.0.2.1"], flags=AA),
        # ... only for A and AAAA queries (the AAAA lookup of google.test found nothing)
        Case("foogle.test.", "AAAA", answer=["foogle.test. 60 IN CNAME google.test."]),
        Case("foogle.test.", "TXT", answer=["foogle.test. 60 IN CNAME google.test."]),
    ]))  # fmt: skip


def test_data_fields(srv: Server) -> None:
    txt = (
        '"data.test." "IN/TXT" "^(?P<first>[a-z]+)[.]" "[abc. abc]" "map[0:abc. 1:abc first:abc]"'
        ' "abc" "<no value>" ";ABC.Data.Test.\\009IN\\009 TXT" "[]" "127.0.0.1"'
    )
    check(srv, [Case("ABC.Data.Test.", "TXT", answer=[f"ABC.Data.Test. 0 IN TXT {txt}"])])


def test_wildcard_answers_with_groups(srv: Server) -> None:
    check(srv, both([
        Case("shop-1.prod.apps.test.",
             answer=["shop-1.prod.apps.test. 60 IN A 192.0.2.10",
                     "shop-1.prod.apps.test. 60 IN A 192.0.2.11"],
             extra=['shop-1.prod.apps.test. 60 IN TXT "shop-1" "prod"']),
        # no regex match and no fallthrough: SERVFAIL, not authoritative
        Case("a.b.prod.apps.test.", rcode=SERVFAIL, answer=[], no_flags=AA),
    ]))  # fmt: skip


def test_rcodes_and_fallthrough(srv: Server) -> None:
    check(srv, both([
        Case("x.servfail.test.", rcode=SERVFAIL, answer=[], no_flags=AA),
        Case("x.refused.test.", "TXT", dns.rcode.REFUSED, answer=[], flags=AA),
        # no regex match, no fallthrough: SERVFAIL; a match without answers: empty NOERROR
        Case("other.strict.test.", rcode=SERVFAIL, answer=[]),
        Case("only.strict.test.", answer=[], ns=[], flags=AA),
        # the class or the type does not fit: the template is skipped (SERVFAIL: no next plugin)
        Case("only.strict.test.", "TXT", SERVFAIL, answer=[]),
        # fallthrough limited to sub.fall.test: hosts answers below it, SERVFAIL elsewhere
        Case("x.sub.fall.test.", answer=["x.sub.fall.test. 3600 IN A 192.0.2.50"], no_flags=set()),
        Case("x.fall.test.", rcode=SERVFAIL, answer=[]),
        # fallthrough into the kubernetes plugin
        Case("special.cluster.local.", answer=["special.cluster.local. 5 IN A 10.0.0.99"]),
        Case("web.demo.svc.cluster.local.", answer=["web.demo.svc.cluster.local. 5 IN A 10.96.0.50"]),
        Case("nope.demo.svc.cluster.local.", rcode=NX, answer=[]),
        # outside every template's zones: the next plugin (hosts)
        Case("x.sub.fall.test.", "AAAA", answer=[]),
    ]))  # fmt: skip


def test_cname_chased_into_kubernetes(tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    template IN ANY alias.test {
        answer "{{ .Name }} 60 IN CNAME web.demo.svc.cluster.local."
    }
    kubernetes cluster.local {
        manifests k8s.yaml
    }
}
"""
    with serve(corefile, tmp_path, files={"k8s.yaml": MANIFEST}) as s:
        check(s, both([
            Case("www.alias.test.", answer=["www.alias.test. 60 IN CNAME web.demo.svc.cluster.local.",
                                            "web.demo.svc.cluster.local. 5 IN A 10.96.0.50"]),
            Case("www.alias.test.", "MX",
                 answer=["www.alias.test. 60 IN CNAME web.demo.svc.cluster.local."]),
        ]))  # fmt: skip


def edns_of(r: dns.message.Message) -> tuple[int, int, int, list[dns.edns.Option]]:
    return r.edns, r.ednsflags & dns.flags.DO, r.payload, list(r.options)


def test_ederror(srv: Server) -> None:
    ede = dns.edns.EDEOption(dns.edns.EDECode.NOT_SUPPORTED, "Blocked according to RFC2606")
    # As CoreDNS: an OPT with DO set even when the client sent none (size 4096) or no DO.
    r = srv.query("foo.invalid.", "A", use_edns=False)
    assert r.rcode() == NX and edns_of(r) == (0, dns.flags.DO, 4096, [ede])
    r = srv.query("foo.invalid.", "A", use_edns=0, payload=1232, proto="tcp")
    assert edns_of(r) == (0, dns.flags.DO, 1232, [ede])
    r = srv.query("x.ede.test.", "TXT", use_edns=0, payload=1232)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA and not r.answer
    assert list(r.options) == [dns.edns.EDEOption(dns.edns.EDECode.PROHIBITED)]


def test_failures_answer_servfail_and_are_counted(srv: Server) -> None:
    server = f"dns://{HOST}:{srv.port}"
    common = {"server": server, "zone": "fail.test.", "view": "", "class": "IN", "type": "A"}
    exec_labels = dict(common, section="answer", template="{{.Name}} 60 IN A {{index .Match 3}}")
    rr_labels = dict(common, section="answer", template="{{.Name}} 60 IN A not-an-address")
    text = srv.metrics()
    before = [
        metric(text, "coredns_template_template_failures_total", **exec_labels) or 0,
        metric(text, "coredns_template_rr_failures_total", **rr_labels) or 0,
        metric(text, "coredns_template_matches_total", **common) or 0,
    ]
    check(srv, both([Case("exec.fail.test.", rcode=SERVFAIL, answer=[], no_flags=AA),
                     Case("rr.fail.test.", rcode=SERVFAIL, answer=[], no_flags=AA)]))  # fmt: skip
    text = srv.metrics()
    assert metric(text, "coredns_template_template_failures_total", **exec_labels) == before[0] + 2
    assert metric(text, "coredns_template_rr_failures_total", **rr_labels) == before[1] + 2
    assert metric(text, "coredns_template_matches_total", **common) == before[2] + 4
    # errors logs the reason, the server goes on
    srv.wait_output(
        r"\[ERROR\] plugin/errors: 2 exec\.fail\.test\. A: plugin/template: template: answer: "
        r'executing "answer" at <index \.Match 3>: error calling index: index out of range: 3'
    )
    srv.wait_output(
        r"\[ERROR\] plugin/errors: 2 rr\.fail\.test\. A: plugin/template: .*not-an-address"
    )
    assert "Traceback" not in srv.output


def test_matches_metric_labels(srv: Server) -> None:
    def count(zone: str, klass: str, rtype: str) -> float:
        labels = {"server": f"dns://{HOST}:{srv.port}", "zone": zone, "view": "",
                  "class": klass, "type": rtype}  # fmt: skip
        return metric(srv.metrics(), "coredns_template_matches_total", **labels) or 0

    a, b = count("in-addr.arpa.", "IN", "PTR"), count("invalid.", "IN", "MX")
    srv.query("9.9.9.9.in-addr.arpa.", "PTR")
    srv.query("9.9.9.9.in-addr.arpa.", "PTR", proto="tcp")
    srv.query("x.invalid.", "MX")
    assert (count("in-addr.arpa.", "IN", "PTR"), count("invalid.", "IN", "MX")) == (a + 2, b + 1)
    # A query of type ANY is labelled with the template's type, as CoreDNS does.
    c = count("refused.test.", "IN", "ANY")
    srv.query("x.refused.test.", "ANY")
    assert count("refused.test.", "IN", "ANY") == c + 1


def test_answers_are_byte_identical_with_and_without_the_fast_path(
    srv: Server, tmp_path: Path
) -> None:
    queries = [
        ("ip-1-2-3-4.example.", "A"), ("ip-10-0-0-9.example.", "MX"), ("foo.invalid.", "A"),
        ("IP-1-2-3-4.Example.", "A"), ("abc.data.test.", "TXT"), ("foogle.test.", "A"),
    ]  # fmt: skip
    with serve(
        MAIN, tmp_path, files={"k8s.yaml": MANIFEST}, env={"CLUSTERDNS_FASTPATH": "off"}
    ) as off:
        for name, rdtype in queries:
            for proto, edns in (("udp", 0), ("tcp", 0), ("udp", False)):
                q = dns.message.make_query(name, rdtype, use_edns=edns)
                q.id = 4242
                first = exchange(srv, q, proto)[0]
                assert exchange(srv, q, proto)[0] == first, (name, proto, edns)
                assert exchange(off, q, proto)[0] == first, (name, proto, edns)


# ---- the shared Corefile: AAAA filter, search-path NXDOMAIN, wildcard ------------------------

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"


def shared_without_nsid(tmp: Path) -> str:
    text = (SHARED / "template-filters.Corefile").read_text()
    return "".join(line for line in text.splitlines(True) if not line.strip().startswith("nsid"))


def test_shared_corefile_validates(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(shared_without_nsid(tmp_path))
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr


def test_shared_corefile_serves(tmp_path: Path) -> None:
    text = shared_without_nsid(tmp_path).replace(".:53 {", ".:@PORT@ {\n    bind 127.0.0.1")
    text = text.replace("pods insecure", "pods insecure\n        manifests k8s.yaml")
    text = text.replace("    ready\n", "    ready 127.0.0.1:@P1@\n")  # not :8181
    with serve(text, tmp_path, files={"k8s.yaml": MANIFEST}) as s:
        check(s, both([
            # the dual-stack service: its A record, but no AAAA (the filter answers first)
            Case("dual.demo.svc.cluster.local.", answer=["dual.demo.svc.cluster.local. 5 IN A 10.96.0.60"]),
            Case("dual.demo.svc.cluster.local.", "AAAA", answer=[], ns=[], flags=AA),
            Case("anything.example.", "AAAA", answer=[], flags=AA),
            # search-path expansions of the cloud's internal domain: NXDOMAIN at once
            Case("www.example.com.demo.svc.internal.cloudapp.net.", "A", NX, answer=[], flags=AA),
            Case("a.b.c.d.internal.cloudapp.net.", "TXT", NX, answer=[]),
            # the wildcard
            Case("shop.apps.example.test.", answer=["shop.apps.example.test. 30 IN A 10.1.2.3"]),
        ]))  # fmt: skip


# ---- the reference CoreDNS ---------------------------------------------------------------------

DIFF_QUERIES = [
    ("ip-1-2-3-4.example.", "A"), ("www.ip-1-2-3-4.example.", "A"), ("Ip-1-2-3-4.Example.", "A"),
    ("4.3.2.1.in-addr.arpa.", "PTR"), ("ip0a7b0cff.example.", "A"), ("ip-10-1-2-3.dc.example.", "A"),
    ("5.6.7.8.ext.example.", "A"), ("ip-10-0-0-9.example.", "MX"), ("ip-1-2-3-4.example.", "MX"),
    ("ip-1-2-3-4.example.", "ANY"), ("foo.invalid.", "A"), ("foo.invalid.", "SOA"),
    ("x.ede.test.", "TXT"), ("foogle.test.", "A"), ("foogle.test.", "AAAA"), ("foogle.test.", "MX"),
    ("ABC.Data.Test.", "TXT"), ("shop-1.prod.apps.test.", "A"), ("a.b.prod.apps.test.", "A"),
    ("exec.fail.test.", "A"), ("rr.fail.test.", "A"), ("x.servfail.test.", "A"),
    ("other.strict.test.", "A"), ("only.strict.test.", "A"), ("only.strict.test.", "TXT"),
    ("x.sub.fall.test.", "A"), ("x.fall.test.", "A"), ("x.refused.test.", "TXT"),
    ("x.who.test.", "TXT"),
    ("unknown.test.", "A"),
]  # fmt: skip


def comparable(r: dns.message.Message) -> str:
    """Everything but the ID, one line per record in wire order, owner names lower-cased.

    (dnspython compresses names case-insensitively, miekg/dns does not: an owner equal to the
    question in another case shows the question's case here, the template's in CoreDNS. That
    is the server's rendering, not the template plugin's.)
    """
    r.id = 0
    lines, records = [], False
    for line in r.to_text().splitlines():
        if records and not line.startswith(";"):
            owner, _, rest = line.partition(" ")
            line = f"{owner.lower()} {rest}"
        records = records or line.startswith(";QUESTION")
        lines.append(line)
    return "\n".join(lines)


def ask(s: Server, q: dns.message.Message, proto: str) -> str:
    if proto == "tcp":
        return comparable(dns.query.tcp(q, HOST, port=s.port, timeout=3, one_rr_per_rrset=True))
    return comparable(dns.query.udp(q, HOST, port=s.port, timeout=3, one_rr_per_rrset=True))


def test_same_answers_as_coredns(srv: Server, tmp_path: Path) -> None:
    with serve_coredns(REFERENCE, tmp_path) as ref:
        for name, rdtype in DIFF_QUERIES:
            for proto, edns in (("udp", False), ("tcp", True)):
                q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
                assert ask(srv, q, proto) == ask(ref, q, proto), (name, rdtype, proto)


def test_other_classes_are_refused_as_by_coredns(srv: Server, tmp_path: Path) -> None:
    """template does not open CH (only chaos, forward and proxy do): REFUSED before it."""
    with serve_coredns(REFERENCE, tmp_path) as ref:
        q = dns.message.make_query("foo.invalid.", "TXT", "CH")
        assert ask(ref, q, "udp") == ask(srv, q, "udp")


def test_replay_declarations() -> None:
    """What the fast path may keep: answers that depend on the question and config only."""
    from clusterdns.plugins.template import TemplatePlugin
    from clusterdns.request import Request

    path = "/etc/coredns/Corefile"
    conf = ".:1053 {\n" + TEMPLATES + "\n}\n"
    plugin = build(parse_corefile_text(conf, path), path, conf).blocks[0].find("template")
    assert isinstance(plugin, TemplatePlugin)

    def replayable(name: str, rdtype: str = "A") -> bool:
        q = dns.message.make_query(name, rdtype)
        return plugin.replayable(Request(q, "127.0.0.1", 5300, "udp", 40))

    assert replayable("ip-1-2-3-4.example.") and replayable("x.invalid.", "MX")
    assert not replayable("x.who.test.", "TXT")  # .Remote
    assert not replayable("abc.data.test.", "TXT")  # .Remote and .Meta
    assert not replayable("foogle.test.") and not replayable("foogle.test.", "AAAA")  # chased
    assert replayable("foogle.test.", "TXT")  # a CNAME, but not chased
    assert not replayable("other.strict.test.")  # SERVFAIL
    assert replayable("elsewhere.org.")  # not a template's: the next plugin decides
