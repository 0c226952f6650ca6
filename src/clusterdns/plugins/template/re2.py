"""Go regexp (RE2) syntax: what Go rejects is rejected, the rest is rewritten for Python's re.

Why: CoreDNS compiles `match` patterns with Go's regexp, which has no look-arounds, back-
references, atomic groups or possessive quantifiers. Python's re has them all, so accepting a
pattern Go rejects would serve a Corefile CoreDNS refuses. The two also spell a few things
differently; this rewrites them so a pattern means what it means in Go:

* `\\z` (end of text) becomes `\\Z`; `\\Z` itself is an error, as in Go;
* `(?<name>…)` becomes `(?P<name>…)`; `(?i)` in the middle of a group applies to the rest of
  it (each alternative), written as scoped `(?i:…)` groups (Python wants global flags first);
* `\\Q…\\E` is escaped literally, `\\x{…}` and octal `\\123` become `\\U` escapes, a `{` that is
  not a repeat is a literal, POSIX classes such as `[[:alpha:]]` are spelled out;
* repeat counts above 1000 and nested repetition (`a**`, `a++`) are errors, as in Go.

Not supported (an error naming it): Unicode classes `\\pL`/`\\p{Greek}`, negated POSIX classes
and the `U` (ungreedy) flag. Patterns are compiled with re.ASCII: Go's `\\d \\w \\s \\b` are ASCII.
"""

from __future__ import annotations

import re

MAX_REPEAT = 1000
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": r"\x00-\x7f", "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": r"!-/:-@\[-`{-~", "space": r"\t\n\v\f\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])")
_ASSERTIONS = frozenset({"^", "$", r"\A", r"\Z", r"\b", r"\B"})
_NAME = re.compile(r"\(\?P?<([A-Za-z0-9_]+)>")


class RegexError(ValueError):
    """Go's regexp.Compile error text (or what ClusterDNS cannot do)."""


def _go(code: str, expr: str) -> RegexError:
    return RegexError(f"error parsing regexp: {code}: `{expr}`")


def _unsupported(what: str) -> RegexError:
    return RegexError(f"{what} is not supported by ClusterDNS")


def _char(cp: int) -> str:
    """One code point as a Python pattern atom that is always a literal."""
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    return "\\" + ch if ch.isascii() and ch.isprintable() else f"\\U{cp:08x}"


def _escape(pat: str, i: int, in_class: bool) -> tuple[str, int, int | None]:
    """The escape at pat[i] ('\\'): (Python text, next index, code point if a single char)."""
    if i + 1 >= len(pat):
        raise _go("trailing backslash at end of expression", "")
    c = pat[i + 1]
    j = i + 2
    if c in "01234567":
        k = j
        while k < len(pat) and k < i + 4 and pat[k] in "01234567":
            k += 1
        if c != "0" and k == j:
            raise _go("invalid escape sequence", pat[i:j])
        cp = int(pat[i + 1 : k], 8)
        return _char(cp), k, cp
    if c == "x":
        if pat.startswith("{", j):
            end = pat.find("}", j)
            digits = pat[j + 1 : end] if end > 0 else ""
            if (
                not digits
                or not re.fullmatch(r"[0-9A-Fa-f]+", digits)
                or int(digits, 16) > 0x10FFFF
            ):
                raise _go("invalid escape sequence", pat[i : end + 1 if end > 0 else len(pat)])
            return _char(int(digits, 16)), end + 1, int(digits, 16)
        digits = pat[j : j + 2]
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", digits):
            raise _go("invalid escape sequence", pat[i : j + 2])
        return _char(int(digits, 16)), j + 2, int(digits, 16)
    simple = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}
    if c in simple:
        return _char(simple[c]), j, simple[c]
    if c in "dDsSwW":
        return "\\" + c, j, None
    if c in "pP":
        raise _unsupported(f"the Unicode class {pat[i:j]}… in a regex")
    if not in_class:
        if c in "bBA":
            return "\\" + c, j, None
        if c == "z":
            return r"\Z", j, None
    if c.isascii() and not c.isalnum():
        return _char(ord(c)), j, ord(c)
    raise _go("invalid escape sequence", pat[i:j])


def _class(pat: str, i: int) -> tuple[str, int]:
    """The class starting at pat[i] ('['), written for Python."""
    start = i
    i += 1
    out = ["["]
    if pat.startswith("^", i):
        out.append("^")
        i += 1
    first = True
    while i < len(pat) and (pat[i] != "]" or first):
        first = False
        if pat.startswith("[:", i):
            end = pat.find(":]", i + 2)
            name = pat[i + 2 : end] if end > 0 else ""
            if name.startswith("^"):
                raise _unsupported(f"the negated POSIX class [:{name}:] in a regex")
            if name in _POSIX:
                out.append(_POSIX[name])
                i = end + 2
                continue
            if end > 0 and re.fullmatch(r"\^?[a-z]+", name):
                raise _go("invalid character class range", pat[i : end + 2])
        at = i
        lo, i, text = _class_char(pat, i)
        if lo is None:  # \d and friends
            out.append(text)
            continue
        if pat.startswith("-", i) and i + 1 < len(pat) and pat[i + 1] != "]":
            hi, j, hi_text = _class_char(pat, i + 1)
            if hi is None or hi < lo:
                raise _go("invalid character class range", pat[at:j])
            out.append(f"{text}-{hi_text}")
            i = j
            continue
        out.append(text)
    if i >= len(pat):
        raise _go("missing closing ]", pat[start:])
    return "".join(out) + "]", i + 1


def _class_char(pat: str, i: int) -> tuple[int | None, int, str]:
    if pat[i] == "\\":
        text, j, cp = _escape(pat, i, True)
        return cp, j, text
    return ord(pat[i]), i + 1, _char(ord(pat[i]))


def translate(pat: str) -> str:
    """The Python spelling of Go pattern `pat`, or RegexError with Go's (or our) reason."""
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # per open group: flags opened by a bare (?flags)
    i, n = 0, len(pat)
    operand = False  # is there something a repetition could apply to?
    repeated = False  # was the last thing a repetition?
    last_repeat = 0  # where it started
    while i < n:
        c = pat[i]
        if c in "*+?" or (c == "{" and _REPEAT.match(pat, i)):
            m = _REPEAT.match(pat, i) if c == "{" else None
            end = m.end() if m else i + 1
            if repeated:
                lazy = end + pat.startswith("?", end)
                raise _go("invalid nested repetition operator", pat[last_repeat:lazy])
            if not operand:
                raise _go("missing argument to repetition operator", pat[i:end])
            if m:
                low, high = int(m.group(1)), m.group(3)
                top = low if m.group(2) is None else (int(high) if high else -1)
                if low > MAX_REPEAT or top > MAX_REPEAT or (top >= 0 and top < low):
                    raise _go("invalid repeat count", m.group(0))
            if out[-1] in _ASSERTIONS:  # Go repeats `^` or `\b`; Python wants a group
                out[-1] = f"(?:{out[-1]})"
            out.append(pat[i:end])
            last_repeat, i = i, end
            if pat.startswith("?", i):
                out.append("?")
                i += 1
            repeated = True
            continue
        repeated = False
        operand = True
        if c == "\\":
            if pat.startswith("Q", i + 1):
                end = pat.find(r"\E", i + 2)
                literal = pat[i + 2 :] if end < 0 else pat[i + 2 : end]
                out.append("".join(_char(ord(ch)) for ch in literal))
                i = n if end < 0 else end + 2
                operand = bool(literal)
                continue
            text, i, _ = _escape(pat, i, False)
            out.append(text)
        elif c == "[":
            text, i = _class(pat, i)
            out.append(text)
        elif c == "(":
            i = _group(pat, i, out, scopes)
            operand = False
        elif c == ")":
            if len(scopes) == 1:
                raise _go("unexpected )", pat)
            out.append(")" * len(scopes.pop()) + ")")
            i += 1
            operand = True
        elif c == "|":
            opened = scopes[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{f}:" for f in opened))
            i += 1
            operand = False
        else:
            out.append("\\{" if c == "{" else c)
            i += 1
    if len(scopes) > 1:
        raise _go("missing closing )", pat)
    return "".join(out) + ")" * len(scopes[0])


def _group(pat: str, i: int, out: list[str], scopes: list[list[str]]) -> int:
    """An opening '(' at pat[i]: append its Python text; return the index after it."""
    if not pat.startswith("(?", i):
        out.append("(")
        scopes.append([])
        return i + 1
    m = _NAME.match(pat, i)
    if m:
        out.append(f"(?P<{m.group(1)}>")
        scopes.append([])
        return m.end()
    rest = pat[i + 2 : i + 4]
    for prefix, what in (("=", "look-ahead (?="), ("!", "look-ahead (?!"),
                         ("<=", "look-behind (?<="), ("<!", "look-behind (?<!")):  # fmt: skip
        if rest.startswith(prefix):
            raise RegexError(f"{what}…) is not supported by Go's RE2 (nor here)")
    if rest.startswith("P="):
        raise RegexError("the backreference (?P=…) is not supported by Go's RE2 (nor here)")
    if rest.startswith(">"):
        raise RegexError("the atomic group (?>…) is not supported by Go's RE2 (nor here)")
    m = _FLAGS.match(pat, i)
    if m is None or (m.group(2) is not None and not m.group(2)):
        j = i + 2
        while j < len(pat) and pat[j] in "imsU-":
            j += 1
        raise _go("invalid or unsupported Perl syntax", pat[i : j + 1])  # Go's: up to the bad one
    on, off = m.group(1), m.group(2) or ""
    if not on + off:  # (?:…) or Go's no-op (?)
        if m.group(3) == ":":
            out.append("(?:")
            scopes.append([])
        return m.end()
    if "U" in on + off:
        raise _unsupported("the U (ungreedy) regex flag")
    flags = on + (f"-{off}" if off else "")
    if m.group(3) == ":":
        out.append(f"(?{flags}:")
        scopes.append([])
    else:  # (?i) alone: the rest of the enclosing group, each alternative, is scoped
        out.append(f"(?{flags}:")
        scopes[-1].append(flags)
    return m.end()


def compile_go(pattern: str) -> re.Pattern[str]:
    """Compile a Go regexp for Python, or raise RegexError."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as e:
        raise RegexError(f"error parsing regexp: {e}") from None
