"""The Go text/template subset CoreDNS's template plugin is used with, parsed and run by hand.

Why by hand: there is no Go template engine for Python, and the subset real Corefiles use is
small. Everything outside it is refused when the Corefile is read (`TemplateError`), so a
template either renders as Go would or does not start — it never renders differently.

Supported, as Go parses and runs it:

* text and `{{ … }}` actions, with `{{-` / `-}}` trimming and `{{/* comments */}}`;
* fields of the data: `.Zone .Name .Regex .Class .Type .Remote .Match .Group .Question
  .Message` plus `.Group.NAME`, `.Question.Name|Qtype|Qclass`, `.Message.Id` and the other
  header fields (`.Message` alone would print miekg/dns's Msg.String(): refused), and the
  method `.Meta "key"`;
* the functions `index` and `parseInt` (strconv.ParseUint), string and integer constants,
  parenthesized pipelines and `|` pipelines (the value goes in as the last argument).

Values print as Go's fmt does (`[a b]` for .Match, `map[0:x a:y]` for .Group, `<no value>` for
a missing map key). Errors while running (index out of range, bad parseInt input, wrong
argument count or type) raise ExecError, as Go's Execute returns one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from clusterdns.plugins.template.govalues import (
    DATA_FIELDS,
    MESSAGE_FIELDS,
    NO_VALUE,
    QUESTION_FIELDS,
    Data,
    ExecError,
    GoInt,
    Header,
    Question,
    Value,
    go_print,
    index,
    parse_uint,
    type_name,
    typed,
)

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)
_GO_BUILTINS = frozenset(
    {"and", "call", "html", "js", "len", "not", "or", "print", "printf", "println", "slice",
     "urlquery", "eq", "ge", "gt", "le", "lt", "ne"}
)  # fmt: skip
FUNCTIONS = ("index", "parseInt")
_ALNUM = re.compile(r"[A-Za-z0-9_]*")
_NUMBER = re.compile(r"[+-]?[0-9A-Za-z_.]*")


class TemplateError(Exception):
    """The template cannot be used: Go rejects it, or it is outside the supported subset."""


# ---- parse tree -----------------------------------------------------------------------------


@dataclass(slots=True)
class Field:
    idents: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass(slots=True)
class Ident:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class Str:
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(slots=True)
class Num:
    text: str
    value: int

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class Command:
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


@dataclass(slots=True)
class Pipe:
    cmds: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        return " | ".join(str(c) for c in self.cmds)


Node = Field | Ident | Str | Num | Pipe


@dataclass(slots=True)
class Template:
    """A parsed template: text pieces and actions, in order."""

    name: str
    source: str
    parts: list[str | Pipe]
    #: Data fields it reads (top level), e.g. {"Name", "Group"}; "Meta" for .Meta calls.
    uses: frozenset[str]

    def __str__(self) -> str:
        """Go's Tree.Root.String(): CoreDNS's `template` metric label."""
        return "".join(p if isinstance(p, str) else "{{" + str(p) + "}}" for p in self.parts)

    def execute(self, data: Data) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                out.append(go_print(_Exec(data).pipe(part)))
            except ExecError as e:
                name = self.name
                raise ExecError(f'template: {name}: executing "{name}" at <{part}>: {e}') from None
        return "".join(out)


# ---- lexer + parser -------------------------------------------------------------------------


class _Parser:
    """Go's text/template lexer and parser (parse/lex.go, parse/parse.go), for the subset."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.src = text
        self.pos = 0
        self.line = 1
        self.uses: set[str] = set()

    def fail(self, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line}: {message}")

    def unsupported(self, what: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line}: {what} is not supported")

    def parse(self) -> Template:
        parts: list[str | Pipe] = []
        src = self.src
        trim_next = False
        while True:
            start = self.pos
            i = src.find("{{", self.pos)
            text = src[start:] if i < 0 else src[start:i]
            if trim_next:
                text = text.lstrip(_SPACE)
            if i < 0:
                if text:
                    parts.append(text)
                return Template(self.name, src, parts, frozenset(self.uses))
            self.pos = i + 2
            if src.startswith("-", self.pos) and src[self.pos + 1 : self.pos + 2] in tuple(_SPACE):
                text = text.rstrip(_SPACE)
                self.pos += 2
            self.line += src.count("\n", start, self.pos)
            if text:
                parts.append(text)
            if src.startswith("/*", self.pos):
                trim_next = self.comment()
                continue
            pipe, trim_next = self.action()
            parts.append(pipe)

    def comment(self) -> bool:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            raise self.fail("unclosed comment")
        self.line += self.src.count("\n", self.pos, end)
        self.pos = end + 2
        if self.src.startswith("}}", self.pos):
            self.pos += 2
            return False
        if self.src.startswith(" -}}", self.pos) or (
            self.src[self.pos : self.pos + 1] in tuple(_SPACE)
            and self.src.startswith("-}}", self.pos + 1)
        ):
            self.pos += 4
            return True
        raise self.fail("comment ends before closing delimiter")

    # -- tokens inside an action: (kind, text); kinds: space ( ) | str raw num field ident end

    def at_right(self) -> tuple[bool, bool]:
        """At `}}` (no trim) or at a space followed by `-}}` (trim)?"""
        s, p = self.src, self.pos
        if s.startswith("}}", p):
            return True, False
        return (
            (True, True)
            if p < len(s) and s[p] in _SPACE and s.startswith("-}}", p + 1)
            else (False, False)
        )

    def token(self) -> tuple[str, str]:
        s = self.src
        right, trim = self.at_right()
        if right:
            self.pos += 4 if trim else 2
            return ("end-trim" if trim else "end"), ""
        if self.pos >= len(s):
            raise self.fail("unclosed action")
        c = s[self.pos]
        start = self.pos
        if c in _SPACE:
            while (
                self.pos < len(s)
                and s[self.pos] in _SPACE
                and not s.startswith("-}}", self.pos + 1)
            ):
                self.line += s[self.pos] == "\n"
                self.pos += 1
            return "space", s[start : self.pos]
        self.pos += 1
        if c in "()|":
            return c, c
        if c == '"':
            while self.pos < len(s) and s[self.pos] != '"':
                if s[self.pos] == "\n":
                    raise self.fail("unterminated quoted string")
                self.pos += 2 if s[self.pos] == "\\" else 1
            if self.pos >= len(s):
                raise self.fail("unterminated quoted string")
            self.pos += 1
            return "str", s[start : self.pos]
        if c == "`":
            end = s.find("`", self.pos)
            if end < 0:
                raise self.fail("unterminated raw quoted string")
            self.line += s.count("\n", self.pos, end)
            self.pos = end + 1
            return "raw", s[start : self.pos]
        if c == "." and not s[self.pos : self.pos + 1].isdigit():
            m = _ALNUM.match(s, self.pos)
            assert m is not None
            self.pos = m.end()
            self.terminator()
            return "field", s[start : self.pos]
        if c in "+-" or c.isdigit() or c == ".":
            m = _NUMBER.match(s, start)
            assert m is not None
            self.pos = m.end()
            self.terminator()
            return "num", s[start : self.pos]
        if c.isalpha() or c == "_":
            m = _ALNUM.match(s, self.pos)
            assert m is not None
            self.pos = m.end()
            self.terminator()
            return "ident", s[start : self.pos]
        if c == "$":
            raise self.unsupported("a variable ($…)")
        if c == "'":
            raise self.unsupported("a character constant ('…')")
        if c in ":=":
            raise self.unsupported("an assignment (:= or =)")
        raise self.fail(f"unrecognized character in action: {_rune(c)}")

    def terminator(self) -> None:
        s, p = self.src, self.pos
        if p >= len(s) or s[p] in _SPACE + ".,|:()" or s.startswith("}}", p):
            return
        raise self.fail(f"bad character {_rune(s[p])}")

    def skip_space(self) -> None:
        pos, line = self.pos, self.line
        if self.token()[0] != "space":
            self.pos, self.line = pos, line

    def peek_non_space(self) -> tuple[str, str]:
        pos, line = self.pos, self.line
        self.skip_space()
        kind, text = self.token()
        self.pos, self.line = pos, line
        return kind, text

    def action(self) -> tuple[Pipe, bool]:
        kind, text = self.peek_non_space()
        if kind == "ident" and text in _KEYWORDS:
            raise self.unsupported(f"{{{{{text}}}}}")
        return self.pipeline("command", ("end", "end-trim"))

    def pipeline(self, context: str, ends: tuple[str, ...]) -> tuple[Pipe, bool]:
        pipe = Pipe()
        while True:
            kind, text = self.peek_non_space()
            if kind in ends:
                self.skip_space()
                self.token()
                self.check(pipe, context)
                return pipe, kind == "end-trim"
            if kind in ("str", "raw", "num", "field", "ident", "("):
                pipe.cmds.append(self.command())
                continue
            if kind in ("end", "end-trim"):
                raise self.fail("unclosed left paren")
            if kind == ")":
                raise self.fail("unexpected right paren")
            raise self.fail(f"unexpected {_describe(kind, text)} in {context}")

    def check(self, pipe: Pipe, context: str) -> None:
        if not pipe.cmds:
            raise self.fail(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if not isinstance(c.args[0], Field | Ident | Pipe):
                raise self.fail(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> Command:
        cmd = Command()
        while True:
            self.skip_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            pos, line = self.pos, self.line
            kind, text = self.token()
            if kind == "space":
                continue
            if kind in ("end", "end-trim", ")"):
                self.pos, self.line = pos, line
            elif kind != "|":
                raise self.fail(f"unexpected {_describe(kind, text)} in operand")
            break
        if not cmd.args:
            raise self.fail("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        while self.src.startswith(".", self.pos):
            kind, text = self.token()
            if kind != "field" or not isinstance(node, Field):
                raise self.unsupported(f"a field of a non-field term ({node}{text})")
            node.idents += (text[1:],)
        if isinstance(node, Field):
            self.check_field(node)
        return node

    def term(self) -> Node | None:
        pos, line = self.pos, self.line
        kind, text = self.token()
        if kind == "ident":
            if text in ("true", "false", "nil"):
                raise self.unsupported(f"the constant {text}")
            if text in _KEYWORDS:
                raise self.fail(f"unexpected <{text}> in operand")
            if text not in FUNCTIONS:
                if text in _GO_BUILTINS:
                    raise self.unsupported(f"the function {text!r} (only index and parseInt)")
                raise self.fail(f'function "{text}" not defined')
            return Ident(text)
        if kind == "field":
            if text == ".":
                raise self.unsupported("'.' (the whole data)")
            return Field((text[1:],))
        if kind == "num":
            return Num(text, self.number(text))
        if kind == "(":
            pipe, _ = self.pipeline("parenthesized pipeline", (")",))
            return pipe
        if kind == "str":
            return Str(text, _unquote(text, self.fail))
        if kind == "raw":
            return Str(text, text[1:-1])
        self.pos, self.line = pos, line
        return None

    def number(self, text: str) -> int:
        digits = text[1:] if text[:1] in "+-" else text
        try:
            value = parse_uint(digits, 0, 64)
        except ValueError:
            if re.search(r"[.eEpPi]", digits) and not digits.lower().startswith("0x"):
                raise self.unsupported(f"the number constant {text} (only integers)") from None
            raise self.fail(f'bad number syntax: "{text}"') from None
        return -value if text.startswith("-") else value

    def check_field(self, node: Field) -> None:
        """The data's shape is known: a field it does not have is refused here, not at query
        time (where Go's "can't evaluate field" would turn every answer into SERVFAIL)."""
        first, rest = node.idents[0], node.idents[1:]
        kind = DATA_FIELDS.get(first)
        if kind is None:
            known = ", ".join("." + f for f in DATA_FIELDS)
            raise self.fail(f"can't evaluate field {first}: the data has {known}")
        self.uses.add(first)
        where = "." + first
        if kind == "map[string]string" and len(rest) <= 1:
            return
        if kind == "*dns.Question" and (
            not rest or (len(rest) == 1 and rest[0] in QUESTION_FIELDS)
        ):
            return
        if kind == "*dns.Msg":
            if not rest:
                raise self.fail(
                    "printing .Message (miekg/dns's Msg.String()) is not supported; use its "
                    "header fields, such as .Message.Id"
                )
            if len(rest) == 1 and rest[0] in MESSAGE_FIELDS:
                return
        if not rest:
            return
        raise self.fail(
            f"can't evaluate field {rest[-1]} in {where}{''.join('.' + r for r in rest[:-1])}"
        )


def _rune(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


def _describe(kind: str, text: str) -> str:
    return {"(": "<(>", ")": "<)>", "|": "<|>", "space": "space"}.get(kind, f"<{text}>")


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}  # fmt: skip


def _unquote(quoted: str, fail: Callable[[str], TemplateError]) -> str:
    """strconv.Unquote of a Go "…" literal."""
    out: list[str] = []
    s, i = quoted[1:-1], 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = s[i + 1 : i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(e)
        try:
            if width:
                out.append(chr(int(s[i + 2 : i + 2 + width], 16)))
                i += 2 + width
                continue
            if e.isdigit() and len(s[i + 1 : i + 4]) == 3:
                out.append(chr(int(s[i + 1 : i + 4], 8)))
                i += 4
                continue
        except ValueError:
            pass
        raise fail(f"invalid syntax: {quoted}")
    return "".join(out)


def parse(name: str, text: str) -> Template:
    """Parse `text` as Go's template.New(name).Parse would, or raise TemplateError."""
    return _Parser(name, text).parse()


# ---- execution ------------------------------------------------------------------------------

_MISSING = object()


class _Exec:
    def __init__(self, data: Data) -> None:
        self.data = data

    def pipe(self, pipe: Pipe) -> Value:
        value: Value = _MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, value)
        return value

    def command(self, cmd: Command, final: Value) -> Value:
        first, args = cmd.args[0], cmd.args[1:]
        if isinstance(first, Field):
            return self.field(first, args, final)
        if isinstance(first, Ident):
            return self.call(first.name, args, final)
        if args or final is not _MISSING:
            raise ExecError(f"can't give argument to non-function {first}")
        if isinstance(first, Pipe):
            return self.pipe(first)
        return first.text if isinstance(first, Str) else GoInt(first.value)

    def field(self, node: Field, args: list[Node], final: Value) -> Value:
        has_args = bool(args) or final is not _MISSING
        first = node.idents[0]
        if first == "Meta":
            key = self.typed_args("Meta", ["string"], args, final)[0]
            assert isinstance(key, str)
            return self.data.meta(key)
        value = self.data.field(first)
        last = len(node.idents) == 1
        if last and has_args:
            raise ExecError(f"{first} has arguments but cannot be invoked as function")
        for i, name in enumerate(node.idents[1:], 2):
            last = i == len(node.idents)
            if isinstance(value, dict):
                if last and has_args:
                    raise ExecError(f"{name} is not a method but has arguments")
                value = value.get(name, NO_VALUE)
            elif value is NO_VALUE:
                return NO_VALUE
            elif isinstance(value, Question | Header):
                if last and has_args:
                    raise ExecError(f"{name} has arguments but cannot be invoked as function")
                value = getattr(value, name)
            else:
                raise ExecError(f"can't evaluate field {name} in type {type_name(value)}")
        return value

    def call(self, name: str, args: list[Node], final: Value) -> Value:
        if name == "index":
            values = [self.any_arg(a) for a in args]
            if final is not _MISSING:
                values.append(final)
            if not values:
                raise ExecError("wrong number of args for index: want at least 1 got 0")
            return index(values[0], values[1:])
        s, base, bits = self.typed_args(name, ["string", "int", "int"], args, final)
        assert isinstance(s, str) and isinstance(base, int) and isinstance(bits, int)
        try:
            return GoInt(parse_uint(s, base, bits), "uint64")
        except ValueError as e:
            raise ExecError(
                f'error calling parseInt: strconv.ParseUint: parsing "{s}": {e}'
            ) from None

    def any_arg(self, node: Node) -> Value:
        if isinstance(node, Str):
            return node.text
        if isinstance(node, Num):
            return GoInt(node.value)
        return self.value(node)

    def value(self, node: Node) -> Value:
        if isinstance(node, Pipe):
            return self.pipe(node)
        if isinstance(node, Field):
            return self.field(node, [], _MISSING)
        assert isinstance(node, Ident)
        return self.call(node.name, [], _MISSING)

    def typed_args(self, fn: str, types: list[str], args: list[Node], final: Value) -> list[Value]:
        got = len(args) + (final is not _MISSING)
        if got != len(types):
            raise ExecError(f"wrong number of args for {fn}: want {len(types)} got {got}")
        out: list[Value] = []
        for node, want in zip(args, types, strict=False):
            if isinstance(node, Str | Num):
                ok = isinstance(node, Str) == (want == "string")
                if not ok:
                    raise ExecError(
                        f"expected {'string' if want == 'string' else 'integer'}; found {node}"
                    )
                out.append(node.text if isinstance(node, Str) else node.value)
            else:
                out.append(typed(self.value(node), want))
        if final is not _MISSING:
            out.append(typed(final, types[-1]))
        return out
