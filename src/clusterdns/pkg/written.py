"""Run the rest of the chain and act once the response is on the wire (CoreDNS's recorder).

The log and prometheus plugins record what was really written (rcode, size) this way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import dns.message

from clusterdns.errors import PluginError
from clusterdns.request import Request

AfterWrite = Callable[[Request, dns.message.Message, int], None]


async def through_chain(
    req: Request,
    nxt: Callable[[Request], Awaitable[dns.message.Message]],
    hook: AfterWrite,
    on_error: Callable[[PluginError], None] | None = None,
) -> dns.message.Message:
    """Run the rest of the chain with `hook` called once the response is written.

    On a PluginError the server still writes the error reply, so the hook runs, unless
    `on_error` is given: then it replaces the hook. After a crash the hook is dropped: in CoreDNS
    the panic unwinds past the recorder and the server, not the plugin, reports it.
    """
    req.after_write.append(hook)
    try:
        return await nxt(req)
    except PluginError as e:
        if on_error is not None:
            _unhook(req, hook)
            on_error(e)
        raise
    except Exception:
        _unhook(req, hook)
        raise


def _unhook(req: Request, hook: AfterWrite) -> None:
    with contextlib.suppress(ValueError):
        req.after_write.remove(hook)
