"""`clusterdns query --trace`: record each plugin a query passes and what it did there.

Tracing costs the server nothing: only `query --trace` builds its chains with `Tracer.wrap`
(config.build_chain's `wrap`), and plugins' `req.note(...)` calls are a single attribute test
while `req.tracer` is None, which it always is when serving.

Each wrapper records a `Step`: the plugin, the question it saw, whether it called its next
plugin (the stack of active steps says so: the step on top is the caller), the notes the plugin
gave with `req.note` while it was the innermost active plugin, and how it ended — a response
or a PluginError. A plugin that called next "passed on" (or "fell through" when one of its
notes starts with "fallthrough"); one that returned without calling next "answered".
Nested resolutions (kubernetes' ExternalName upstream lookups, autopath's search walk) show as
deeper steps under the plugin that started them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.rcode

from clusterdns.errors import PluginError
from clusterdns.plugin import Handler, Plugin
from clusterdns.request import Request

NO_NEXT = "no next plugin found"


@dataclass(slots=True, eq=False)
class Step:
    plugin: Plugin
    qname: str
    qtype: str
    depth: int
    notes: list[str] = field(default_factory=list)
    called_next: bool = False
    response: dns.message.Message | None = None
    error: BaseException | None = None
    #: The error was raised by this plugin itself, not passed up from a later one.
    own_error: bool = False

    @property
    def name(self) -> str:
        return self.plugin.name

    def verdict(self) -> str:
        """One line: what the plugin did with the query, and why when it said so."""
        fell = any(n.startswith("fallthrough") for n in self.notes)
        err = self.error
        if err is not None and self.own_error:
            if isinstance(err, PluginError) and err.message == NO_NEXT and not self.called_next:
                what = "passed on, but no plugin follows: SERVFAIL (no next plugin found)"
            elif isinstance(err, PluginError):
                what = f"failed: {dns.rcode.Rcode.make(err.rcode).name} ({err})"
            else:
                what = f"crashed: {err!r} (the server answers SERVFAIL)"
        elif self.called_next:
            what = "fell through" if fell else "passed on"
            if err is not None:
                code = err.rcode if isinstance(err, PluginError) else dns.rcode.SERVFAIL
                what += f", got back an error: {dns.rcode.Rcode.make(code).name}"
        elif self.response is not None:
            what = "answered " + summary(self.response)
        else:  # pragma: no cover - a step always ends with a response or an error
            what = "did not finish"
        notes = [n.removeprefix("fallthrough: ") for n in self.notes if n != "fallthrough"]
        return f"{what}: {'; '.join(notes)}" if notes else what


def summary(m: dns.message.Message) -> str:
    """`NOERROR, 2 answers, 1 authority` and so on, the way a person would say it."""
    parts = [dns.rcode.to_text(m.rcode())]
    for label, section in (
        ("answer", m.answer),
        ("authority", m.authority),
        ("additional", m.additional),
    ):
        n = sum(len(rrset) for rrset in section)
        if n:
            parts.append(f"{n} {label}" + ("s" if n > 1 and label == "answer" else ""))
    if not m.answer and m.rcode() == dns.rcode.NOERROR:
        parts.append("no data")
    return ", ".join(parts)


class Tracer:
    """Collects the steps of one or more queries; `wrap` is config.build_chain's `wrap`."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._stack: list[Step] = []

    def note(self, text: str) -> None:
        if self._stack:
            self._stack[-1].notes.append(text)

    def clear(self) -> None:
        self.steps.clear()
        self._stack.clear()

    def wrap(self, plugin: Plugin) -> Handler:
        serve = plugin.serve
        name = plugin.name

        async def handle(req: Request) -> dns.message.Message:
            if req.tracer is None:
                req.tracer = self.note
            stack = self._stack
            depth = 0
            if stack:
                top = stack[-1]
                if top.plugin.next is handle:  # the plugin on top called its next
                    top.called_next = True
                    depth = top.depth
                else:  # a plugin resolves another question through a chain
                    depth = top.depth + 1
            step = Step(plugin, req.qname, req.type_text, depth)
            self.steps.append(step)
            stack.append(step)
            try:
                resp = await serve(req)
            except BaseException as e:
                step.error = e
                step.own_error = not any(s.error is e for s in self.steps if s is not step)
                raise
            finally:
                stack.pop()
            step.response = resp
            if not req.answered_by:  # as config._wrap does
                req.answered_by = name
            return resp

        return handle

    def render(self) -> list[str]:
        """The steps as dig-style comment lines; a question other than the one before it is
        announced with `-> NAME TYPE`, nested resolutions are indented."""
        width = max((len(s.name) for s in self.steps), default=0)
        out: list[str] = []
        last: tuple[str, str] | None = None
        for s in self.steps:
            pad = "  " * s.depth
            q = (s.qname, s.qtype)
            if last is not None and q != last:
                out.append(f";;   {pad}-> {s.qname} {s.qtype}")
            last = q
            out.append(f";;   {pad}{s.name:<{width}}  {s.verdict()}")
        return out
