"""errors: log the errors plugins return, optionally consolidated per period.

Syntax::

    errors [stdout] {
        stacktrace
        consolidate DURATION REGEXP [LEVEL]
    }

Each PluginError that reaches this plugin is logged as
`[ERROR] plugin/errors: RCODE QNAME QTYPE: ERROR` (RCODE as a number, as CoreDNS prints it) and
passed on, so the server still answers with that rcode. With `consolidate`, errors whose text
matches REGEXP (the first matching pattern wins) are only counted; DURATION after the first one,
`N errors like 'REGEXP' occurred in last DURATION` is logged at LEVEL (`warning`, `error` — the
default —, `info` or `debug`). Counts still pending when the configuration stops are flushed then.
`stacktrace` is accepted for compatibility: crashes are always logged with their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.durations import format_go_duration, parse_go_duration
from clusterdns.errors import PluginError
from clusterdns.plugin import (
    Plugin,
    RelayQuestion,
    Replay,
    ReplayableHook,
    SetupContext,
    expect_args,
    unknown_option,
)
from clusterdns.request import Request

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

LEVELS = {
    "warning": logging.WARNING,
    "warn": logging.WARNING,  # the spelling CoreDNS's README used for a while
    "error": logging.ERROR,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


@dataclass(slots=True, eq=False)
class Pattern:
    """One `consolidate` line and the errors counted for it since its timer started."""

    period: float
    regex: re.Pattern[str]
    level: int = logging.ERROR
    count: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def flush(self) -> None:
        n, self.count, self.timer = self.count, 0, None
        if n > 0:
            log.log(
                self.level,
                "plugin/errors: %d errors like '%s' occurred in last %s",
                n,
                self.regex.pattern,
                format_go_duration(self.period),
            )


def _consolidate(opt: Directive) -> Pattern:
    args = expect_args(opt, 2, 3)
    try:
        period = parse_go_duration(args[0])
    except ValueError as e:
        raise opt.error(f"errors: invalid duration '{args[0]}': {e}") from None
    try:
        regex = re.compile(args[1])
    except re.error as e:
        raise opt.error(f"errors: invalid regexp '{args[1]}': {e}") from None
    level = logging.ERROR
    if len(args) == 3:
        if args[2] not in LEVELS:
            raise opt.error(f"errors: unknown log level argument in consolidate: {args[2]}")
        level = LEVELS[args[2]]
    return Pattern(period, regex, level)


class Errors(Plugin):
    name = "errors"
    replay = Replay.ALWAYS  # logs only plugin errors, which veto

    def __init__(self, patterns: list[Pattern], stacktrace: bool = False) -> None:
        self.patterns = patterns
        self.stacktrace = stacktrace
        self._running = False

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Errors:
        d = directives[0]
        args = expect_args(d, 0, 1)
        if args and args[0] != "stdout":
            raise d.error(f"errors: invalid log file: {args[0]}")
        patterns: list[Pattern] = []
        stacktrace = False
        for opt in d.children:
            if opt.name == "consolidate":
                patterns.append(_consolidate(opt))
            elif opt.name == "stacktrace":
                expect_args(opt, 0, 0)
                stacktrace = True
            else:
                raise unknown_option("errors", opt)
        return cls(patterns, stacktrace)

    async def start(self, rt: Runtime) -> None:
        self._running = True

    async def stop(self) -> None:
        """Flush what is pending; from now on errors are logged one by one (as CoreDNS)."""
        self._running = False
        for p in self.patterns:
            if p.timer is not None:
                p.timer.cancel()
                p.flush()

    def _counted(self, text: str) -> bool:
        """True if a consolidate pattern took the error (so it is not logged on its own)."""
        for p in self.patterns:
            if p.regex.search(text):
                if not self._running:
                    return False
                p.count += 1
                if p.count == 1:
                    p.timer = asyncio.get_running_loop().call_later(p.period, p.flush)
                return True
        return False

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...]:
        return ()  # it only logs plugin errors; the relay hands errors to the chain

    async def serve(self, req: Request) -> dns.message.Message:
        try:
            return await self.next(req)
        except PluginError as e:
            if e.quiet:
                raise
            text = str(e)
            if not self._counted(text):
                log.error("plugin/errors: %d %s %s: %s", e.rcode, req.qname, req.type_text, text)
            raise


PLUGIN = Errors
