"""Corefile parser: tokens → server blocks → directives (CoreDNS's Caddy v1 syntax).

The file is a sequence of *server blocks*::

    key [key…] {            # keys: zones/addresses, separated by spaces and/or commas;
        directive arg… {    # a trailing comma continues the key list on the next line
            option arg…     # nested blocks, to any depth, become Directive.children
        }
        other
    }

* The ``{`` of a server block may also stand alone on the line after the keys. A file
  whose last server block has no braces at all (``example.org`` then ``whoami`` on the
  next line) takes every remaining line as that block's directives, like Caddy; a file
  holding only keys gives a block without directives.
* A directive's ``{`` must be the last word of its line (``{}`` or ``{ }`` there is an
  empty block); a ``}`` must stand on a line of its own. Caddy's plugins can't read
  anything else, so anything else is reported as an error here.
* ``(name) { … }`` defines a snippet instead of a server block. ``import name``
  (as the first word of a line, anywhere) splices in the snippet's lines; otherwise
  ``import PATH_OR_GLOB`` splices in files, relative to the directory of the file
  that holds the import line. Snippets must be defined before they are imported.
  A glob matching nothing only logs a warning; a plain path that doesn't exist is an
  error. Tokens keep the file and line they were written at. Import cycles are errors.
* Environment references are expanded inside each word by the lexer (see lexer.py).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from glob import escape, glob

from clusterdns.corefile.ast import Directive, ServerBlock, Token, unset_note
from clusterdns.corefile.lexer import LexToken, split_lines, tokenize
from clusterdns.errors import ConfigError

__all__ = ["parse_corefile", "parse_corefile_text"]

log = logging.getLogger(__name__)

_MAX_IMPORTS = 10_000  # cycles are caught exactly; this only stops exponential fan-out
_GLOB_CHARS = re.compile(r"[*?\[]")


class _Brace(Enum):
    NONE = 0
    OPEN = 1
    EMPTY = 2


@dataclass(slots=True)
class _Line:
    """A logical line plus the chain of imports that produced it (for cycle errors)."""

    tokens: list[LexToken]
    chain: tuple[str, ...]


def _err(tok: LexToken, message: str) -> ConfigError:
    return ConfigError(message + unset_note([_token(tok)]), tok.file, tok.line)


def _token(t: LexToken) -> Token:
    return Token(t.text, t.file, t.line, t.unset)


def _split_block(tokens: list[LexToken]) -> tuple[list[LexToken], _Brace]:
    """Separate a line's words from a trailing ``{`` / ``{ }``; reject braces elsewhere."""
    words, brace = tokens, _Brace.NONE
    if tokens[-1].is_open:
        words, brace = tokens[:-1], _Brace.OPEN
    elif len(tokens) >= 2 and tokens[-2].is_open and tokens[-1].is_close:
        words, brace = tokens[:-2], _Brace.EMPTY
    for t in words:
        if t.is_open:
            raise _err(t, "unexpected '{': a block must open at the end of a line")
        if t.is_close:
            raise _err(t, "unexpected '}' in the middle of a line: put it on a line of its own")
    return words, brace


class _Parser:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.pending: list[_Line] = []  # a stack: the next line is at the end
        self.snippets: dict[str, list[list[LexToken]]] = {}
        self.dirs: dict[str, str] = {}  # token file name → directory its imports are relative to
        self.imports = 0

    # -- line stream with import expansion ---------------------------------------------

    def load(self, text: str, filename: str, directory: str, chain: tuple[str, ...]) -> None:
        self.dirs[filename] = directory
        self._push([_Line(t, chain) for t in split_lines(tokenize(text, filename, self.env))])

    def _push(self, lines: list[_Line]) -> None:
        self.pending.extend(reversed(lines))

    def _raw_next(self) -> _Line | None:
        return self.pending.pop() if self.pending else None

    def _next(self) -> _Line | None:
        """The next logical line, with ``import`` lines already replaced by their content."""
        while (line := self._raw_next()) is not None:
            head = line.tokens[0]
            if head.text == "import" and not head.quoted:
                self._import(line)
                continue
            return line
        return None

    def _import(self, line: _Line) -> None:
        head, args = line.tokens[0], line.tokens[1:]
        if len(args) != 1 or args[0].is_brace or not args[0].text:
            what = "only one argument" if len(args) > 1 else "a snippet name or file pattern"
            raise _err(head, f"import takes {what}")
        arg = args[0]
        self.imports += 1
        if self.imports > _MAX_IMPORTS:
            raise _err(arg, f"more than {_MAX_IMPORTS} imports expanded; runaway import?")
        name = arg.text
        if name in self.snippets:
            key = f"snippet {name}"
            self._check_cycle(arg, key, line.chain)
            self._push([_Line(list(t), (*line.chain, key)) for t in self.snippets[name]])
            return
        lines: list[_Line] = []
        for path in self._resolve(arg):
            key = f"file {path}"
            self._check_cycle(arg, key, line.chain)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise _err(arg, f"cannot import {path}: {e}") from e
            self.dirs[path] = os.path.dirname(path)
            tokens = tokenize(text, path, self.env)
            lines.extend(_Line(t, (*line.chain, key)) for t in split_lines(tokens))
        self._push(lines)

    @staticmethod
    def _check_cycle(tok: LexToken, key: str, chain: tuple[str, ...]) -> None:
        if key in chain:
            path = " -> ".join((*chain[chain.index(key) :], key))
            raise _err(tok, f"import cycle: {path}")

    def _resolve(self, tok: LexToken) -> list[str]:
        """Files named by an import argument, relative to the importing file's directory."""
        pattern = tok.text
        base = self.dirs.get(tok.file) or os.path.dirname(os.path.abspath(tok.file))
        if _GLOB_CHARS.search(pattern):
            full = pattern if os.path.isabs(pattern) else os.path.join(escape(base), pattern)
            found = sorted(os.path.abspath(p) for p in glob(full) if os.path.isfile(p))
            if not found:
                log.warning("%s:%d - no files match import pattern %s", tok.file, tok.line, pattern)
            return found
        path = os.path.abspath(os.path.join(base, pattern))
        if os.path.isdir(path):
            raise _err(tok, f"cannot import {path}: is a directory")
        if not os.path.exists(path):
            raise _err(
                tok,
                f"import {pattern}: unknown snippet (none of that name is defined above) "
                f"and no such file {path}",
            )
        return [path]

    # -- structure ------------------------------------------------------------------------

    def parse_all(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while (line := self._next()) is not None:
            block = self._server_block(line)
            if block is not None:
                blocks.append(block)
        return blocks

    def _server_block(self, line: _Line) -> ServerBlock | None:
        head = line.tokens[0]
        if head.is_open:
            raise _err(head, "missing server block keys before '{'")
        if head.is_close:
            raise _err(head, "unexpected '}' (no matching '{')")
        keys, brace, opener = self._keys(line)
        if not keys:
            if head.unset:  # _err names them
                raise _err(head, "missing server block keys")
            raise _err(head, "missing server block keys (empty word?)")
        if len(keys) == 1 and len(keys[0].text) > 2 and keys[0].text[0] + keys[0].text[-1] == "()":
            self._snippet(keys[0], brace, opener)
            return None
        if brace is _Brace.EMPTY:
            directives: list[Directive] = []
        else:
            directives = self._directives(opener if brace is _Brace.OPEN else None)
        return ServerBlock(keys, directives, head.file, head.line)

    def _keys(self, line: _Line) -> tuple[list[Token], _Brace, LexToken | None]:
        """Collect keys (comma continuation, ``{`` on the next line) and the block opener."""
        keys: list[Token] = []
        tokens = line.tokens
        expecting = False  # the last key ended in ',' so another one must follow
        while True:
            words, brace = _split_block(tokens)
            for w in words:
                parts = w.text.split(",")
                keys.extend(Token(p, w.file, w.line, w.unset) for p in parts if p)
                expecting = len(parts) > 1 and not parts[-1]
            if expecting and brace is not _Brace.NONE:
                raise _err(tokens[-1], "expected another key after ',' but found '{'")
            if not expecting:
                break
            nxt = self._next()
            if nxt is None:
                raise _err(tokens[-1], "expected another key after ',' but reached end of input")
            tokens = nxt.tokens
        if brace is _Brace.NONE and (nxt := self._next()) is not None:
            if nxt.tokens[0].is_open:  # Caddy lets a server block's '{' start the next line
                tokens = nxt.tokens
                _, brace = _split_block(tokens)
            else:
                self.pending.append(nxt)
        return keys, brace, tokens[-1] if brace is _Brace.OPEN else None

    def _snippet(self, key: Token, brace: _Brace, opener: LexToken | None) -> None:
        name = key.text[1:-1]
        if name in self.snippets:
            raise ConfigError(f"redeclaration of snippet {name}", key.file, key.line)
        if brace is _Brace.NONE:
            raise ConfigError(f"snippet ({name}) needs a '{{ … }}' body", key.file, key.line)
        body: list[list[LexToken]] = []
        depth = 0 if opener is None else 1
        while depth:
            line = self._raw_next()  # imports inside a snippet expand where it is used
            if line is None:
                assert opener is not None
                raise _err(opener, f"unclosed '{{' of snippet ({name}): no matching '}}'")
            for i, t in enumerate(line.tokens):
                depth += t.is_open - t.is_close
                if depth == 0:
                    if i + 1 < len(line.tokens):
                        raise _err(line.tokens[i + 1], f"unexpected '{line.tokens[i + 1].text}'")
                    if i > 0:
                        raise _err(t, "unexpected '}' in the middle of a line")
                    break
            if depth:
                body.append(line.tokens)
        self.snippets[name] = body

    def _directives(self, opener: LexToken | None) -> list[Directive]:
        """Directive lines up to the ``}`` matching `opener` (or end of input if None)."""
        out: list[Directive] = []
        while (line := self._next()) is not None:
            tokens = line.tokens
            head = tokens[0]
            if head.is_close:
                if opener is None:
                    raise _err(head, "unexpected '}' (no matching '{')")
                if len(tokens) > 1:
                    raise _err(tokens[1], f"unexpected '{tokens[1].text}' after '}}'")
                return out
            if head.is_open:
                raise _err(head, "unexpected '{': a block must open at the end of a line")
            words, brace = _split_block(tokens)
            name = words[0]
            if not name.text:
                raise _err(
                    name,
                    "empty directive name" if name.unset else "empty directive name (empty word?)",
                )
            directive = Directive(
                name.text,
                [_token(t) for t in words[1:]],
                name.file,
                name.line,
                has_block=brace is not _Brace.NONE,
            )
            if brace is _Brace.OPEN:
                directive.children = self._directives(tokens[-1])
            out.append(directive)
        if opener is not None:
            raise _err(opener, "unclosed '{': end of input reached before the matching '}'")
        return out


def parse_corefile_text(
    text: str,
    filename: str = "Corefile",
    base_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ServerBlock]:
    """Parse Corefile `text`; `filename` labels errors, `base_dir` anchors relative imports.

    `base_dir` defaults to the directory of `filename`; `env` to ``os.environ``.
    """
    directory = os.path.abspath(base_dir or os.path.dirname(os.path.abspath(filename)))
    parser = _Parser(os.environ if env is None else env)
    root = os.path.join(directory, os.path.basename(filename))
    parser.load(text, filename, directory, (f"file {root}",))
    return parser.parse_all()


def parse_corefile(path: str, env: Mapping[str, str] | None = None) -> list[ServerBlock]:
    """Read and parse the Corefile at `path` (imports are relative to its directory)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read Corefile: {e}", path) from e
    return parse_corefile_text(text, path, os.path.dirname(os.path.abspath(path)), env)
