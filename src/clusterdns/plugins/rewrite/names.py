"""`name` rules (CoreDNS's name.go): rewrite the question name, and the answers back.

Syntax::

    name [exact|prefix|suffix|substring|regex] FROM TO [answer auto|(name|value FROM TO)]…

Without a match type the rule is `exact`. FROM and TO are lower-cased and made absolute, except
a regex FROM (an RE2 pattern; TO may use `{0}`…`{N}`). Answers of `exact` rules are always
mapped back onto the name asked; `answer auto` does it for the other types (a suffix rule swaps
its suffixes; the others map the rewritten name, and the names below it, back); `answer name`
and `answer value` rewrite owners or record values with a regex of their own.
"""

from __future__ import annotations

import re

from clusterdns.plugins.rewrite.base import (
    EXACT,
    PREFIX,
    REGEX,
    SUBSTRING,
    SUFFIX,
    Rule,
    RuleError,
    State,
    normalize,
    valid_regex,
)
from clusterdns.plugins.rewrite.response import (
    NameResponse,
    ResponseRule,
    ValueResponse,
    regex_rewriter,
    remap_rewriter,
    substitute,
    suffix_rewriter,
)


class NameRule(Rule):
    def __init__(
        self, mode: str, kind: str, frm: str, to: str, auto: bool, static: list[ResponseRule],
        pattern: re.Pattern[str] | None = None,
    ) -> None:  # fmt: skip
        self.mode = mode
        self.kind = kind
        self.frm = frm
        self.to = to
        self.pattern = pattern
        self.auto = auto
        self.static = static

    def new_name(self, name: str) -> str | None:
        """The rewritten question name, or None if the rule does not match `name`."""
        kind = self.kind
        if kind == EXACT:
            return self.to if name == self.frm else None
        if kind == PREFIX:
            return self.to + name[len(self.frm) :] if name.startswith(self.frm) else None
        if kind == SUFFIX:
            return name[: len(name) - len(self.frm)] + self.to if name.endswith(self.frm) else None
        if kind == SUBSTRING:
            return name.replace(self.frm, self.to) if self.frm in name else None
        assert self.pattern is not None
        m = self.pattern.search(name)
        return None if m is None else substitute(m, self.to)

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        before = st.name()
        new = self.new_name(before)
        if new is None:
            return None
        st.set_name(new)
        if not self.auto:
            return self.static
        back = remap_rewriter(new, before)
        return [NameResponse(back), ValueResponse(back), *self.static]


def new_name_rule(mode: str, args: list[str]) -> NameRule:
    """newNameRule: the argument checks in CoreDNS's order, with its messages."""
    if len(args) < 2:
        raise RuleError("too few arguments for a name rule")
    if len(args) == 2:
        kind, frm, to = EXACT, normalize(args[0]), normalize(args[1])
    else:
        kind = args[0].lower()
        if kind == REGEX:
            frm, to = args[1], args[2]
        else:
            frm, to = normalize(args[1]), normalize(args[2])
    if kind in (EXACT, SUFFIX):
        frm = frm if frm.endswith(".") else frm + "."
        to = to if to.endswith(".") else to + "."
    auto, answers = False, list[ResponseRule]()
    if len(args) > 3:
        auto, answers = parse_answer_rules(kind, args[3:])
    if kind == EXACT:
        valid_regex(to, frm)  # sic: CoreDNS checks an exact rule's names as a regex
        return NameRule(mode, kind, frm, to, True, answers)
    if kind in (PREFIX, SUBSTRING):
        return NameRule(mode, kind, frm, to, auto, answers)
    if kind == SUFFIX:
        static: list[ResponseRule] = []
        if auto:  # a suffix rule's answers are mapped back by swapping its suffixes
            back = suffix_rewriter(to, frm)
            static = [NameResponse(back), ValueResponse(back)]
        return NameRule(mode, kind, frm, to, False, static + answers)
    if kind == REGEX:
        pattern = valid_regex(frm, to)
        return NameRule(mode, kind, frm, normalize(args[2]), auto, answers, pattern)
    raise RuleError(
        "name rule supports only exact, prefix, suffix, substring, and regex name matching, "
        f"received: {kind}"
    )


def parse_answer_rules(name: str, args: list[str]) -> tuple[bool, list[ResponseRule]]:
    """parseAnswerRules: `answer auto`, `answer name FROM TO`, `[answer] value FROM TO`…"""
    auto = False
    rules: list[ResponseRule] = []
    name_rules = 0
    last = ""
    if len(args) < 2:
        raise RuleError(f"invalid arguments for {name} rule")
    i = 0
    while i < len(args):
        if last == "" and args[i] != "answer":
            raise RuleError(
                f"exceeded the number of arguments for a non-answer rule argument for {name} rule"
            )
        if args[i] == "answer":
            i += 1
        if len(args) - i == 0:
            raise RuleError(f"type missing for answer rule for {name} rule")
        last = args[i]
        i += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise RuleError(f'invalid type "{last}" for answer rule for {name} rule')
        if len(args) - i < 2:
            raise RuleError(f"{last} answer rule for {name} rule: 2 arguments required")
        frm, to = args[i], args[i + 1]
        try:
            pattern = valid_regex(frm, to)
        except RuleError as e:
            raise RuleError(f"{last} answer rule for {name} rule: {e}") from None
        rw = regex_rewriter(pattern, normalize(to))
        if last == "name":
            rules.append(NameResponse(rw))
            name_rules += 1
        else:
            rules.append(ValueResponse(rw))
        i += 2
    if auto and name_rules > 0:
        raise RuleError("auto name answer rule cannot be combined with explicit name anwer rules")
    return auto, rules
