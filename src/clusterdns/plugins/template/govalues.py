"""Go values as CoreDNS's template data holds them, printed as Go's fmt prints them.

Also the two functions templates call (index and strconv.ParseUint as `parseInt`), with the
argument typing text/template applies. Used by gotemplate; no DNS here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ExecError(Exception):
    """Running the template failed (Go's Execute error)."""


class _NoValue:
    """An invalid reflect.Value: what a missing map key gives; prints `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


@dataclass(frozen=True, slots=True)
class GoInt:
    """An integer with its Go type (int for constants, uint64 from parseInt, uint16 …)."""

    value: int
    type: str = "int"


@dataclass(frozen=True, slots=True)
class Question:
    """miekg/dns Question: prints as `;NAME<TAB>CLASS<TAB> TYPE` (its String method)."""

    Name: str
    Qtype: int
    Qclass: int
    class_text: str
    type_text: str

    def __str__(self) -> str:
        return f";{self.Name}\t{self.class_text}\t {self.type_text}"


#: miekg/dns MsgHdr fields a template may read: name -> Go type.
MESSAGE_FIELDS = {
    "Id": "uint16", "Opcode": "int", "Rcode": "int", "Response": "bool",
    "Authoritative": "bool", "Truncated": "bool", "RecursionDesired": "bool",
    "RecursionAvailable": "bool", "Zero": "bool", "AuthenticatedData": "bool",
    "CheckingDisabled": "bool",
}  # fmt: skip
QUESTION_FIELDS = {"Name": "string", "Qtype": "uint16", "Qclass": "uint16"}
#: The template's data (CoreDNS's templateData): field -> Go type; Meta is a method.
DATA_FIELDS = {
    "Zone": "string", "Name": "string", "Regex": "string", "Class": "string",
    "Type": "string", "Remote": "string", "Match": "[]string", "Group": "map[string]string",
    "Question": "*dns.Question", "Message": "*dns.Msg", "Meta": "method",
}  # fmt: skip


class Data(Protocol):
    """What a template reads: CoreDNS's templateData."""

    def field(self, name: str) -> object: ...

    def meta(self, key: str) -> str: ...


Value = object


def type_name(v: Value) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoInt):
        return v.type
    if isinstance(v, list):
        return "[]string"
    if isinstance(v, dict):
        return "map[string]string"
    if isinstance(v, Question):
        return "*dns.Question"
    return "<nil>"


def go_print(v: Value) -> str:
    """fmt.Fprint of a value, as text/template prints an action's result."""
    if v is NO_VALUE:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, GoInt):
        return str(v.value)
    if isinstance(v, list):
        return "[" + " ".join(v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{v[k]}" for k in sorted(v)) + "]"
    return str(v)


def typed(v: Value, want: str) -> Value:
    if v is NO_VALUE:
        raise ExecError(f"invalid value; expected {want}")
    if want == "string" and isinstance(v, str):
        return v
    if want == "int" and isinstance(v, GoInt) and v.type == "int":
        return v.value
    raise ExecError(f"wrong type for value; expected {want}; got {type_name(v)}")


def index(item: Value, indexes: list[Value]) -> Value:
    if item is NO_VALUE:
        raise ExecError("error calling index: index of untyped nil")
    for ix in indexes:
        if isinstance(item, list | str):
            if not isinstance(ix, GoInt):
                raise ExecError(
                    f"error calling index: cannot index slice/array with type {type_name(ix)}"
                )
            if not 0 <= ix.value < len(item):
                raise ExecError(f"error calling index: index out of range: {ix.value}")
            item = item[ix.value] if isinstance(item, list) else GoInt(ord(item[ix.value]), "uint8")
        elif isinstance(item, dict):
            if not isinstance(ix, str):
                raise ExecError(
                    f"error calling index: value has type {type_name(ix)}; should be string"
                )
            item = item.get(ix, "")
        else:
            raise ExecError(f"error calling index: can't index item of type {type_name(item)}")
    return item


@dataclass(frozen=True, slots=True)
class Header:
    """.Message's header fields (miekg/dns MsgHdr)."""

    Id: GoInt
    Opcode: GoInt
    Rcode: GoInt
    Response: bool
    Authoritative: bool
    Truncated: bool
    RecursionDesired: bool
    RecursionAvailable: bool
    Zero: bool
    AuthenticatedData: bool
    CheckingDisabled: bool


def parse_uint(s: str, base: int, bits: int) -> int:
    """strconv.ParseUint: ValueError("invalid syntax" | "value out of range" | …) on error."""
    if not s:
        raise ValueError("invalid syntax")
    base0, s0 = base == 0, s
    if base == 0:
        base = 10
        if s[0] == "0":
            p = s[1:2].lower()
            if len(s) >= 3 and p in "box":
                base, s = {"b": 2, "o": 8, "x": 16}[p], s[2:]
            else:
                base, s = 8, s[1:]
    elif not 2 <= base <= 36:
        raise ValueError(f"invalid base {base}")
    if bits == 0:
        bits = 64
    elif not 0 < bits <= 64:
        raise ValueError(f"invalid bit size {bits}")
    n, underscores = 0, False
    for c in s.lower():
        if c == "_" and base0:
            underscores = True
            continue
        d = ord(c) - 48 if "0" <= c <= "9" else ord(c) - 87 if "a" <= c <= "z" else 99
        if d >= base:
            raise ValueError("invalid syntax")
        n = n * base + d
    if underscores and not _underscore_ok(s0):
        raise ValueError("invalid syntax")
    if n >= 1 << bits:
        raise ValueError("value out of range")
    return n


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: underscores only between digits (or after a base prefix)."""
    saw, i, hexa = "^", 0, False
    if s[:1] in ("+", "-"):
        s = s[1:]
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for c in s[i:]:
        if c.isdigit() or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"
