"""A small, safe subset of expr-lang (github.com/expr-lang/expr), as CoreDNS's *view* uses it.

`compile_expr(text, functions)` parses an expression into a closure over an environment of
named functions (CoreDNS's expression.DefaultEnv); nothing is ever handed to Python's eval.
Supported, with expr-lang's precedence:

* literals: 'single' and "double" quoted strings (backslash escapes), integers, floats,
  true, false, nil, arrays `[a, b]`;
* calls of the environment's functions, checked for name and argument count;
* `!`/`not`, unary `-`; `&&`/`and`, `||`/`or`; `==`, `!=`, `<`, `<=`, `>`, `>=`; `in`,
  `not in` (array membership); `matches` / `not matches` (regular expression), `contains`,
  `startsWith`, `endsWith`; `+` (numbers or strings), `-`, `*`, `/`, `%`; `??`;
  `cond ? a : b`; parentheses.

Anything else (variables, member access, builtins, closures, pipes…) is a CompileError.
Mismatched literal types in comparisons are caught at compile time as expr-lang does; errors
while running (a bad CIDR, a type mismatch from a function's result) raise EvalError, which
*view* takes as "does not match".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = Any
Env = Mapping[str, Callable[..., Value]]
Program = Callable[[Env], Value]


class CompileError(ValueError):
    """The expression is not in the supported subset, or is malformed."""


class EvalError(ValueError):
    """The expression failed while running."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+\.\d+|\d+)
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>\?\?|&&|\|\||==|!=|<=|>=|\*\*|[-+*/%<>!()\[\],?:.|])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}

#: Binary operators by precedence (expr-lang's parser table), lowest first.
_BINARY: dict[str, int] = {
    "or": 10, "||": 10, "and": 15, "&&": 15,
    "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20, ">=": 20,
    "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20,
    "+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "??": 500,
}  # fmt: skip
_WORD_OPS = {"or", "and", "in", "matches", "contains", "startsWith", "endsWith", "not"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, name, op, end
    text: str
    pos: int


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise CompileError(f"unexpected token {bad!r} at {_where(text, pos)}")
        kind = m.lastgroup or "op"
        value = m.group(kind)
        if kind == "name" and value in _WORD_OPS:
            kind = "op"
        out.append(Token(kind, value, m.start(kind)))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"({line}:{col})"


def _unquote(lit: str) -> str:
    body = lit[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise CompileError(f"invalid escape \\{nxt} in {lit}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


# ---- static types: what a node is known to be (None: only known when running) -------------

_KIND = {bool: "bool", int: "int", float: "float", str: "string", list: "array"}


@dataclass(frozen=True, slots=True)
class Node:
    run: Program
    kind: str | None  # "bool", "int", "float", "string", "array", "nil", or None (unknown)
    const: bool = False  # a literal: its value is known when compiling


def _const(value: Value) -> Node:
    kind = "nil" if value is None else _KIND.get(type(value))
    return Node(lambda env: value, kind, True)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, tuple[int, str | None]]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.functions = functions

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text or t.kind not in ("op",):
            raise CompileError(f"expected {text!r} {_where(self.text, t.pos)}")

    def error(self, message: str, t: Token | None = None) -> CompileError:
        t = t or self.tok
        return CompileError(f"{message} {_where(self.text, t.pos)}")

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        node = self.expression()
        if self.tok.kind != "end":
            raise self.error(f"unexpected token {self.tok.text!r}")
        return node

    def expression(self) -> Node:
        cond = self.binary(0)
        if self.tok.text == "?" and self.tok.kind == "op":
            self.take()
            a = self.expression()
            self.expect(":")
            b = self.expression()
            return Node(lambda env: a.run(env) if _truth(cond.run(env)) else b.run(env), None)
        return cond

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            t = self.tok
            op = t.text
            negate = False
            if t.kind == "op" and op == "not":
                nxt = self.toks[self.i + 1]
                if nxt.kind == "op" and nxt.text in ("in", "matches", "contains", "startsWith",
                                                     "endsWith"):  # fmt: skip
                    negate, op = True, nxt.text
                else:
                    break
            if t.kind != "op" or op not in _BINARY or _BINARY[op] < min_prec:
                break
            prec = _BINARY[op]
            self.take()
            if negate:
                self.take()
            right = self.binary(prec + 1)
            left = _binary(op, left, right, negate, self, t)
        return left

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.text in ("!", "not"):
            self.take()
            operand = self.binary(50)  # expr-lang: unary operators bind tighter than `==`
            if operand.kind not in (None, "bool"):
                raise self.error(f"invalid operation: {t.text} ({operand.kind})", t)
            return Node(lambda env: not _bool(operand.run(env), t.text), "bool")
        if t.kind == "op" and t.text in ("-", "+"):
            self.take()
            operand = self.binary(50)
            if operand.kind not in (None, "int", "float"):
                raise self.error(f"invalid operation: {t.text} ({operand.kind})", t)
            sign = -1 if t.text == "-" else 1
            return Node(lambda env: sign * _number(operand.run(env), t.text), operand.kind)
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "num":
            return _const(float(t.text) if "." in t.text else int(t.text))
        if t.kind == "str":
            return _const(_unquote(t.text))
        if t.kind == "op" and t.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        if t.kind == "op" and t.text == "[":
            items: list[Node] = []
            while not (self.tok.kind == "op" and self.tok.text == "]"):
                items.append(self.expression())
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.take()
                elif not (self.tok.kind == "op" and self.tok.text == "]"):
                    raise self.error("expected ',' or ']'")
            self.take()
            return Node(lambda env: [n.run(env) for n in items], "array")
        if t.kind == "name":
            if t.text in ("true", "false"):
                return _const(t.text == "true")
            if t.text == "nil":
                return _const(None)
            if not (self.tok.kind == "op" and self.tok.text == "("):
                raise self.error(f"unknown name {t.text}", t)
            return self.call(t)
        raise self.error(f"unexpected token {t.text!r}" if t.text else "unexpected end", t)

    def call(self, name: Token) -> Node:
        spec = self.functions.get(name.text)
        if spec is None:
            raise self.error(f"unknown func {name.text}", name)
        self.expect("(")
        args: list[Node] = []
        while not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.expression())
            if self.tok.kind == "op" and self.tok.text == ",":
                self.take()
            elif not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.error("expected ',' or ')'")
        self.take()
        arity, kind = spec
        if len(args) != arity:
            many = "many" if len(args) > arity else "few"
            raise self.error(f"too {many} arguments to call {name.text}", name)
        fname = name.text

        def run(env: Env) -> Value:
            return env[fname](*(a.run(env) for a in args))

        return Node(run, kind)


def _truth(v: Value) -> bool:
    if not isinstance(v, bool):
        raise EvalError(f"non-bool value {v!r} used as condition")
    return v


def _bool(v: Value, op: str) -> bool:
    if not isinstance(v, bool):
        raise EvalError(f"invalid operation: {op} ({type(v).__name__})")
    return v


def _number(v: Value, op: str) -> int | float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EvalError(f"invalid operation: {op} ({type(v).__name__})")
    return v


_NUMERIC = ("int", "float")


def _comparable(a: str | None, b: str | None) -> bool:
    if a is None or b is None or a == b or "nil" in (a, b):
        return True
    return a in _NUMERIC and b in _NUMERIC


def _binary(op: str, left: Node, right: Node, negate: bool, p: _Parser, t: Token) -> Node:
    lk, rk = left.kind, right.kind
    lr, rr = left.run, right.run

    def mismatch() -> CompileError:
        return p.error(f"invalid operation: {op} (mismatched types {lk} and {rk})", t)

    if op in ("or", "||"):
        if not all(k in (None, "bool") for k in (lk, rk)):
            raise mismatch()
        return Node(lambda env: _bool(lr(env), op) or _bool(rr(env), op), "bool")
    if op in ("and", "&&"):
        if not all(k in (None, "bool") for k in (lk, rk)):
            raise mismatch()
        return Node(lambda env: _bool(lr(env), op) and _bool(rr(env), op), "bool")
    if op in ("==", "!="):
        if not _comparable(lk, rk):
            raise mismatch()
        want = op == "=="
        return Node(lambda env: _equal(lr(env), rr(env)) == want, "bool")
    if op in ("<", ">", "<=", ">="):
        if not (
            _comparable(lk, rk) and all(k in (None, "int", "float", "string") for k in (lk, rk))
        ):
            raise mismatch()
        return Node(lambda env: _order(op, lr(env), rr(env)), "bool")
    if op == "in":
        if rk not in (None, "array"):
            raise mismatch()
        return Node(lambda env: _member(lr(env), rr(env)) != negate, "bool")
    if op in ("matches", "contains", "startsWith", "endsWith"):
        if not all(k in (None, "string") for k in (lk, rk)):
            raise mismatch()
        if op == "matches" and right.const and rk == "string":
            try:
                pattern = re.compile(right.run({}))
            except re.error as e:
                raise p.error(f"invalid regular expression: {e}", t) from None
            return Node(lambda env: bool(pattern.search(_string(lr(env), op))) != negate, "bool")
        return Node(lambda env: _text_op(op, lr(env), rr(env)) != negate, "bool")
    if op == "??":
        return Node(lambda env: v if (v := lr(env)) is not None else rr(env), None)
    # arithmetic
    if op == "+" and lk == "string" and rk == "string":
        return Node(lambda env: _string(lr(env), op) + _string(rr(env), op), "string")
    if not all(k in (None, "int", "float") for k in (lk, rk)):
        raise mismatch()
    kind = "float" if "float" in (lk, rk) or op == "/" else (lk if lk == rk else None)
    return Node(lambda env: _arith(op, lr(env), rr(env)), kind)


def _equal(a: Value, b: Value) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _order(op: str, a: Value, b: Value) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        pass
    else:
        a, b = _number(a, op), _number(b, op)
    if op == "<":
        return bool(a < b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    return bool(a >= b)


def _member(a: Value, b: Value) -> bool:
    if not isinstance(b, list):
        raise EvalError(f"invalid operation: in ({type(b).__name__})")
    return any(_equal(a, x) for x in b)


def _string(v: Value, op: str) -> str:
    if not isinstance(v, str):
        raise EvalError(f"invalid operation: {op} ({type(v).__name__})")
    return v


def _text_op(op: str, a: Value, b: Value) -> bool:
    s, t = _string(a, op), _string(b, op)
    if op == "matches":
        try:
            return re.search(t, s) is not None
        except re.error as e:
            raise EvalError(str(e)) from None
    if op == "contains":
        return t in s
    if op == "startsWith":
        return s.startswith(t)
    return s.endswith(t)


def _arith(op: str, a: Value, b: Value) -> Value:
    x, y = _number(a, op), _number(b, op)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:
            raise EvalError("division by zero")
        return x / y
    if isinstance(x, float) or isinstance(y, float):
        raise EvalError("invalid operation: % (float)")
    if y == 0:
        raise EvalError("integer divide by zero")
    return int(x - y * int(x / y))  # Go's % truncates toward zero


def compile_expr(text: str, functions: Mapping[str, tuple[int, str | None]]) -> Program:
    """Compile `text`; `functions` gives each callable name its (arity, result kind).

    The returned program takes an environment of those functions and returns the value.
    """
    node = _Parser(text, functions).parse()
    run = node.run

    def program(env: Env) -> Value:
        try:
            return run(env)
        except EvalError:
            raise
        except (TypeError, ValueError, ArithmeticError) as e:
            raise EvalError(str(e)) from None

    return program
