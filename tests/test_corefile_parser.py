"""Corefile lexer and parser: every syntax feature, every error path, the shared Corefiles."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from clusterdns.corefile.ast import Directive, ServerBlock
from clusterdns.corefile.lexer import substitute_env, tokenize
from clusterdns.corefile.parser import parse_corefile, parse_corefile_text
from clusterdns.errors import ConfigError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"


def tree(d: Directive) -> Any:
    """A directive as nested tuples: (name, args, children) or (name, args) without a block."""
    if not d.has_block:
        assert d.children == []
        return (d.name, d.values)
    return (d.name, d.values, [tree(c) for c in d.children])


def shape(blocks: list[ServerBlock]) -> list[Any]:
    return [([k.text for k in b.keys], [tree(d) for d in b.directives]) for b in blocks]


def parse(text: str, env: dict[str, str] | None = None, base: Path | None = None) -> Any:
    return shape(parse_corefile_text(text, "Corefile", str(base) if base else None, env or {}))


def parse_error(text: str, env: dict[str, str] | None = None, base: Path | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_corefile_text(text, "Corefile", str(base) if base else None, env or {})
    return str(exc.value)


# -- lexer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a b c\nd e",
            [("a", 1, True), ("b", 1, False), ("c", 1, False), ("d", 2, True), ("e", 2, False)],
        ),
        ("", []),
        ("\n", []),
        (" \t\n  \n", []),
        ('"a b" c', [("a b", 1, True), ("c", 1, False)]),
        (r'"a\"b"', [('a"b', 1, True)]),
        (r'"a\\" b', [("a\\\\", 1, True), ("b", 1, False)]),
        (r'"a\.b\n"', [("a\\.b\\n", 1, True)]),
        ('"a\nb" c\nd', [("a\nb", 1, True), ("c", 2, False), ("d", 3, True)]),
        ('"a\\\nb" c', [("ab", 1, True), ("c", 2, False)]),
        ('"a"b', [("a", 1, True), ("b", 1, False)]),
        ('a"b c"', [('a"b', 1, True), ('c"', 1, False)]),
        ('""', [("", 1, True)]),
        ("a # comment { }\nb", [("a", 1, True), ("b", 2, True)]),
        ("# whole line\n  # indented\na", [("a", 3, True)]),
        ("a#b c", [("a#b", 1, True), ("c", 1, False)]),
        ('"#x"', [("#x", 1, True)]),
        ("a {\n}", [("a", 1, True), ("{", 1, False), ("}", 2, True)]),
        ("a {}", [("a", 1, True), ("{", 1, False), ("}", 1, False)]),
        ("a \\\n  b\nc", [("a", 1, True), ("b", 2, False), ("c", 3, True)]),
        ("a\\\nb", [("a", 1, True), ("b", 2, False)]),
        ("a\\ b", [("a\\", 1, True), ("b", 1, False)]),
        ("\ufeffa\r\nb\r\n", [("a", 1, True), ("b", 2, True)]),
    ],
)
def test_tokenize(text: str, expected: list[tuple[str, int, bool]]) -> None:
    tokens = tokenize(text, "Corefile", {})
    assert [(t.text, t.line, t.starts_line) for t in tokens] == expected
    assert all(t.file == "Corefile" for t in tokens)


@pytest.mark.parametrize(
    ("text", "braces"),
    [("{ }", [True, True]), ('"{" "}"', [False, False]), ("{$X} {x}", [False, False])],
)
def test_only_bare_unquoted_braces_are_structural(text: str, braces: list[bool]) -> None:
    assert [t.is_brace for t in tokenize(text, "f", {"X": "{"})] == braces


def test_unterminated_quote_names_the_line_it_opened_on() -> None:
    with pytest.raises(ConfigError) as exc:
        tokenize('a\nb "never\nclosed', "Corefile", {})
    assert str(exc.value) == "Corefile:2 - unterminated quoted string: no closing '\"'"


ENV = {"A": "1", "B": "2", "P": "r1", "S": "a b", "EMPTY": ""}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("{$A}", "1"),
        ("di{$P}", "dir1"),
        ("{$A}:{$B}", "1:2"),
        ("{%A%}:{$B}", "1:2"),
        ("{$A}:{%B%}", "1:2"),
        ("{env.A}/{env.B}", "1/2"),
        ("{$UNSET}", ""),
        ("x{%UNSET%}y", "xy"),
        ("{%A}", "{%A}"),
        (":{$A$}", ":"),
        ("{$}", "{$}"),
        ("{%%}", "{%%}"),
        ("{{ .Name }} {$A}", "{{ .Name }} 1"),
        ("{remote}", "{remote}"),
        ("{$A", "{$A"),
    ],
)
def test_substitute_env(word: str, expected: str) -> None:
    assert substitute_env(word, ENV) == expected


def test_env_value_stays_one_word_and_is_substituted_in_quotes() -> None:
    tokens = tokenize('x {$S} "q {$A} q" {$EMPTY}', "f", ENV)
    assert [t.text for t in tokens] == ["x", "a b", "q 1 q", ""]


# -- structure --------------------------------------------------------------------------

STRUCTURE_CASES: list[tuple[str, str, Any]] = [
    ("empty", "", []),
    ("comments only", "# nothing\n   # here\n", []),
    ("keys only", "localhost", [(["localhost"], [])]),
    (
        "simple",
        ".:53 {\n  errors\n  cache 30\n}",
        [([".:53"], [("errors", []), ("cache", ["30"])])],
    ),
    ("space separated keys", "a b:53 {\n}", [(["a", "b:53"], [])]),
    ("comma separated keys", "a, b {\n}", [(["a", "b"], [])]),
    ("comma without space", "a,b {\n}", [(["a", "b"], [])]),
    ("lone comma", "a , b {\n}", [(["a", "b"], [])]),
    ("keys over lines", "a,\n  b,\n  c {\n  whoami\n}", [(["a", "b", "c"], [("whoami", [])])]),
    ("open brace on next line", "a\n{\n  whoami\n}", [(["a"], [("whoami", [])])]),
    ("empty server block", ". {}\nb { }", [(["."], []), (["b"], [])]),
    (
        "no braces: rest of file is the block",
        "example.org\nwhoami\nlog . {\n  class all\n}",
        [(["example.org"], [("whoami", []), ("log", ["."], [("class", ["all"])])])],
    ),
    (
        "several blocks",
        "a {\n  errors\n}\n\nb {\n  log\n}\n",
        [(["a"], [("errors", [])]), (["b"], [("log", [])])],
    ),
    (
        "nesting to any depth",
        ". {\n p a {\n  q b {\n   r c {\n    s\n   }\n  }\n  t\n }\n}",
        [(["."], [("p", ["a"], [("q", ["b"], [("r", ["c"], [("s", [])])]), ("t", [])])])],
    ),
    (
        "empty blocks",
        ". {\n cache {}\n log { }\n hosts {\n }\n}",
        [(["."], [("cache", [], []), ("log", [], []), ("hosts", [], [])])],
    ),
    (
        "quoted arguments",
        '. {\n template IN A {\n  answer "{{ .Name }} 60 IN A 1.2.3.4"\n }\n}',
        [(["."], [("template", ["IN", "A"], [("answer", ["{{ .Name }} 60 IN A 1.2.3.4"])])])],
    ),
    ("quoted brace is a word", '. {\n x "{"\n}', [(["."], [("x", ["{"])])]),
    (
        "names keep their case",
        ". {\n Errors\n CACHE 30\n}",
        [(["."], [("Errors", []), ("CACHE", ["30"])])],
    ),
    (
        "backslash continues a line",
        ". {\n forward . 1.1.1.1 \\\n   8.8.8.8\n cache\n}",
        [(["."], [("forward", [".", "1.1.1.1", "8.8.8.8"]), ("cache", [])])],
    ),
    (
        "multi-line quoted argument",
        '. {\n x "a\nb" c\n y\n}',
        [(["."], [("x", ["a\nb", "c"]), ("y", [])])],
    ),
    (
        "import as an argument is a plain word",
        ". {\n basicauth / import password\n}",
        [(["."], [("basicauth", ["/", "import", "password"])])],
    ),
    ("trailing comment", ". { # c\n  errors # c\n} # c", [(["."], [("errors", [])])]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in STRUCTURE_CASES], ids=[c[0] for c in STRUCTURE_CASES]
)
def test_structure(text: str, expected: Any) -> None:
    assert parse(text) == expected


def test_positions_are_recorded() -> None:
    (block,) = parse_corefile_text("# c\n\na,\n b {\n  log . {\n   class all\n  }\n}\n", env={})
    assert (block.file, block.line) == ("Corefile", 3)
    assert [(k.text, k.line) for k in block.keys] == [("a", 3), ("b", 4)]
    (log,) = block.directives
    assert (log.name, log.file, log.line, log.has_block) == ("log", "Corefile", 5, True)
    assert [(a.text, a.line) for a in log.args] == [(".", 5)]
    assert [(c.name, c.line) for c in log.children] == [("class", 6)]


def test_directive_without_block_has_no_block() -> None:
    (block,) = parse_corefile_text(". {\n errors\n}", env={})
    assert block.directives[0].has_block is False


def test_environment_substitution() -> None:
    env = {"ZONE": "example.org", "PORT": "1053", "TTL": "30"}
    text = "{$ZONE}:{%PORT%} {\n  cache {env.TTL}\n  forward . {$UNSET}\n}"
    assert parse(text, env) == [(["example.org:1053"], [("cache", ["30"]), ("forward", [".", ""])])]


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERDNS_TEST_ZONE", "from.env")
    (block,) = parse_corefile_text("{$CLUSTERDNS_TEST_ZONE} {\n}")
    assert block.keys[0].text == "from.env"


# -- snippets ---------------------------------------------------------------------------

SNIPPET_CASES: list[tuple[str, str, Any]] = [
    (
        "in a server block",
        "(common) {\n errors\n log\n}\n. {\n import common\n cache\n}",
        [(["."], [("errors", []), ("log", []), ("cache", [])])],
    ),
    (
        "in a nested block",
        "(opts) {\n force_tcp\n}\n. {\n forward . x {\n  import opts\n }\n}",
        [(["."], [("forward", [".", "x"], [("force_tcp", [])])])],
    ),
    (
        "at top level",
        "(blk) {\n a {\n  whoami\n }\n}\nimport blk\nb {\n}",
        [(["a"], [("whoami", [])]), (["b"], [])],
    ),
    (
        "snippet with nested braces",
        "(k) {\n kubernetes x {\n  pods insecure\n }\n}\n. {\n import k\n}",
        [(["."], [("kubernetes", ["x"], [("pods", ["insecure"])])])],
    ),
    (
        "snippet importing a snippet",
        "(a) {\n errors\n}\n(b) {\n import a\n log\n}\n. {\n import b\n}",
        [(["."], [("errors", []), ("log", [])])],
    ),
    ("empty snippet", "(e) {}\n. {\n import e\n}", [(["."], [])]),
    (
        "snippet brace on next line",
        "(s)\n{\n errors\n}\n. {\n import s\n}",
        [(["."], [("errors", [])])],
    ),
    (
        "used twice",
        "(s) {\n x\n}\na {\n import s\n}\nb {\n import s\n}",
        [(["a"], [("x", [])]), (["b"], [("x", [])])],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in SNIPPET_CASES], ids=[c[0] for c in SNIPPET_CASES]
)
def test_snippets(text: str, expected: Any) -> None:
    assert parse(text) == expected


def test_snippet_tokens_keep_their_definition_lines() -> None:
    (block,) = parse_corefile_text("(s) {\n  errors\n}\n. {\n  import s\n  log\n}", env={})
    assert [(d.name, d.line) for d in block.directives] == [("errors", 2), ("log", 6)]


# -- errors -----------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, str, str]] = [
    ("stray close", "a {\n}\n}", "Corefile:3 - unexpected '}' (no matching '{')"),
    ("close first", "}", "Corefile:1 - unexpected '}' (no matching '{')"),
    ("close after braceless", "a\nerrors\n}", "Corefile:3 - unexpected '}' (no matching '{')"),
    (
        "unclosed",
        "a {\n errors\n",
        "Corefile:1 - unclosed '{': end of input reached before the matching '}'",
    ),
    (
        "unclosed nested",
        "a {\n b {\n  c {\n  }\n",
        "Corefile:2 - unclosed '{': end of input reached before the matching '}'",
    ),
    ("no keys", "{\n}", "Corefile:1 - missing server block keys before '{'"),
    (
        "empty keys",
        "{$NOPE} {\n}",
        "Corefile:1 - missing server block keys (the environment variable NOPE is not set)",
    ),
    ("comma then brace", "a, {\n}", "Corefile:1 - expected another key after ',' but found '{'"),
    (
        "comma then brace line",
        "a,\n{\n}",
        "Corefile:2 - expected another key after ',' but found '{'",
    ),
    ("comma at end", "a,", "Corefile:1 - expected another key after ',' but reached end of input"),
    (
        "close mid line",
        ". {\n errors }\n",
        "Corefile:2 - unexpected '}' in the middle of a line: put it on a line of its own",
    ),
    ("word after close", ". {\n} x", "Corefile:2 - unexpected 'x' after '}'"),
    (
        "one-line block",
        ". { whoami }",
        "Corefile:1 - unexpected '{': a block must open at the end of a line",
    ),
    (
        "lone open",
        ". {\n {\n }\n}",
        "Corefile:2 - unexpected '{': a block must open at the end of a line",
    ),
    (
        "open mid line",
        ". {\n a { b\n}",
        "Corefile:2 - unexpected '{': a block must open at the end of a line",
    ),
    (
        "empty name",
        ". {\n {$NOPE} x\n}",
        "Corefile:2 - empty directive name (the environment variable NOPE is not set)",
    ),
    (
        "import no arg",
        ". {\n import\n}",
        "Corefile:2 - import takes a snippet name or file pattern",
    ),
    ("import two args", ". {\n import a b\n}", "Corefile:2 - import takes only one argument"),
    (
        "import empty arg",
        ". {\n import {$NOPE}\n}",
        "Corefile:2 - import takes a snippet name or file pattern",
    ),
    ("snippet without body", "(s)\n. {\n}", "Corefile:1 - snippet (s) needs a '{ … }' body"),
    ("snippet redeclared", "(s) {\n}\n(s) {\n}", "Corefile:3 - redeclaration of snippet s"),
    (
        "snippet unclosed",
        "(s) {\n errors\n",
        "Corefile:1 - unclosed '{' of snippet (s): no matching '}'",
    ),
    (
        "snippet close mid line",
        "(s) {\n errors }\n",
        "Corefile:2 - unexpected '}' in the middle of a line",
    ),
    ("snippet word after close", "(s) {\n} x", "Corefile:2 - unexpected 'x'"),
    (
        "snippet self cycle",
        "(s) {\n import s\n}\n. {\n import s\n}",
        "Corefile:2 - import cycle: snippet s -> snippet s",
    ),
    (
        "snippet mutual cycle",
        "(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}",
        "Corefile:5 - import cycle: snippet a -> snippet b -> snippet a",
    ),
    (
        "unterminated quote",
        '. {\n log "x\n}',
        "Corefile:2 - unterminated quoted string: no closing '\"'",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors(text: str, message: str, tmp_path: Path) -> None:
    assert parse_error(text, base=tmp_path) == message


def test_unknown_snippet_names_file_and_line(tmp_path: Path) -> None:
    message = parse_error(". {\n errors\n import nope\n}", base=tmp_path)
    assert message == (
        f"Corefile:3 - import nope: unknown snippet (none of that name is defined above) "
        f"and no such file {tmp_path / 'nope'}"
    )


def test_snippet_must_be_defined_before_use(tmp_path: Path) -> None:
    message = parse_error(". {\n import s\n}\n(s) {\n errors\n}", base=tmp_path)
    assert message.startswith("Corefile:2 - import s: unknown snippet")


# -- file imports -----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_import_file_keeps_its_own_file_and_lines(tmp_path: Path) -> None:
    inc = write(tmp_path / "common.conf", "# header\nerrors\nlog\n")
    main = write(tmp_path / "Corefile", ". {\n  import common.conf\n  cache 30\n}\n")
    (block,) = parse_corefile(str(main), env={})
    assert [(d.name, d.file, d.line) for d in block.directives] == [
        ("errors", str(inc), 2),
        ("log", str(inc), 3),
        ("cache", str(main), 3),
    ]


def test_import_is_relative_to_the_importing_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "a.conf", "import b.conf\na\n")
    write(tmp_path / "sub" / "b.conf", "b\n")
    main = write(tmp_path / "Corefile", ". {\n  import sub/a.conf\n}\n")
    assert shape(parse_corefile(str(main), env={})) == [(["."], [("b", []), ("a", [])])]


def test_import_absolute_path_and_whole_server_blocks(tmp_path: Path) -> None:
    inc = write(tmp_path / "elsewhere" / "blocks", "x {\n  errors\n}\ny {\n}\n")
    text = f"import {inc}\nz {{\n}}"
    assert parse(text, base=tmp_path / "nowhere") == [
        (["x"], [("errors", [])]),
        (["y"], []),
        (["z"], []),
    ]


def test_import_glob_in_sorted_order(tmp_path: Path) -> None:
    names = ["50-e", "20-b", "40-d", "10-a", "60-f", "30-c"]
    for name in names:
        write(tmp_path / "conf.d" / f"{name}.conf", f"{name}.example {{\n}}\n")
    write(tmp_path / "conf.d" / "skip.txt", "nope {\n}\n")
    (tmp_path / "conf.d" / "dir.conf").mkdir()
    expected: list[Any] = [([f"{n}.example"], []) for n in sorted(names)]
    assert parse("import conf.d/*.conf", base=tmp_path) == expected


def test_glob_matching_nothing_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse(". {\n import missing/*.conf\n}", base=tmp_path) == [(["."], [])]
    assert "Corefile:2 - no files match import pattern missing/*.conf" in caplog.text


def test_import_missing_file_is_an_error(tmp_path: Path) -> None:
    message = parse_error("a {\n}\nimport missing.conf", base=tmp_path)
    assert message.startswith("Corefile:3 - import missing.conf: unknown snippet")
    assert message.endswith(f"no such file {tmp_path / 'missing.conf'}")


def test_import_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert (
        parse_error("import d", base=tmp_path)
        == f"Corefile:1 - cannot import {tmp_path / 'd'}: is a directory"
    )


def test_file_import_cycle(tmp_path: Path) -> None:
    a = write(tmp_path / "a", "import b\n")
    b = write(tmp_path / "b", "\n\nimport a\n")
    main = write(tmp_path / "Corefile", "import a\n")
    with pytest.raises(ConfigError) as exc:
        parse_corefile(str(main), env={})
    assert str(exc.value) == f"{b}:3 - import cycle: file {a} -> file {b} -> file {a}"


def test_corefile_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    main = write(tmp_path / "Corefile", ". {\n}\nimport Corefile\n")
    with pytest.raises(ConfigError) as exc:
        parse_corefile(str(main), env={})
    assert str(exc.value).startswith(f"{main}:3 - import cycle: file {main} -> file {main}")


def test_error_inside_imported_file_points_there(tmp_path: Path) -> None:
    inc = write(tmp_path / "bad.conf", "errors\n\n}\n")
    message = parse_error(". {\n}\nimport bad.conf\n", base=tmp_path)
    assert message == f"{inc}:3 - unexpected '}}' (no matching '{{')"


def test_env_in_import_path(tmp_path: Path) -> None:
    write(tmp_path / "x.conf", "errors\n")
    assert parse(". {\n import {$NAME}.conf\n}", env={"NAME": "x"}, base=tmp_path) == [
        (["."], [("errors", [])])
    ]


def test_snippet_defined_in_imported_file(tmp_path: Path) -> None:
    write(tmp_path / "snippets.conf", "(s) {\n  errors\n}\n")
    assert parse("import snippets.conf\n. {\n import s\n}", base=tmp_path) == [
        (["."], [("errors", [])])
    ]


def test_base_dir_defaults_to_the_filename_directory(tmp_path: Path) -> None:
    write(tmp_path / "inc", "errors\n")
    blocks = parse_corefile_text(". {\n import inc\n}", str(tmp_path / "Corefile"), env={})
    assert shape(blocks) == [(["."], [("errors", [])])]


def test_parse_corefile_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "Nope"
    with pytest.raises(ConfigError) as exc:
        parse_corefile(str(path))
    assert str(exc.value).startswith(f"{path} - cannot read Corefile: ")


# -- the Corefiles shipped with the project -------------------------------------------

SHARED_ENV = {
    "CLUSTER_DNS_UPSTREAM": "10.0.0.10",
    "CLUSTER_DOMAIN": "cluster.local",
    "DNS_TTL": "30",
    "DNS_PORT": "5353",
    "SHARED_COREFILES": str(SHARED),
}

# file → (keys, directive count) per server block
SHARED_EXPECTED: dict[str, list[tuple[list[str], int]]] = {
    "kubeadm-default.Corefile": [([".:53"], 10)],
    "legacy-proxy-cidr.Corefile": [([".:53"], 6)],
    "legacy-upstream.Corefile": [([".:53"], 10)],
    "node-local-cache.Corefile": [
        (["cluster.local:53"], 8),
        (["in-addr.arpa:53"], 7),
        ([".:53"], 7),
    ],
    "snippets-and-env.Corefile": [([".:5353"], 10)],
    "stub-domains.Corefile": [
        (["cluster.local"], 10),
        (["corp.example.com"], 4),
        (["api.example.net"], 5),
        (["."], 3),
    ],
    "with-log-and-hosts.Corefile": [([".:53"], 12)],
}


def shared_files() -> list[str]:
    """The Corefiles (the folders beside them hold what they import)."""
    return sorted(p.name for p in SHARED.glob("*.Corefile"))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Corefiles not present")
def test_all_expected_shared_corefiles_exist() -> None:
    assert set(SHARED_EXPECTED) <= set(shared_files())


@pytest.mark.parametrize("name", shared_files())
def test_shared_corefile_parses(name: str) -> None:
    blocks = parse_corefile(str(SHARED / name), env=SHARED_ENV)
    got = [([k.text for k in b.keys], len(b.directives)) for b in blocks]
    if name in SHARED_EXPECTED:
        assert got == SHARED_EXPECTED[name]
    else:
        assert blocks, f"{name} has no server blocks"


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Corefiles not present")
def test_shared_snippets_and_env_details() -> None:
    (block,) = parse_corefile(str(SHARED / "snippets-and-env.Corefile"), env=SHARED_ENV)
    by_name = {d.name: d for d in block.directives}
    kube = by_name["kubernetes"]
    assert kube.values == ["cluster.local", "in-addr.arpa", "ip6.arpa"]
    assert [(c.name, c.values) for c in kube.children] == [
        ("pods", ["verified"]),
        ("endpoint_pod_names", []),
        ("ttl", ["30"]),
        ("fallthrough", ["in-addr.arpa", "ip6.arpa"]),
    ]
    assert (by_name["errors"].line, by_name["autopath"].line) == (2, 19)
    assert [c.values for c in by_name["log"].children] == [["denial", "error"]]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Corefiles not present")
def test_shared_node_local_upstream_from_env() -> None:
    blocks = parse_corefile(str(SHARED / "node-local-cache.Corefile"), env=SHARED_ENV)
    forwards = [d for b in blocks for d in b.directives if d.name == "forward"]
    assert [f.values for f in forwards] == [
        [".", "10.0.0.10"],
        [".", "10.0.0.10"],
        [".", "/etc/resolv.conf"],
    ]
    assert [tree(f) for f in forwards[:2]] == [
        ("forward", [".", "10.0.0.10"], [("force_tcp", [])])
    ] * 2
