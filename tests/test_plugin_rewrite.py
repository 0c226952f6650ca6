"""rewrite: the query rewritten for the chain, the answer rewritten back for the client.

One server holds a block per theme (zones on one port): names (every match type and answer
rewrite), rule order with continue/stop, TTL and rcode rewrites; hosts answers behind them.
The client always gets its own question back. Setup errors are CoreDNS's texts.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.harness import Case, Server, check, exchange, run_cli, serve, setup_error

COREFILE = """
example.:@PORT@ {
    bind 127.0.0.1
    errors
    rewrite name exact foo.example. target.example.
    rewrite name prefix www. web.
    rewrite name substring -dev. .
    rewrite name suffix .corp.example. .example. answer auto
    rewrite name suffix .noauto.example. .example.
    rewrite name regex (.*)-(west)\\.example\\. {1}.{2}.region.example.
    rewrite stop {
        name regex (.*)\\.svc\\.example\\. {1}.region.example.
        answer name (.*)\\.region\\.example\\. {1}.svc.example.
    }
    rewrite name regex (.*)\\.prx\\.example\\. {1}.region.example. answer auto
    rewrite name regex (.*)\\.bad\\.example\\. {1}..broken.
    hosts {
        10.0.0.1 target.example.
        10.0.0.2 web.shop.example.
        10.0.0.3 api.example.
        10.0.0.4 app.example.
        10.0.0.5 api.west.region.example.
        10.0.0.6 db.region.example.
        fallthrough
    }
}
in-addr.arpa.:@PORT@ {
    bind 127.0.0.1
    rewrite name suffix .arpa. .arpa. answer auto answer value (.*)\\.internal\\.example\\. {1}.public.example.
    hosts /dev/null . {
        10.9.0.1 host.internal.example.
    }
}
chain.:@PORT@ {
    bind 127.0.0.1
    rewrite continue name exact a.chain. b.chain.
    rewrite continue name exact b.chain. c.chain.
    rewrite name exact c.chain. d.chain.
    rewrite name exact d.chain. e.chain.
    rewrite continue type MX A
    rewrite continue {
        name exact x.chain. y.chain.
    }
    rewrite stop name exact y.chain. mx.chain.
    hosts {
        10.1.0.4 d.chain.
        10.1.0.5 e.chain.
        10.1.0.6 mx.chain.
    }
}
cls.:@PORT@ {
    bind 127.0.0.1
    chaos
    rewrite class CH IN
    hosts {
        10.3.0.1 c.cls.
    }
}
ttl.:@PORT@ {
    bind 127.0.0.1
    rewrite continue ttl regex (.*)\\.short\\.ttl 15
    rewrite continue ttl suffix .clamp.ttl. 30-300
    rewrite continue ttl exact min.ttl. 7200-
    rewrite continue ttl cap.ttl. -60
    rewrite continue ttl exact inside.ttl. 60-
    rewrite rcode exact missing.ttl. SERVFAIL NXDOMAIN
    rewrite rcode regex ^fail\\. 2 5
    hosts {
        10.2.0.1 a.short.ttl.
        10.2.0.2 x.clamp.ttl.
        10.2.0.3 min.ttl.
        10.2.0.4 cap.ttl.
        10.2.0.5 inside.ttl.
        fallthrough fail.ttl.
    }
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("rewrite")) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def a(owner: str, ip: str, ttl: int = 3600) -> list[str]:
    return [f"{owner} {ttl} IN A {ip}"]


AA = {"AA"}


def test_name_match_types(srv: Server) -> None:
    check(
        srv,
        both(
            [
                # exact: the answer is always mapped back onto the name asked.
                Case("foo.example.", answer=a("foo.example.", "10.0.0.1"), flags=AA),
                # prefix, substring: rewritten, answered under the rewritten name.
                Case("www.shop.example.", answer=a("web.shop.example.", "10.0.0.2")),
                Case("api-dev.example.", answer=a("api.example.", "10.0.0.3")),
                # suffix with answer auto: the suffixes swapped back.
                Case("app.corp.example.", answer=a("app.corp.example.", "10.0.0.4")),
                Case("app.noauto.example.", answer=a("app.example.", "10.0.0.4")),
                # regex with {N} groups, no answer rewrite.
                Case("api-west.example.", answer=a("api.west.region.example.", "10.0.0.5")),
                # regex with an explicit answer name rewrite, and with answer auto.
                Case("db.svc.example.", answer=a("db.svc.example.", "10.0.0.6")),
                Case("db.prx.example.", answer=a("db.prx.example.", "10.0.0.6")),
                # Not matched by any rule: hosts, then nothing (SERVFAIL).
                Case("target.example.", answer=a("target.example.", "10.0.0.1")),
                Case("none.example.", rcode=dns.rcode.SERVFAIL),
            ]
        ),
    )


def test_answer_value_rewrite(srv: Server) -> None:
    check(
        srv,
        [
            Case(
                "1.0.9.10.in-addr.arpa.",
                "PTR",
                answer=["1.0.9.10.in-addr.arpa. 3600 IN PTR host.public.example."],
            )
        ],
    )


def test_invalid_name_after_rewrite(srv: Server) -> None:
    r = srv.query("x.bad.example.")
    assert r.rcode() == dns.rcode.SERVFAIL
    assert r.question[0].name.to_text() == "x.bad.example."
    srv.wait_output(
        r"\[ERROR\] plugin/errors: 2 x\.bad\.example\. A: .*invalid name after rewrite: "
        r"x\.\.broken\."
    )


def test_client_gets_its_question_back(srv: Server) -> None:
    for name, qtype in [("FoO.ExAmple.", "A"), ("App.Corp.Example.", "A"), ("MX.chain.", "MX")]:
        for proto in ("udp", "tcp"):
            q = dns.message.make_query(name, qtype)
            r = srv.send(q, proto)  # dnspython checks the question (case-insensitively)
            wire, _ = exchange(srv, q, proto)
            assert name.encode("ascii").split(b".")[0] in wire[12:40], wire  # case kept
            assert r.answer, r
            # The answer is under the name asked (dnspython compresses it onto the question).
            assert r.answer[0].name == q.question[0].name


def test_continue_and_stop(srv: Server) -> None:
    check(
        srv,
        both(
            [
                # a→b→c (continue), c→d (stop): d's address, mapped back d→c→b→a.
                Case("a.chain.", answer=a("a.chain.", "10.1.0.4")),
                # The stop rule ends the list: the MX→A rule after it never runs.
                Case("a.chain.", "MX", answer=[]),
                Case("d.chain.", answer=a("d.chain.", "10.1.0.5")),
                # type rewrite (continue, then no rule left): A records, MX question.
                Case("mx.chain.", "MX", answer=a("mx.chain.", "10.1.0.6")),
                # A block rule (continue) then a one-line stop rule.
                Case("x.chain.", answer=a("x.chain.", "10.1.0.6")),
                Case("x.chain.", "MX", answer=a("x.chain.", "10.1.0.6")),
            ]
        ),
    )


def test_class(srv: Server) -> None:
    """CH queries reach the chain (chaos answers other classes); hosts answers them as IN."""
    check(srv, both([Case("c.cls.", "A", qclass="CH", answer=a("c.cls.", "10.3.0.1"))]))


def test_ttl_and_rcode(srv: Server) -> None:
    check(
        srv,
        both(
            [
                Case("a.short.ttl.", answer=a("a.short.ttl.", "10.2.0.1", 15)),
                Case("x.clamp.ttl.", answer=a("x.clamp.ttl.", "10.2.0.2", 300)),
                Case("min.ttl.", answer=a("min.ttl.", "10.2.0.3", 7200)),
                Case("cap.ttl.", answer=a("cap.ttl.", "10.2.0.4", 60)),
                Case("inside.ttl.", answer=a("inside.ttl.", "10.2.0.5", 3600)),
                # hosts: SERVFAIL for a name it does not have; the rule makes it NXDOMAIN.
                Case("missing.ttl.", rcode=dns.rcode.NXDOMAIN),
                # fallthrough, then no next plugin (SERVFAIL): rewritten to REFUSED.
                Case("fail.ttl.", rcode=dns.rcode.REFUSED),
                Case("other.ttl.", rcode=dns.rcode.SERVFAIL),
            ]
        ),
    )


def test_rewritten_answers_are_stable(srv: Server) -> None:
    for name in ("foo.example.", "app.corp.example.", "a.chain.", "x.clamp.ttl."):
        q = dns.message.make_query(name, "A")
        first, _ = exchange(srv, q)
        second, _ = exchange(srv, q)
        assert first == second


# ---- setup errors ----------------------------------------------------------------------------

LONG = "a" * 10001


SETUP_ERRORS: list[tuple[str, str]] = [
    ("rewrite foo a b", 'plugin/rewrite: invalid rule type "foo"'),
    ("rewrite continue", "continue rule must begin with a rule type"),
    ("rewrite stop", "stop rule must begin with a rule type"),
    ("rewrite answer name a b", "response rewrites must begin with a name rule"),
    ("rewrite name a", "too few arguments for a name rule"),
    (
        "rewrite name a b c",
        "name rule supports only exact, prefix, suffix, substring, and "
        "regex name matching, received: a",
    ),
    ("rewrite name a b c d", "invalid arguments for a rule"),
    (
        "rewrite name exact a b c d",
        "exceeded the number of arguments for a non-answer rule argument for exact rule",
    ),
    ("rewrite name regex a b answer", "invalid arguments for regex rule"),
    ("rewrite name regex a b answer foo x", 'invalid type "foo" for answer rule for regex'),
    (
        "rewrite name regex a b answer name x",
        "name answer rule for regex rule: 2 arguments required",
    ),
    (
        "rewrite name regex a b answer name x y answer",
        "type missing for answer rule for regex rule",
    ),
    (
        "rewrite name regex a b answer value x",
        "value answer rule for regex rule: 2 arguments required",
    ),
    (
        "rewrite name regex a b answer name (x y",
        "name answer rule for regex rule: invalid regex matching pattern: (x",
    ),
    (
        "rewrite name regex a b answer auto answer name x y",
        "auto name answer rule cannot be combined with explicit name anwer rules",
    ),
    ("rewrite name regex (a {1}{2}", "invalid regex matching pattern: (a"),
    (
        "rewrite name regex (a) {1}{2}",
        "the rewrite regex pattern ({1}{2}) uses more "
        "subexpressions than its corresponding matching regex pattern ((a))",
    ),
    (f"rewrite name regex {LONG} b", "regex pattern too long: 10001 > 10000"),
    # sic: CoreDNS compiles an exact rule's TO as a regex.
    ("rewrite name exact a c(d", "invalid regex matching pattern: c(d."),
    ("rewrite type A", "type rules must have exactly two arguments"),
    ("rewrite type A FOO", 'invalid type "FOO"'),
    ("rewrite type TYPE65 A", 'invalid type "TYPE65"'),
    ("rewrite class IN", "class rules must have exactly two arguments"),
    ("rewrite class XX IN", 'invalid class "XX"'),
    ("rewrite ttl a", "too few (1) arguments for a ttl rule"),
    ("rewrite ttl a b", "invalid TTL 'b' for a ttl rule"),
    ("rewrite ttl a -", "invalid TTL '-' for a ttl rule"),
    ("rewrite ttl a 20-10", "invalid TTL '20-10' for a ttl rule"),
    ("rewrite ttl a 4294967296", "invalid TTL '4294967296' for a ttl rule"),
    ("rewrite ttl a b c 5", "invalid TTL '' for a ttl rule"),
    (
        "rewrite ttl foo a 5",
        "ttl rule supports only exact, prefix, suffix, substring, and regex name matching",
    ),
    ("rewrite ttl regex (a 5", "invalid regex pattern in a ttl rule: (a"),
    (f"rewrite ttl regex {LONG} 5", "regex pattern too long in a ttl rule: 10001 > 10000"),
    ("rewrite rcode a b", "too few (2) arguments for a rcode rule"),
    ("rewrite rcode a FOO 0", "invalid matching RCODE 'FOO' for a rcode rule"),
    ("rewrite rcode a 0 24", "invalid replacement RCODE '24' for a rcode rule"),
    ("rewrite rcode a b 0 1 2", "invalid matching RCODE '' for a rcode rule"),
    ("rewrite rcode foo a 0 1", "rcode rule supports only exact"),
    ("rewrite rcode regex (a 0 1", "invalid regex pattern in a rcode rule: (a"),
    ("rewrite cname a", "too few (1) arguments for a cname rule"),
    ("rewrite cname a b c d", "too few (4) arguments for a cname rule"),
    ("rewrite cname foo a b", "unknown cname rewrite type: foo"),
    ("rewrite cname regex (a b", "invalid cname rewrite regex pattern"),
    (f"rewrite cname regex {LONG} b", "regex pattern too long in a cname rule"),
    ("rewrite edns0 local", "too few arguments for an EDNS0 rule"),
    ("rewrite edns0 local foo 1 2", 'invalid action: "foo"'),
    ("rewrite edns0 local set 0xffee", "EDNS0 local rules require three or four args"),
    ("rewrite edns0 local set zz abc", 'strconv.ParseUint: parsing "zz": invalid syntax'),
    (
        "rewrite edns0 local set 70000 abc",
        'strconv.ParseUint: parsing "70000": value out of range',
    ),
    ("rewrite edns0 local set 1 0xzz", "encoding/hex: invalid byte: U+007A 'z'"),
    ("rewrite edns0 local set 1 0xabc", "encoding/hex: odd length hex string"),
    ("rewrite edns0 local set 1 {bogus}", 'unsupported variable name "{bogus}"'),
    ("rewrite edns0 local unset", "local unset action requires exactly two arguments"),
    ("rewrite edns0 nsid set x", "EDNS0 NSID rules can accept no more than one arg"),
    ("rewrite edns0 nsid unset x", "nsid unset action requires exactly one argument"),
    ("rewrite edns0 subnet set 24", "EDNS0 subnet rules require three or four args"),
    ("rewrite edns0 subnet set 33 56", "invalid IPv4 bit mask length 33"),
    ("rewrite edns0 subnet set 24 129", "invalid IPv6 bit mask length 129"),
    ("rewrite edns0 subnet unset 1", "subnet unset action requires exactly one argument"),
    ("rewrite edns0 foo set", 'invalid rule type "foo"'),
    ("rewrite edns0 foo unset", 'invalid rule type "foo"'),
    ("rewrite stop name a b {\n    name c d\n  }", "no rule type specified for rewrite"),
    ("rewrite stop name a {\n    name c d\n  }", "too few arguments for a name rule"),
]


#: RE2 has these, Python's re has not (or not alike): refused, not misread.
CLUSTERDNS_REFUSES: list[tuple[str, str]] = [
    ("a(?i)b", "flags in the middle of a pattern are not supported by ClusterDNS"),
    ("(?U)a+", "the ungreedy flag `U` is not supported by ClusterDNS"),
    ("\\C", "`\\C` (Unicode classes, single bytes) is not supported by ClusterDNS"),
    ("[[:^alpha:]]", "negated POSIX classes (`[:^alpha:]`) are not supported by ClusterDNS"),
]


def test_regexes_clusterdns_refuses(tmp_path: Path) -> None:
    rules = [(f"rewrite name regex {p} x.example.", why) for p, why in CLUSTERDNS_REFUSES]
    expect_errors(tmp_path, rules)


RE2_REJECTS: list[tuple[str, str]] = [
    ("(?=a)b", "invalid or unsupported Perl syntax: `(?=`"),
    ("(?!a)b", "invalid or unsupported Perl syntax: `(?!`"),
    ("(?<=a)b", "invalid or unsupported Perl syntax: `(?<=`"),
    ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<!`"),
    ("(a)\\1", "invalid escape sequence: `\\1`"),
    ("(?P<x>a)(?P=x)", "invalid or unsupported Perl syntax: `(?P=`"),
    ("(?>a)", "invalid or unsupported Perl syntax: `(?>`"),
    ("a*+", "invalid nested repetition operator: `*+`"),
    ("a{2}+", "invalid nested repetition operator: `{2}+`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    ("a\\Z", "invalid escape sequence: `\\Z`"),
    ("(?#c)a", "invalid or unsupported Perl syntax: `(?#`"),
    # RE2 has these, Python's re has not: refused rather than misread.
    ("\\p{Greek}", "`\\p` (Unicode classes, single bytes) is not supported by ClusterDNS"),
]


def expect_errors(tmp: Path, rules: list[tuple[str, str]]) -> None:
    """Each rule in a server block of its own (setup stops at a block's first error), one
    `-validate` for all: every block's error names its rule's line and CoreDNS's text."""
    text, want = "", []
    for i, (rule, message) in enumerate(rules):
        line = text.count("\n") + 3
        text += f".:{1053 + i} {{\n  whoami\n  {rule}\n}}\n"
        want.append((line, message))
    conf = tmp / "Corefile"
    conf.write_text(text)
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    got = {}
    for out in r.stderr.splitlines():
        m = re.match(rf"Error: {re.escape(str(conf))}:(\d+) - (.*)", out)
        if m:
            got[int(m.group(1))] = m.group(2)
    for (rule, _), (line, message) in zip(rules, want, strict=True):
        assert line in got, f"{rule!r}: no error at line {line}:\n{r.stderr}"
        assert got[line].startswith("plugin/rewrite: ") and message in got[line], (rule, got[line])


def test_setup_errors(tmp_path: Path) -> None:
    expect_errors(tmp_path, SETUP_ERRORS)


def test_setup_error_form(tmp_path: Path) -> None:
    setup_error(
        tmp_path, "  whoami\n  rewrite foo a b\n", 3, 'plugin/rewrite: invalid rule type "foo"'
    )


def test_regexes_re2_rejects(tmp_path: Path) -> None:
    rules = []
    for pattern, why in RE2_REJECTS:
        word = f'"{pattern}"' if "#" in pattern else pattern  # a bare # starts a comment
        rules.append(
            (
                f"rewrite name regex {word} x.example.",
                f"invalid regex matching pattern: {pattern} ({why})",
            )
        )
        rules.append((f"rewrite ttl regex {word} 5", why))
    expect_errors(tmp_path, rules)


def test_re2_syntax_python_lacks(tmp_path: Path) -> None:
    """Go's `(?<name>…)`, `\\z`, `\\Q…\\E`, POSIX classes and a literal `{,2}` work."""
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite continue name regex ^(?<host>[[:alpha:]]+)-q\\.example\\.\\z {1}.example.
    rewrite continue name regex ^\\Qa.b\\E\\.example\\.$ target.example.
    rewrite continue name regex (?i)^CI\\.EXAMPLE\\.$ target.example.
    rewrite name regex ^x{,2}\\.example\\.$ target.example.
    hosts {
        10.0.0.1 target.example.
        10.0.0.2 abc.example.
    }
}
"""
    with serve(corefile, tmp_path) as s:
        check(
            s,
            [
                Case("abc-q.example.", answer=a("abc.example.", "10.0.0.2")),
                Case("ab1-q.example.", rcode=dns.rcode.SERVFAIL),
                Case("a.b.example.", answer=a("target.example.", "10.0.0.1")),
                Case("axb.example.", rcode=dns.rcode.SERVFAIL),  # \Q…\E: the dot is literal
                Case("x{,2}.example.", answer=a("target.example.", "10.0.0.1")),
                Case("xx.example.", rcode=dns.rcode.SERVFAIL),
                Case("ci.example.", answer=a("target.example.", "10.0.0.1")),
            ],
        )


def test_flags_kept(srv: Server) -> None:
    r = srv.query("foo.example.")
    assert r.flags & dns.flags.AA and r.flags & dns.flags.RD


RELOAD = """
.:@PORT@ {
    bind 127.0.0.1
    reload 2s 1s
    rewrite name exact alias.example. target.example.
    hosts {
        10.0.0.1 target.example.
    }
}
"""


def test_invalid_rule_on_reload_keeps_the_old_config(tmp_path: Path) -> None:
    with serve(RELOAD, tmp_path) as s:
        check(s, [Case("alias.example.", answer=a("alias.example.", "10.0.0.1"))])
        bad = "rewrite name regex (?<!x)alias\\.example\\. other.example."
        s.conf.write_text(s.conf.read_text().replace("rewrite name exact", bad + "\n    #"))
        s.signal(signal.SIGUSR1)
        s.wait_output(
            r"\[ERROR\] Restart failed: .*Corefile:5 - plugin/rewrite: invalid regex matching pattern: "
            r"\(\?<!x\)alias"
        )
        check(s, [Case("alias.example.", answer=a("alias.example.", "10.0.0.1"))])
