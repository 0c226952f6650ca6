"""Tokenizer for the Corefile (CoreDNS's Caddy v1 "Caddyfile" syntax).

Syntax, as lexed here:

* Words are separated by whitespace. A newline ends a logical line; the parser is
  line-oriented (directive name + arguments), so every token records whether it
  starts a new line.
* ``"double quoted"`` words may contain whitespace and span several lines. Inside
  quotes ``\\"`` is a literal quote and a backslash before a newline joins the lines
  (both are dropped); any other backslash is kept as is, like Caddy, so regexes
  such as ``"\\.example\\.org"`` survive untouched. A quote only opens a quoted word
  at the start of a word; the closing quote always ends the word.
* ``#`` starts a comment (to end of line) only at the start of a word, so values
  such as ``foo#bar`` stay intact. (Caddy v1 cuts ``foo#bar`` to ``foo``; Caddy v2
  and this lexer don't.)
* A backslash immediately before a newline, outside quotes, continues the logical
  line (Caddy v1 has no such rule: there the backslash would be a word of its own).
* ``{`` and ``}`` are structural only when they stand alone as unquoted words;
  the unquoted word ``{}`` is an empty block (``{`` then ``}``). ``{$HOME}`` or
  ``"{"`` are ordinary words.
* Environment references are replaced inside each word *after* it is cut out,
  exactly as coredns/caddy does: ``{$VAR}``, ``{%VAR%}`` (Windows form) and
  ``{env.VAR}``; an unset variable becomes the empty string. Because this happens
  per word, a value containing spaces or braces stays one word and never changes
  the structure of the file.
* A leading UTF-8 byte order mark is ignored and CRLF line ends are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from clusterdns.errors import ConfigError

OPEN = "{"
CLOSE = "}"

# One pass over the word, left to right; substituted text is never rescanned, so a
# value that itself contains "{$X}" can't recurse.
_ENV_REF = re.compile(r"\{\$([^}]+)\}|\{%(.+?)%\}|\{env\.([^}]+)\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class LexToken:
    """A lexed word with the flags the parser needs but the AST doesn't keep."""

    text: str
    file: str
    line: int
    quoted: bool = False
    starts_line: bool = False
    brace: bool = False  # a bare { or } as written, never one produced by substitution
    unset: tuple[str, ...] = ()  # environment variables it named that are not set

    @property
    def is_open(self) -> bool:
        return self.brace and self.text == OPEN

    @property
    def is_close(self) -> bool:
        return self.brace and self.text == CLOSE

    @property
    def is_brace(self) -> bool:
        return self.is_open or self.is_close


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace ``{$VAR}``, ``{%VAR%}`` and ``{env.VAR}`` in one word; unset → ""."""
    return substitute_env_noting(text, env)[0]


def substitute_env_noting(text: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """`substitute_env`, and the names of the unset variables it replaced by "" (so that an
    error about the result can name them instead of showing only an empty value)."""
    if "{" not in text:
        return text, ()
    unset: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3) or ""
        if name not in env and name not in unset:
            unset.append(name)
        return env.get(name, "")

    return _ENV_REF.sub(repl, text), tuple(unset)


class _Lexer:
    """Character-level state machine; kept as a class so the loop stays readable."""

    def __init__(self, text: str, filename: str, env: Mapping[str, str]) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.src = text.replace("\r\n", "\n")
        self.file = filename
        self.env = env
        self.pos = 0
        self.line = 1
        self.tokens: list[LexToken] = []
        self.new_line = True  # the next token begins a logical line

    def run(self) -> list[LexToken]:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "\n":
                self.line += 1
                self.new_line = True
                self.pos += 1
            elif ch == "\\" and src.startswith("\n", self.pos + 1):
                self.line += 1  # continuation: acts as a space, keeps the logical line
                self.pos += 2
            elif ch.isspace():
                self.pos += 1
            elif ch == "#":
                end = src.find("\n", self.pos)
                self.pos = len(src) if end == -1 else end
            elif ch == '"':
                self._quoted()
            else:
                self._word()
        return self.tokens

    def _emit(
        self, text: str, line: int, quoted: bool, brace: bool = False, unset: tuple[str, ...] = ()
    ) -> None:
        self.tokens.append(LexToken(text, self.file, line, quoted, self.new_line, brace, unset))
        self.new_line = False

    def _word(self) -> None:
        src, start = self.src, self.pos
        while self.pos < len(src):
            ch = src[self.pos]
            if ch.isspace() or (ch == "\\" and src.startswith("\n", self.pos + 1)):
                break
            self.pos += 1
        word = src[start : self.pos]
        if word == OPEN + CLOSE:
            self._emit(OPEN, self.line, False, brace=True)
            self._emit(CLOSE, self.line, False, brace=True)
        elif word in (OPEN, CLOSE):
            self._emit(word, self.line, False, brace=True)
        else:
            text, unset = substitute_env_noting(word, self.env)
            self._emit(text, self.line, False, unset=unset)

    def _quoted(self) -> None:
        src, start_line = self.src, self.line
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "\\" and self.pos + 1 < len(src):
                nxt = src[self.pos + 1]
                if nxt == '"':
                    out.append('"')
                elif nxt == "\n":
                    self.line += 1
                else:
                    out.append(ch + nxt)  # kept verbatim; "\\" can't escape a quote
                self.pos += 2
                continue
            self.pos += 1
            if ch == '"':
                text, unset = substitute_env_noting("".join(out), self.env)
                self._emit(text, start_line, True, unset=unset)
                return
            if ch == "\n":
                self.line += 1
            out.append(ch)
        raise ConfigError("unterminated quoted string: no closing '\"'", self.file, start_line)


def tokenize(text: str, filename: str, env: Mapping[str, str]) -> list[LexToken]:
    """Cut `text` into tokens, each knowing its file, line and whether it starts a line."""
    return _Lexer(text, filename, env).run()


def split_lines(tokens: list[LexToken]) -> list[list[LexToken]]:
    """Group tokens into logical lines (the unit the parser works on)."""
    lines: list[list[LexToken]] = []
    for tok in tokens:
        if tok.starts_line or not lines:
            lines.append([tok])
        else:
            lines[-1].append(tok)
    return lines
