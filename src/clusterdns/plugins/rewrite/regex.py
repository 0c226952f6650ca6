"""Go RE2 patterns (CoreDNS's `regexp.Compile`) run on Python's `re`.

A pattern RE2 rejects must fail at setup here too, not quietly mean something else, so the
few Python-only constructs are refused with the reason Go gives (`invalid or unsupported Perl
syntax: (?=` …): look-arounds, backreferences (`\\1`, `(?P=name)`), atomic groups `(?>`,
possessive quantifiers `*+ ++ ?+ }+`, conditionals `(?(`, `\\Z`, Python's `{,n}` (a literal in
RE2), repeat counts above 1000 and flags set in the middle of a pattern.

Translated, so that RE2 patterns mean what they mean in Go:

* `(?<name>…)` (Go 1.22) becomes Python's `(?P<name>…)` (which both accept as is);
* `\\z` becomes `\\Z`; `\\Q…\\E` becomes the escaped literal; `\\x{HHHH}` a code point;
* POSIX classes inside brackets (`[[:alpha:]]`) become their ASCII ranges;
* `\\d \\w \\s \\b` are ASCII-only in RE2: patterns are compiled with `re.ASCII`.

Not handled (refused): Unicode classes `\\p{…}`, `\\C`, the ungreedy flag `U`, negated POSIX
classes `[[:^alpha:]]`. `$` without
`(?m)` also matches before a final newline in Python; a DNS name in presentation form never
holds a raw newline, so names match alike.
"""

from __future__ import annotations

import re

#: CoreDNS's maxRegexpLen.
MAX_LEN = 10000

_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")


class RegexError(ValueError):
    """Why RE2 (or Python) rejects a pattern, worded as Go's regexp/syntax does."""


def _perl(what: str) -> RegexError:
    return RegexError(f"invalid or unsupported Perl syntax: `{what}`")


def translate(pattern: str) -> str:
    """The Python spelling of RE2 `pattern`, or RegexError for what RE2 would reject."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            piece, i = _escape(pattern, i, in_class)
            out.append(piece)
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                neg = name.startswith("^")
                if end > 0 and name.lstrip("^") in _POSIX:
                    if neg:
                        raise RegexError(
                            f"negated POSIX classes (`[:{name}:]`) are not supported by ClusterDNS"
                        )
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
                out.append("\\[")
                i += 1
                continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ] is a literal in both
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            piece, i = _group(pattern, i, bool(out))
            out.append(piece)
            continue
        if c in "*+?":
            if i + 1 < n and pattern[i + 1] == "+":
                raise RegexError(f"invalid nested repetition operator: `{c}+`")
            out.append(c)
            i += 1
            continue
        if c == "{":
            m = _REPEAT.match(pattern, i)
            if m is None or (not m.group(1)):
                out.append("\\{")  # RE2: not a repeat (`{`, `{,3}`), a literal brace
                i += 1
                continue
            for num in (m.group(1), m.group(3)):
                if num and int(num) > 1000:
                    raise RegexError(f"invalid repeat count: `{m.group(0)}`")
            i = m.end()
            if i < n and pattern[i] == "+":
                raise RegexError(f"invalid nested repetition operator: `{m.group(0)}+`")
            out.append(m.group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _escape(p: str, i: int, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(p):
        raise RegexError("trailing backslash at end of expression: ``")
    c = p[i + 1]
    octal = i + 3 < len(p) and p[i + 2] in "01234567" and p[i + 3] in "01234567"
    if c.isdigit() and c != "0" and not octal:  # a backreference
        raise RegexError(f"invalid escape sequence: `\\{c}`")
    if c in "pPC":  # RE2 has these; Python's re has not
        raise RegexError(f"`\\{c}` (Unicode classes, single bytes) is not supported by ClusterDNS")
    if c in "ZGXKRNgk" or (c == "A" and in_class):
        raise RegexError(f"invalid escape sequence: `\\{c}`")
    if c == "z":
        return "\\Z", i + 2
    if c == "Q":
        end = p.find("\\E", i + 2)
        lit = p[i + 2 :] if end < 0 else p[i + 2 : end]
        return re.escape(lit), len(p) if end < 0 else end + 2
    if c == "x" and i + 2 < len(p) and p[i + 2] == "{":
        end = p.find("}", i + 3)
        try:
            cp = int(p[i + 3 : end], 16)
            ch = chr(cp)
        except (ValueError, OverflowError):
            raise RegexError(f"invalid escape sequence: `{p[i : end + 1]}`") from None
        return re.escape(ch), end + 1
    return p[i : i + 2], i + 2


def _group(p: str, i: int, not_first: bool) -> tuple[str, int]:
    """`(?…` at p[i]: named groups, flag groups; look-arounds and friends are refused."""
    rest = p[i + 2 :]
    for perl in ("=", "!", "<=", "<!", ">", "(", "P=", "P>", "#", "|"):
        if rest.startswith(perl):
            raise _perl(f"(?{perl}")
    if rest.startswith("<"):
        return "(?P<", i + 3  # Go's (?<name>…)
    if rest.startswith("P<"):
        return "(?P<", i + 4
    m = re.match(r"([imsU]*)(?:-([imsU]*))?([:)])", rest)
    if m is None or not (m.group(1) or m.group(2) is not None):
        raise RegexError(f"invalid or unsupported Perl syntax: `{p[i : i + 3]}`")
    if "U" in (m.group(1) + (m.group(2) or "")):
        raise RegexError("the ungreedy flag `U` is not supported by ClusterDNS")
    if m.group(3) == ")" and not_first:
        raise RegexError("flags in the middle of a pattern are not supported by ClusterDNS")
    return "(?" + m.group(0), i + 2 + m.end()


def compile_re2(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern as Python's `re`, or RegexError saying why it cannot be."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as e:
        raise RegexError(str(e)) from None
    except RecursionError:
        raise RegexError("expression nests too deeply") from None
