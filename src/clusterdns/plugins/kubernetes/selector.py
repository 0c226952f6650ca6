"""Kubernetes label selectors, for the `labels` and `namespace_labels` options.

CoreDNS reads these with apimachinery's `metav1.ParseToLabelSelector`, so the same subset is
accepted here: `key=value`, `key==value`, `key in (a,b)`, `key notin (a,b)`, `key` (exists) and
`!key` (does not exist), joined by commas. `!=`, `>` and `<` parse but are refused, as
ParseToLabelSelector refuses them. Keys and values are checked like the API server checks
label keys and values.

`parse_selector(text)` raises ValueError with a message in the words of labels.Parse;
`Selector.matches(labels)` applies it (an empty selector matches everything) and `str(selector)`
is the canonical form (requirements sorted by key), fit for an API `labelSelector` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Requirement", "Selector", "parse_selector"]

_SPECIAL = set("=!(),<>")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

# Operators, as apimachinery's `selection` package spells them.
EXISTS = "exists"
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
GREATER = "gt"
LESS = "lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # EXISTS, DOES_NOT_EXIST, IN or NOT_IN (equality is stored as IN of one value)
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == EXISTS:
            return self.key in labels
        if self.op == DOES_NOT_EXIST:
            return self.key not in labels
        if self.op == IN:
            return self.key in labels and labels[self.key] in self.values
        # NOT_IN: an absent key satisfies it, as in apimachinery.
        return self.key not in labels or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == DOES_NOT_EXIST:
            return "!" + self.key
        if self.op == IN and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# ---- lexing ----------------------------------------------------------------------------------

_IDENT = "identifier"
_EOS = "end of string"


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; kind is an operator/punctuation literal, _IDENT, IN/NOT_IN or _EOS."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in _SPECIAL:
            two = text[i : i + 2]
            if two in ("!=", "=="):
                out.append((two, two))
                i += 2
            else:
                out.append((c, c))
                i += 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
            j += 1
        word = text[i:j]
        out.append((word if word in (IN, NOT_IN) else _IDENT, word))
        i = j
    out.append((_EOS, ""))
    return out


# ---- validation ------------------------------------------------------------------------------


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            raise ValueError(f'key: Invalid value: "{key}": prefix part must be non-empty')
        if len(prefix) > 253 or not all(_SUBDOMAIN_LABEL.fullmatch(p) for p in prefix.split(".")):
            raise ValueError(
                f'key: Invalid value: "{key}": prefix part a lowercase RFC 1123 subdomain must '
                "consist of lower case alphanumeric characters, '-' or '.', and must start and "
                "end with an alphanumeric character"
            )
    if not name:
        raise ValueError(f'key: Invalid value: "{key}": name part must be non-empty')
    if len(name) > 63:
        raise ValueError(
            f'key: Invalid value: "{key}": name part must be no more than 63 characters'
        )
    if not _NAME.fullmatch(name):
        raise ValueError(
            f'key: Invalid value: "{key}": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def _check_value(value: str) -> None:
    if len(value) > 63:
        raise ValueError(
            f'values[0][]: Invalid value: "{value}": must be no more than 63 characters'
        )
    if not _VALUE.fullmatch(value):
        raise ValueError(
            f'values[0][]: Invalid value: "{value}": a valid label must be an empty string or '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character"
        )


# ---- parsing ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.pos]

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.pos]
        if tok[0] != _EOS:
            self.pos += 1
        return tok

    def parse(self) -> list[tuple[Requirement, bool]]:
        """Requirements, each with whether it came from `=`/`==` (a MatchLabels entry)."""
        reqs: list[tuple[Requirement, bool]] = []
        while True:
            kind, lit = self.peek()
            if kind == _EOS:
                return reqs
            if kind not in (_IDENT, DOES_NOT_EXIST):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            reqs.append(self.requirement())
            kind, lit = self.take()
            if kind == _EOS:
                return reqs
            if kind != ",":
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self.peek()
            if kind not in (_IDENT, DOES_NOT_EXIST):
                raise ValueError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> tuple[Requirement, bool]:
        negated = False
        if self.peek()[0] == DOES_NOT_EXIST:
            self.take()
            negated = True
        kind, key = self.take()
        if kind != _IDENT:
            raise ValueError(f"found '{key}', expected: identifier")
        _check_key(key)
        if negated:
            return Requirement(key, DOES_NOT_EXIST), False
        if self.peek()[0] in (_EOS, ","):
            return Requirement(key, EXISTS), False
        kind, lit = self.take()
        ops = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS}
        ops.update({">": GREATER, "<": LESS})
        op = ops.get(kind)
        if op is None:
            raise ValueError(f"found '{lit}', expected: {', '.join(sorted(ops))}")
        values = self.set_values() if op in (IN, NOT_IN) else self.exact_value()
        for v in values:
            _check_value(v)
        if op in (IN, NOT_IN) and not values:
            raise ValueError(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
            )
        if op in (GREATER, LESS):
            if not values[0].lstrip("-").isdigit():
                raise ValueError(
                    f"values[0]: Invalid value: \"{values[0]}\": for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                )
            raise ValueError(f'"{lit}" isn\'t supported in label selectors')
        if op == NOT_EQUALS:
            raise ValueError('"!=" is not a valid label selector operator')
        if op in (EQUALS, DOUBLE_EQUALS):
            return Requirement(key, IN, values), True
        return Requirement(key, op, tuple(sorted(set(values)))), False

    def exact_value(self) -> tuple[str, ...]:
        kind, lit = self.peek()
        if kind in (_EOS, ","):
            return ("",)
        if kind in (_IDENT, IN, NOT_IN):
            self.take()
            return (lit,)
        raise ValueError(f"found '{lit}', expected: identifier")

    def set_values(self) -> tuple[str, ...]:
        kind, lit = self.take()
        if kind != "(":
            raise ValueError(f"found '{lit}', expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, lit = self.take()
            if kind == ")":
                if expect_value and values:
                    values.append("")  # a trailing comma adds an empty value, as in labels.Parse
                return tuple(values)
            if kind == "," and expect_value:
                values.append("")
                continue
            if kind == ",":
                expect_value = True
                continue
            if kind in (_IDENT, IN, NOT_IN) and expect_value:
                values.append(lit)
                expect_value = False
                continue
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")


def parse_selector(text: str) -> Selector:
    """Parse `text` as ParseToLabelSelector would; ValueError says what is wrong."""
    try:
        reqs = _Parser(text).parse()
    except ValueError as e:
        raise ValueError(f'couldn\'t parse the selector string "{text}": {e}') from None
    # `=` lines become one MatchLabels map in CoreDNS, so a key given twice keeps its last value.
    labels: dict[str, Requirement] = {}
    others: list[Requirement] = []
    for r, is_eq in reqs:
        if is_eq:
            labels[r.key] = r
        else:
            others.append(r)
    ordered = sorted([*labels.values(), *others], key=lambda r: (r.key, r.op, r.values))
    return Selector(tuple(ordered))
