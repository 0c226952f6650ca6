"""What every plugin provides: setup from its Corefile directive, a handler, and hooks.

A handler is `async serve(req) -> Message`: it answers, or calls `self.next(req)` (the next
plugin in registry order), or raises PluginError, mirroring CoreDNS's `(rcode, err)` return.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import dns.message

from clusterdns.corefile.ast import Directive, unset_note
from clusterdns.errors import ConfigError, PluginError
from clusterdns.request import Request

if TYPE_CHECKING:
    from clusterdns.corefile.keys import ZoneAddr
    from clusterdns.runtime import Runtime

Handler = Callable[[Request], Awaitable[dns.message.Message]]


@dataclass(slots=True)
class SetupContext:
    """What a plugin's setup may know about its server block (no sockets, no network)."""

    file: str
    keys: list[ZoneAddr]
    default_port: int = 53
    warnings: list[str] = field(default_factory=list)
    # Block-wide settings written by configuration-only plugins (bind, …).
    bind_hosts: list[str] = field(default_factory=list)
    bind_except: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def zones(self) -> list[str]:
        """The server block's zones, deduplicated, in key order."""
        seen: list[str] = []
        for k in self.keys:
            if k.zone not in seen:
                seen.append(k.zone)
        return seen

    def warn(self, d: Directive, message: str) -> None:
        """A warning logged at start, naming the line (and the unset environment variables its
        words came from, as errors do)."""
        note = unset_note([t for t in d.args if t.line == d.line])
        self.warnings.append(f"{d.file}:{d.line} - {message}{note}")


class Replay(enum.Enum):
    """How the fast path (clusterdns.server.fastpath) treats answers a plugin takes part in.

    The fast path replays a kept answer's bytes for later identical queries without running
    the chain, so a plugin must say whether that is still what it would have done.
    """

    #: Entering the plugin vetoes keeping the answer (the default: safe for any plugin).
    NEVER = "never"
    #: The answer depends only on the query, the config and data the plugin `depend`s on
    #: (fastpath.new_slot/bump/depend), and per-query side effects are replayable (metrics
    #: `count`ed through the recorder, clusterdns.server.fastpath.recorder()).
    ALWAYS = "always"
    #: `Plugin.replayable(req)` decides per request (e.g. only for names a rule matches).
    WHEN = "when"


class ReplayableHook(Protocol):
    """An after-write hook (Request.after_write) whose effect the fast path can replay.

    Its effect must be exactly `clusterdns.metrics.report(req, replay_zone, rcode, plugin,
    size, start)` with `plugin` the answering plugin when `replay_plugin`, else "". Any other
    hook on a request keeps its answer out of the fast path.
    """

    replay_zone: str
    replay_plugin: bool

    def __call__(self, req: Request, resp: dns.message.Message, size: int) -> None: ...


class RelayQuestion(NamedTuple):
    """What the relay (clusterdns.server.relaypath) knows of a UDP query it may relay: the
    question and the client's EDNS0 facts, read from the bytes (no options, version 0). A
    named tuple: one is made per query."""

    name: str  # lower-cased text with the final dot, as Request.qname
    qtype: int
    qclass: int
    edns: bool
    do: bool
    payload: int  # the client's UDP size (512 without EDNS0)


#: A reply's record types per section (answer, authority, additional without the OPT).
RecordTypes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
#: fastwire.walk's records: (section, start, TTL offset, end, type).
WireRecords = list[tuple[int, int, int, int, int]]


class RelayJob(Protocol):
    """One relayed query, as the server hands it to a RelayTarget."""

    #: The client's query (its ID is the client's) and the end of its question name.
    data: bytes
    nend: int

    def reply(self, wire: bytes, recs: WireRecords, rcode: int) -> bool:
        """The target's answer, exactly the upstream's bytes it would have returned (any ID).
        True: relayed. False: nothing was written; the target goes on as its plugin would
        (then usually hands off)."""

    def handoff(self, primed: Any) -> None:
        """Let the chain answer; Request.relayed carries `primed` to the target's plugin,
        which continues from there (what it already sent and got) instead of starting over."""


class RelayTarget(Protocol):
    """A terminal plugin's offer to answer a question by relaying bytes (forward)."""

    def relay(self, job: RelayJob) -> bool:
        """Take the job (and later call job.reply or job.handoff exactly once), or False if it
        cannot: then nothing was done and the chain serves the query from the start."""


class Plugin:
    """Base class. Subclasses set `name`, implement `setup`, and usually `serve`."""

    name: ClassVar[str] = ""
    #: False for plugins that only configure the server (bind) and sit outside the chain.
    handler: ClassVar[bool] = True
    #: CoreDNS rejects most plugins given twice in one server block.
    once: ClassVar[bool] = True
    #: See Replay. A plugin that declares nothing is never replayed.
    replay: ClassVar[Replay] = Replay.NEVER
    #: True if the plugin answers classes other than IN (CoreDNS's EnableChaos: chaos,
    #: forward, proxy). Without one on a listener, non-IN queries are REFUSED by the server.
    other_classes: ClassVar[bool] = False
    #: True if `start` only runs a side service no answer needs (an HTTP endpoint, a file
    #: watch, a probe): `clusterdns query`, which answers in-process, does not start it.
    side_service: ClassVar[bool] = False

    next: Handler

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Plugin:
        """Parse this plugin's lines of one server block into a configured instance."""
        raise NotImplementedError

    async def serve(self, req: Request) -> dns.message.Message:
        return await self.next(req)

    def replayable(self, req: Request) -> bool:
        """For `replay = Replay.WHEN`: may the answer to `req` be kept and replayed?"""
        return self.replay is Replay.ALWAYS

    # ---- the relay (clusterdns.server.relaypath): bytes through, no chain ------------------

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...] | None:
        """Would this plugin hand a query with question `q` to the next plugin untouched, with
        no effect but these after-write hooks (and return what it gets, see relay_keeps)? None
        (the default): no, or not sure; then the chain serves the query."""
        return None

    def relay_keeps(self, q: RelayQuestion, rcode: int, types: RecordTypes) -> bool:
        """For a plugin that passed `q`: is a reply with this rcode and these record types
        returned exactly as the next plugin gave it? Override if the plugin changes replies."""
        return True

    def relay_target(self, q: RelayQuestion) -> RelayTarget | None:
        """A terminal plugin that would answer `q` by sending it elsewhere offers a target."""
        return None

    def ready(self) -> bool | None:
        """None: does not take part in readiness; else whether it is ready to serve."""
        return None

    async def start(self, rt: Runtime) -> None:
        """Acquire what the plugin needs at run time (files, sockets, tasks)."""

    def running(self, rt: Runtime) -> None:
        """Called once the configuration this plugin belongs to serves: at start after the
        banner's zone lines, on reload after the swap (the reload plugin's SHA512 line)."""

    async def stop(self) -> None:
        """Release what `start` acquired; called on reload (old config) and on exit."""

    async def shutdown(self) -> None:
        """Called once before the process exits (lameduck lives here)."""


def terminal(after: str) -> Handler:
    """The handler behind the last plugin: CoreDNS's NextOrFailure error."""

    async def no_next(req: Request) -> dns.message.Message:
        raise PluginError(after, "no next plugin found")

    return no_next


# ---- small parsing helpers shared by plugin setups ---------------------------------------


def expect_args(d: Directive, low: int, high: int | None = None) -> list[str]:
    """The directive's argument texts, or an error when their count is outside [low, high]."""
    n = len(d.args)
    if n < low or (high is not None and n > high):
        raise d.arg_error()
    return d.values


def no_block(d: Directive) -> None:
    if d.children:
        raise d.error(f"{d.name}: unexpected block")


def unknown_option(plugin: str, opt: Directive) -> ConfigError:
    return opt.error(f"{plugin}: unknown property '{opt.name}'")


def parse_duration(d: Directive, text: str) -> float:
    """Go's time.ParseDuration subset used in Corefiles: 300ms, 5s, 1m, 1h30m, 2h."""
    from clusterdns.durations import parse_go_duration

    try:
        return parse_go_duration(text)
    except ValueError as e:
        raise d.error(f"{d.name}: invalid duration '{text}': {e}") from None


def parse_int(d: Directive, text: str, low: int | None = None, high: int | None = None) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise d.error(f"{d.name}: '{text}' is not a number") from None
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise d.error(f"{d.name}: {v} is out of range, must be {bounds}")
    return v
