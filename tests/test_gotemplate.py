"""The template plugin's hand-written parts, without a server: the Go text/template subset
(parse, Go's String() form, rendering, errors), strconv.ParseUint, the RE2 checks and rewrites,
and reading a rendered record as miekg/dns's NewRR does.

Expected values are Go's: the outputs and String() forms were checked against CoreDNS 1.14.7
(tests/test_plugin_template.py compares the two servers on many of them).
"""

from __future__ import annotations

import pytest

from clusterdns.plugins.template.gotemplate import TemplateError, parse
from clusterdns.plugins.template.govalues import ExecError, GoInt, Header, Question, parse_uint
from clusterdns.plugins.template.re2 import RegexError, compile_go, translate
from clusterdns.plugins.template.records import RRError, parse_rr


class FakeData:
    """The data of the query IP-1-2-3-4.Example. A matched by ^ip-(?P<a>[0-9]+)-…"""

    fields: dict[str, object] = {
        "Zone": "example.",
        "Name": "ip-1-2-3-4.example.",
        "Regex": "^ip-(?P<a>[0-9]+)",
        "Class": "IN",
        "Type": "A",
        "Remote": "192.0.2.7",
        "Match": ["ip-1", "1", ""],
        "Group": {"0": "ip-1", "1": "1", "2": "", "a": "1", "h": "ff"},
        "Question": Question("IP-1-2-3-4.Example.", 1, 1, "IN", "A"),
        "Message": Header(
            GoInt(4660, "uint16"), GoInt(0), GoInt(0), *([False] * 3), True, *([False] * 3), True
        ),
    }

    def field(self, name: str) -> object:
        return self.fields[name]

    def meta(self, key: str) -> str:
        return {"kubernetes/client-namespace": "demo"}.get(key, "")


RENDER = [
    # (template, output, Go's String() of it)
    (
        "{{ .Name }} 60 IN A 1.2.3.4",
        "ip-1-2-3-4.example. 60 IN A 1.2.3.4",
        "{{.Name}} 60 IN A 1.2.3.4",
    ),
    (
        "{{.Zone}}|{{.Class}}|{{.Type}}|{{.Remote}}|{{.Regex}}",
        "example.|IN|A|192.0.2.7|^ip-(?P<a>[0-9]+)",
        None,
    ),
    ('{{ .Group.a }}.{{ index .Group "h" }}', "1.ff", '{{.Group.a}}.{{index .Group "h"}}'),
    ("{{ index .Match 1 }}-{{ index .Match 2 }}-", "1--", None),
    ("{{ .Group.missing }}", "<no value>", None),
    ('{{ index .Group "missing" }}|', "|", None),
    ("{{ .Match }} {{ .Group }}", "[ip-1 1 ] map[0:ip-1 1:1 2: a:1 h:ff]", None),
    ("{{ .Question }}", ";IP-1-2-3-4.Example.\tIN\t A", None),
    (
        "{{ .Question.Name }} {{ .Question.Qtype }} {{ .Question.Qclass }}",
        "IP-1-2-3-4.Example. 1 1",
        None,
    ),
    (
        "{{ .Message.Id }} {{ .Message.RecursionDesired }} {{ .Message.CheckingDisabled }}",
        "4660 true true",
        None,
    ),
    ('{{ .Meta "kubernetes/client-namespace" }}|{{ .Meta "nope" }}|', "demo||", None),
    (
        '{{ "kubernetes/client-namespace" | .Meta }}',
        "demo",
        '{{"kubernetes/client-namespace" | .Meta}}',
    ),
    ("{{ parseInt .Group.h 16 8 }}", "255", "{{parseInt .Group.h 16 8}}"),
    ("{{ 8 | parseInt .Group.h 16 }}", "255", "{{8 | parseInt .Group.h 16}}"),
    ('{{ parseInt "0x1_0" 0 64 }} {{ parseInt "017" 0 8 }}', "16 15", None),
    (
        "{{ index .Match (parseInt .Group.a 10 8) }}",
        "1",
        "{{index .Match (parseInt .Group.a 10 8)}}",
    ),
    ("{{ (index .Match 0) }}", "ip-1", "{{(index .Match 0)}}"),
    ("{{ index .Name 0 }}", "105", None),  # a byte, printed as a number
    (
        '{{ "a\\tb" }}{{ `r\\n` }}{{ -3 }}{{ 0x10 }}',
        "a\tbr\\n-316",
        '{{"a\\tb"}}{{`r\\n`}}{{-3}}{{0x10}}',
    ),
    # Trimming: "{{- " eats the space before, " -}}" the space after (newlines too).
    ("a  {{- .Type -}}  \n b", "aAb", "a{{.Type}}b"),
    ("{{-3}}", "-3", "{{-3}}"),  # not a trim marker: no space after the dash
    ("a {{/* a comment */}} b{{- /* trimmed */ -}} c", "a  bc", "a  bc"),
    ("{{ .Name\n}}", "ip-1-2-3-4.example.", "{{.Name}}"),  # newlines inside an action
    ("no actions at all", "no actions at all", "no actions at all"),
]


@pytest.mark.parametrize(("text", "out", "string"), RENDER)
def test_render(text: str, out: str, string: str | None) -> None:
    t = parse("answer", text)
    assert t.execute(FakeData()) == out
    if string is not None:
        assert str(t) == string


def test_uses_names_the_data_read() -> None:
    assert parse("a", "{{ .Name }} {{ index .Group 1 }}").uses == {"Name", "Group"}
    assert parse("a", '{{ .Meta "x" }} {{ .Remote }}').uses == {"Meta", "Remote"}


PARSE_ERRORS = [
    ("{{ .Name", "template: answer:1: unclosed action"),
    ("x\n{{ .Name", "template: answer:2: unclosed action"),
    ("{{ }}", "missing value for command"),
    ("{{ .Foo }}", "can't evaluate field Foo: the data has .Zone"),
    ("{{ .Name.Foo }}", "can't evaluate field Foo in .Name"),
    ("{{ .Group.a.b }}", "can't evaluate field b in .Group.a"),
    ("{{ .Question.Foo }}", "can't evaluate field Foo in .Question"),
    ("{{ .Message }}", "printing .Message (miekg/dns's Msg.String()) is not supported"),
    ("{{ .Message.Answer }}", "can't evaluate field Answer in .Message"),
    ("{{ . }}", "'.' (the whole data) is not supported"),
    ("{{ if .Name }}x{{ end }}", "{{if}} is not supported"),
    ("{{ range .Match }}x{{ end }}", "{{range}} is not supported"),
    ('{{ define "x" }}{{ end }}', "{{define}} is not supported"),
    ("{{ $x := .Name }}", "a variable ($…) is not supported"),
    ('{{ printf "%s" .Name }}', "the function 'printf' (only index and parseInt) is not supported"),
    ("{{ len .Match }}", "the function 'len'"),
    ("{{ upper .Name }}", 'function "upper" not defined'),
    ("{{ true }}", "the constant true is not supported"),
    ("{{ 1.5 }}", "the number constant 1.5 (only integers) is not supported"),
    ("{{ 'a' }}", "a character constant"),
    ("{{ 12ab }}", 'bad number syntax: "12ab"'),
    ("{{ .Name-}}", "bad character U+002D '-'"),
    ("{{ (index .Match 1 }}", "unclosed left paren"),
    ("{{ index .Match 1) }}", "unexpected right paren"),
    ('{{ .Name | "x" }}', "non executable command in pipeline stage 2"),
    ('{{ "x }}', "unterminated quoted string"),
    ("{{ `x }}", "unterminated raw quoted string"),
    ('{{ "\\q" }}', "invalid syntax"),
    ("{{ /* x */ }}", "unrecognized character in action: U+002F '/'"),
    ("{{/* x */ x}}", "comment ends before closing delimiter"),
    ("{{/* x ", "unclosed comment"),
    ("{{ (.Name).X }}", "a field of a non-field term"),
    ("{{ .Name = 1 }}", "an assignment"),
    ("{{ .Name % }}", "unrecognized character in action: U+0025 '%'"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        parse("answer", text)
    assert message in str(e.value)
    assert str(e.value).startswith("template: answer:")


EXEC_ERRORS = [
    ("{{ index .Match 5 }}", "error calling index: index out of range: 5"),
    ("{{ index .Match -1 }}", "index out of range: -1"),
    ('{{ index .Match "1" }}', "cannot index slice/array with type string"),
    ("{{ index .Group 1 }}", "value has type int; should be string"),
    ("{{ index .Group.missing 0 }}", "index of untyped nil"),
    ("{{ index .Question 0 }}", "can't index item of type *dns.Question"),
    ("{{ index }}", "wrong number of args for index: want at least 1 got 0"),
    ('{{ parseInt "zz" 16 8 }}', 'strconv.ParseUint: parsing "zz": invalid syntax'),
    ('{{ parseInt "256" 10 8 }}', "value out of range"),
    ('{{ parseInt "1" 1 8 }}', "invalid base 1"),
    ('{{ parseInt "1" 10 65 }}', "invalid bit size 65"),
    ("{{ index .Match 1 | parseInt }}", "wrong number of args for parseInt: want 3 got 1"),
    ("{{ parseInt 16 16 8 }}", "expected string; found 16"),
    ('{{ parseInt .Name "16" 8 }}', 'expected integer; found "16"'),
    ('{{ parseInt "1" (parseInt "16" 10 8) 8 }}', "wrong type for value; expected int; got uint64"),
    ("{{ parseInt .Group.missing 10 8 }}", "invalid value; expected string"),
    ("{{ .Name | .Zone }}", "Zone has arguments but cannot be invoked as function"),
    ('{{ .Group.a "x" }}', "a is not a method but has arguments"),
    ("{{ .Meta }}", "wrong number of args for Meta: want 1 got 0"),
    ('{{ "x" 1 }}', 'can\'t give argument to non-function "x"'),
]


@pytest.mark.parametrize(("text", "message"), EXEC_ERRORS)
def test_exec_errors(text: str, message: str) -> None:
    t = parse("answer", text)
    with pytest.raises(ExecError) as e:
        t.execute(FakeData())
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("s", "base", "bits", "want"),
    [
        ("ff", 16, 8, 255), ("FF", 16, 0, 255), ("0", 0, 64, 0), ("0x1f", 0, 64, 31),
        ("0b101", 0, 8, 5), ("0o17", 0, 8, 15), ("017", 0, 8, 15), ("1_000", 0, 16, 1000),
        ("18446744073709551615", 10, 64, 2**64 - 1), ("z", 36, 8, 35),
        ("", 10, 8, None), ("1_000", 10, 16, None), ("_1", 0, 16, None), ("1__0", 0, 16, None),
        ("+1", 10, 8, None), ("-1", 10, 8, None), ("0x", 0, 8, None), ("256", 10, 8, None),
        ("18446744073709551616", 10, 64, None), ("8", 8, 8, None),
    ],
)  # fmt: skip
def test_parse_uint(s: str, base: int, bits: int, want: int | None) -> None:
    if want is None:
        with pytest.raises(ValueError):
            parse_uint(s, base, bits)
    else:
        assert parse_uint(s, base, bits) == want


REGEX_OK = [
    # (Go pattern, Python spelling, a name it matches, one it does not)
    (r"^(?P<a>[0-9]+)[.]example[.]$", r"^(?P<a>[0-9]+)[\.]example[\.]$", "12.example.", "x.example."),
    (r"(?<a>x)y", r"(?P<a>x)y", "xy", "x"),
    (r"^a(?i)b|c$", r"^a(?i:b)|(?i:c$)", "aB", "Ab"),
    (r"(?i)^FOO\.", r"(?i:^FOO\.)", "foo.x.", "bar."),
    (r"x\z", r"x\Z", "ax", "xa"),
    (r"x{,3}", r"x\{,3}", "x{,3}", "xxx"),
    (r"^[[:alpha:]_-]+$", r"^[A-Za-z\_\-]+$", "a_b-c", "a1"),
    (r"\Qa.b\E$", r"a\.b$", "xa.b", "axb"),
    (r"\x{41}\101\x41", "AAA", "AAA", "A"),
    (r"[]a]+", r"[\]a]+", "]a", "b"),
    (r"^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$", None, "a.b.c.d.internal.cloudapp.net.",
     "a.b.c.internal.cloudapp.net."),
    (r"\d\w\s\b", None, "1a b", "x"),
    # Go repeats empty-width assertions; Go's (?) does nothing
    (r"^*x$?", r"(?:^)*x(?:$)?", "x", "y"),
    (r"(?)x(?-s)y", r"x(?-s:y)", "xy", "x"),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "python", "yes", "no"), REGEX_OK)
def test_regex_rewrites(pattern: str, python: str | None, yes: str, no: str) -> None:
    if python is not None:
        assert translate(pattern) == python
    r = compile_go(pattern)
    assert r.search(yes) and not r.search(no)


REGEX_ERRORS = [
    (r"(?=x)", "look-ahead (?=…) is not supported by Go's RE2"),
    (r"(?!x)", "look-ahead (?!…)"),
    (r"(?<=x)", "look-behind (?<=…)"),
    (r"(?<!x)", "look-behind (?<!…)"),
    (r"(a)\1", "invalid escape sequence: `\\1`"),
    (r"(?P<n>a)(?P=n)", "the backreference (?P=…)"),
    (r"\k<n>", "invalid escape sequence: `\\k`"),
    (r"(?>a)", "the atomic group (?>…)"),
    (r"a++", "invalid nested repetition operator: `++`"),
    (r"a*+", "invalid nested repetition operator: `*+`"),
    (r"a?+", "invalid nested repetition operator"),
    (r"a{2}+", "invalid nested repetition operator: `{2}+`"),
    (r"a**", "invalid nested repetition operator: `**`"),
    (r"a*??", "invalid nested repetition operator: `*??`"),
    (r"a{1001}", "invalid repeat count: `{1001}`"),
    (r"a{3,2}", "invalid repeat count: `{3,2}`"),
    (r"*a", "missing argument to repetition operator: `*`"),
    (r"(", "missing closing ): `(`"),
    (r"a)", "unexpected ): `a)`"),
    (r"[a", "missing closing ]: `[a`"),
    (r"[z-a]", "invalid character class range: `z-a`"),
    (r"[[:foo:]]", "invalid character class range: `[:foo:]`"),
    (r"x\Z", "invalid escape sequence: `\\Z`"),
    (r"\8", "invalid escape sequence: `\\8`"),
    (r"(?#c)", "invalid or unsupported Perl syntax: `(?#`"),
    (r"(?i-)x", "invalid or unsupported Perl syntax: `(?i-)`"),
    (r"(?(1)a|b)", "invalid or unsupported Perl syntax"),
    ("x\\", "trailing backslash at end of expression"),
    (r"\pL", "the Unicode class \\p… in a regex is not supported by ClusterDNS"),
    (r"[[:^alpha:]]", "the negated POSIX class [:^alpha:]"),
    (r"(?U)a+", "the U (ungreedy) regex flag is not supported by ClusterDNS"),
    (r"(?P<n>a)(?P<n>b)", "error parsing regexp: redefinition of group name"),
]


@pytest.mark.parametrize(("pattern", "message"), REGEX_ERRORS)
def test_regex_errors(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as e:
        compile_go(pattern)
    assert message in str(e.value)


RECORDS = [
    ("x.example. 60 IN A 1.2.3.4", "x.example. 60 IN A 1.2.3.4"),
    ("x.example. A 1.2.3.4", "x.example. 3600 IN A 1.2.3.4"),  # TTL 3600, class IN
    ("x.example. IN 5 A 1.2.3.4", "x.example. 5 IN A 1.2.3.4"),
    ("foo 5 CNAME bar", "foo. 5 IN CNAME bar."),  # relative to the root
    ("@ 5 NS ns", ". 5 IN NS ns."),
    ("x. 5 A 1.1.1.1\nx. 6 A 2.2.2.2", "x. 5 IN A 1.1.1.1"),  # the first record only
    ("$TTL 7\nx. A 1.1.1.1", "x. 7 IN A 1.1.1.1"),
    ("$ORIGIN foo.\nbar 5 A 1.1.1.1", "bar.foo. 5 IN A 1.1.1.1"),
    ("x. 60 CH TXT hi", 'x. 60 CH TXT "hi"'),
    ("x. 60 IN SOA ns. host. (1 2 3 4 5)", "x. 60 IN SOA ns. host. 1 2 3 4 5"),
    ("x. 60 IN TXT <no value>", 'x. 60 IN TXT "<no" "value>"'),
]


@pytest.mark.parametrize(("text", "want"), RECORDS)
def test_records(text: str, want: str) -> None:
    assert parse_rr(text).to_text() == want


@pytest.mark.parametrize(
    "text", ["", "   ", "; a comment", "x. 5 1.2.3.4", "x. 60 IN A 1.2.3", "$INCLUDE /etc/hosts"]
)
def test_bad_records(text: str) -> None:
    with pytest.raises(RRError):
        parse_rr(text)
