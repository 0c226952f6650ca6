"""root: the directory relative file names of a server block are taken from.

Syntax::

    root PATH

As CoreDNS's plugin/root: plugins that read files (hosts, forward's TLS files …) resolve a
relative FILE against PATH (itself relative to the working directory) instead of the
Corefile's directory. A PATH that does not exist is only a warning ("Root path does not
exist"); one that cannot be examined (no permission) is an error. Configuration only: the
plugin is not part of the query chain.
"""

from __future__ import annotations

import logging
import os

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, SetupContext, expect_args, no_block

log = logging.getLogger("clusterdns.plugins.root")


class Root(Plugin):
    name = "root"
    handler = False

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Root:
        d = directives[0]
        no_block(d)
        (path,) = expect_args(d, 1, 1)
        try:
            os.stat(path)
        except FileNotFoundError:
            ctx.warn(d, f"plugin/root: Root path does not exist: {path}")
        except OSError as e:
            raise d.error(
                f"plugin/root: unable to access root path '{path}': {e.strerror}"
            ) from None
        ctx.extra["root"] = path
        return cls(path)


PLUGIN = Root
