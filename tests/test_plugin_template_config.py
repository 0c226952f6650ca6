"""template's configuration: every setup error and its message, the regexes CoreDNS rejects
(the reference binary says so too), and the template forms both servers render and label alike.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import dns.message
import pytest

from clusterdns.config import build
from clusterdns.corefile.parser import parse_corefile_text
from clusterdns.errors import ConfigErrors
from tests.coredns_ref import require, serve_coredns
from tests.harness import Server, free_port, run_cli, serve, setup_error
from tests.test_plugin_template import REFERENCE, ask

# ---- configuration errors --------------------------------------------------------------------


def config_error(body: str) -> tuple[int, str]:
    path = "/etc/coredns/Corefile"
    conf = ".:1053 {\n" + body + "}\n"
    with pytest.raises(ConfigErrors) as e:
        build(parse_corefile_text(conf, path), path, conf)
    err = e.value.errors[0]
    assert err.file == path
    return err.line, str(err)


SETUP_ERRORS = [
    ("template\n", 2, "wrong argument count"),
    ("template IN\n", 2, "wrong argument count"),
    ("template in A\n", 2, "template: invalid query class in"),
    ("template IN BOGUS\n", 2, "template: invalid RR class BOGUS"),
    ("template IN a\n", 2, "template: invalid RR class a"),
    ("template IN A {\n match\n}\n", 3, "wrong argument count"),
    ("template IN A {\n answer\n}\n", 3, "wrong argument count"),
    ("template IN A {\n rcode\n}\n", 3, "wrong argument count"),
    ("template IN A {\n rcode nxdomain\n}\n", 3, "template: unknown rcode nxdomain"),
    ("template IN A {\n rcode NOERROR extra\n}\n", 3, "wrong argument count"),
    ("template IN A {\n ederror\n}\n", 3, "wrong argument count"),
    ("template IN A {\n ederror 1 a b\n}\n", 3, "wrong argument count"),
    ("template IN A {\n ederror x\n}\n", 3,
     'error parsing extended DNS error code x, strconv.ParseUint: parsing "x": invalid syntax'),
    ("template IN A {\n ederror 65536\n}\n", 3, "value out of range"),
    ("template IN A {\n bogus\n}\n", 3, "template: unknown property 'bogus'"),
    ("template IN A {\n match ^a(?=b)\n}\n", 3,
     "template: could not parse regex: ^a(?=b), look-ahead (?=…) is not supported by Go's RE2"),
    ("template IN A {\n match (a)\\1\n}\n", 3, "invalid escape sequence: `\\1`"),
    ("template IN A {\n match a++\n}\n", 3, "invalid nested repetition operator"),
    ("template IN A {\n match (?>a)\n}\n", 3, "the atomic group (?>…)"),
    ("template IN A {\n match " + "a" * 10001 + "\n}\n", 3,
     "template: regex pattern too long: 10001 > 10000"),
    ('template IN A {\n answer "{{ .Name"\n}\n', 3,
     "template: could not compile template: {{ .Name, template: answer:1: unclosed action"),
    ('template IN A {\n additional "{{ .Nom }}"\n}\n', 3,
     "template: additional:1: can't evaluate field Nom"),
    ('template IN A {\n authority "{{ if .Name }}{{ end }}"\n}\n', 3, "{{if}} is not supported"),
    ('template IN A {\n answer "{{ .Message }}"\n}\n', 3,
     "printing .Message (miekg/dns's Msg.String()) is not supported"),
    ('template IN A {\n answer "{{ printf \\"%s\\" .Name }}"\n}\n', 3, "the function 'printf'"),
    ('template IN A {\n answer "ok" "{{ nope }}"\n}\n', 3, 'function "nope" not defined'),
]  # fmt: skip


@pytest.mark.parametrize(("body", "line", "message"), SETUP_ERRORS)
def test_setup_errors(body: str, line: int, message: str) -> None:
    got_line, text = config_error(body)
    assert got_line == line and message in text, text


def test_setup_error_from_the_command_line(tmp_path: Path) -> None:
    setup_error(tmp_path, "template IN A {\n match (?<=x)y\n}\n", 3,
                "template: could not parse regex: (?<=x)y, look-behind (?<=…) is not supported")  # fmt: skip


def test_setup_accepts_every_option(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(REFERENCE.replace("@PORT@", "1053").replace("@P1@", "9253"))
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr


#: Template forms rendered by both servers (into TXT) and reported by both (in the `template`
#: label of the failure counters, which is Go's String() of the parsed template): the A
#: templates fail, as records (`$BAD`) or, for f4.test (parseInt of an empty group), as Go.
FORMS = [
    "{{ .Name }}",
    "x {{- .Type -}}  y",
    "{{-3}} {{ 0x10 }} {{ 1_000 }}",
    '{{ index .Match 0 }} {{ index .Group \\"0\\" }} {{ .Group.nope }}',
    '{{ parseInt \\"ff\\" 16 8 }} {{ 8 | parseInt \\"0x1F\\" 0 }} {{ parseInt (index .Match 1) 36 0 }}',
    "{{ (index .Match 0) }} {{ index .Name 0 }}",
    "{{ .Question.Name }} {{ .Question.Qtype }} {{ .Question.Qclass }}",
    "{{ .Message.Id }} {{ .Message.RecursionDesired }} {{ .Message.Opcode }}",
    "{{/* c */}}a{{- /* d */ -}}  b",
    "{{ `raw` }} {{ .Match }} {{ .Group }}",
    '{{ \\"k\\" | .Meta }}|{{ .Meta \\"k\\" }}',
]


def forms_corefile() -> str:
    blocks = []
    for i, form in enumerate(FORMS):
        blocks.append(
            f"    template IN TXT f{i}.test {{\n"
            f'        match "^(x)?[.]?f{i}[.]test[.]$"\n'
            f'        answer "{{{{ .Name }}}} 0 IN TXT \\"{form}\\""\n    }}\n'
            f"    template IN A f{i}.test {{\n"
            f'        answer "$BAD {form}"\n    }}\n'
        )
    return (
        ".:@PORT@ {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:@P1@\n" + "".join(blocks) + "}\n"
    )


def labels(s: Server) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    out: set[str] = set()
    for family in text_string_to_metric_families(s.metrics()):
        for sample in family.samples:
            if sample.name.endswith("failures_total") and "template" in sample.labels:
                out.add(f"{sample.name}: {sample.labels['template']}")
    return out


def test_template_forms_as_coredns(tmp_path: Path) -> None:
    corefile = forms_corefile()
    (tmp_path / "ours").mkdir()
    with (
        serve(corefile, tmp_path / "ours") as ours,
        serve_coredns(corefile, tmp_path / "ref") as ref,
    ):
        for i in range(len(FORMS)):
            for name in (f"x.f{i}.test.", f"X.F{i}.test."):
                q = dns.message.make_query(name, "TXT", use_edns=False)
                q.id = 77
                assert ask(ours, q, "udp") == ask(ref, q, "udp"), FORMS[i]
            q = dns.message.make_query(f"f{i}.test.", "A")
            assert ask(ours, q, "udp") == ask(ref, q, "udp"), FORMS[i]
        assert labels(ours) == labels(ref)
        assert len(labels(ours)) == len(FORMS)


#: Patterns Go's regexp rejects; ClusterDNS must reject them too, with Go's words (the
#: look-arounds and friends with its own, clearer ones).
GO_REJECTS = [r"x\Z", "a++", "a*??", "a{2}{3}", r"(a)\1", "(?#c)", "(?i-)x", "a{1001}",
              "[[:foo:]]", "[z-a]", r"\C", "(", "*a"]  # fmt: skip
PERL_ONLY = ["(?=x)", "(?!x)", "(?<=x)", "(?<!x)", "(?>a)", "(?P<n>a)(?P=n)", r"\k<n>"]


@pytest.mark.parametrize("pattern", GO_REJECTS + PERL_ONLY)
def test_regexes_coredns_rejects_are_rejected(pattern: str, tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(f'.:{free_port()} {{\n template IN A x {{\n  match "{pattern}"\n }}\n}}\n')
    r = subprocess.run([str(require()), "-conf", str(conf)], capture_output=True, text=True,
                       timeout=20)  # fmt: skip
    found = re.search(r"could not parse regex: .*", r.stdout + r.stderr)
    assert r.returncode == 1 and found, r.stdout + r.stderr
    line, ours = config_error(f' template IN A x {{\n  match "{pattern}"\n }}\n')
    assert line == 3
    if pattern in GO_REJECTS:
        assert found.group(0) in ours
