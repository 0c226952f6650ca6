"""Error types shared by the Corefile parser, plugin setup and the serving path."""

from __future__ import annotations


class ConfigError(Exception):
    """A Corefile problem; always names the file and line so the user can find it."""

    def __init__(self, message: str, file: str = "", line: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line} - {self.message}"
        if self.file:
            return f"{self.file} - {self.message}"
        return self.message


class ConfigErrors(Exception):
    """Several ConfigErrors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class PluginError(Exception):
    """A plugin could not answer; the server replies with `rcode` (SERVFAIL by default).

    Mirrors CoreDNS's `(rcode, err)` return: the errors plugin logs these, the log and
    prometheus plugins record the rcode. `quiet` is CoreDNS's `(rcode, nil)`: the server writes
    the rcode but there is no error to log (and no plugin wrote a reply, so nothing caches it).
    """

    def __init__(self, plugin: str, message: str, rcode: int = 2, quiet: bool = False) -> None:
        self.plugin = plugin
        self.rcode = rcode
        self.message = message
        self.quiet = quiet
        super().__init__(f"plugin/{plugin}: {message}")
