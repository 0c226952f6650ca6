"""timeouts: the TCP read, write and idle timeouts and the queries allowed per connection.

Syntax::

    timeouts {
        read DURATION
        write DURATION
        idle DURATION
        maxtcpqueries MAXIMUM
    }

As CoreDNS's plugin/timeouts. DURATION is a Go duration or a number of seconds, between 1s and
24h. Defaults (CoreDNS's): read 3s (the first query of a connection must arrive within it),
idle 10s (between queries), write 5s (an answer the client does not take in time closes the
connection), maxtcpqueries -1 (no limit; else the connection closes after that many queries).
At least one option must be given. The settings go to the TCP listeners of the block's
addresses (clusterdns.server.listener.TcpTimeouts); with several blocks on one address, the
last block that sets a value wins, as CoreDNS merges them. UDP is not affected. Configuration
only: the plugin is not part of the query chain.
"""

from __future__ import annotations

from clusterdns.corefile.ast import Directive
from clusterdns.durations import parse_go_duration
from clusterdns.plugin import Plugin, SetupContext, expect_args
from clusterdns.server.listener import TcpTimeouts

MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 24 * 3600.0


def _duration(opt: Directive, text: str) -> float:
    """CoreDNS's durations.NewDurationFromArg: a bare integer is seconds."""
    arg = text + "s" if text.lstrip("+-").isdigit() else text
    try:
        value = parse_go_duration(arg)
    except ValueError:
        raise opt.error(f"timeouts: failed to parse duration '{arg}'") from None
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        raise opt.error(
            f"timeouts: timeout provided '{text}' needs to be between 1 second and 24 hours"
        )
    return value


class Timeouts(Plugin):
    name = "timeouts"
    handler = False

    def __init__(self, settings: TcpTimeouts) -> None:
        self.tcp_timeouts = settings  # read by the listeners of its addresses

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Timeouts:
        d = directives[0]
        expect_args(d, 0, 0)
        values: dict[str, float | int] = {}
        for opt in d.children:
            (arg,) = expect_args(opt, 1, 1)
            if opt.name == "maxtcpqueries":
                try:
                    n = int(arg, 10)
                except ValueError:
                    raise opt.error(
                        f"timeouts: invalid value for maxtcpqueries '{arg}': not a number"
                    ) from None
                if n == 0 or n < -1:
                    raise opt.error(
                        f"timeouts: maxtcpqueries provided '{n}' needs to be -1 (unlimited) "
                        "or a positive integer"
                    )
                values["max_queries"] = n
                continue
            if opt.name not in ("read", "write", "idle"):
                raise opt.error(f"timeouts: unknown option: '{opt.name}'")
            values[opt.name] = _duration(opt, arg)
        if not values:
            raise d.error("timeouts: timeouts block with no timeouts specified")
        return cls(
            TcpTimeouts(
                read=values.get("read"),
                write=values.get("write"),
                idle=values.get("idle"),
                max_queries=int(values["max_queries"]) if "max_queries" in values else None,
            )
        )


PLUGIN = Timeouts
