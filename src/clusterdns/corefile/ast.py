"""The parsed Corefile: server blocks made of directives, each remembering where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from clusterdns.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the Corefile (quotes removed, environment substituted)."""

    text: str
    file: str
    line: int
    unset: tuple[str, ...] = ()  # environment variables it named that are not set


def unset_note(tokens: list[Token]) -> str:
    """` (the environment variable X is not set)` when tokens came from unset variables: an
    error about an empty value then says where the emptiness came from."""
    names: list[str] = []
    for t in tokens:
        names.extend(n for n in t.unset if n not in names)
    if not names:
        return ""
    if len(names) == 1:
        return f" (the environment variable {names[0]} is not set)"
    return f" (the environment variables {', '.join(names[:-1])} and {names[-1]} are not set)"


@dataclass(slots=True)
class Directive:
    """A line `name arg… [{ child lines }]`; children are themselves Directives.

    Inside a plugin's block, each line is a child whose `name` is the option.
    """

    name: str
    args: list[Token]
    file: str
    line: int
    children: list[Directive] = field(default_factory=list)
    has_block: bool = False

    @property
    def values(self) -> list[str]:
        return [t.text for t in self.args]

    def error(self, message: str, line: int | None = None) -> ConfigError:
        """An error that points at this directive (or at `line` inside it); it names the
        unset environment variables the words of that line came from."""
        at = line if line is not None else self.line
        note = unset_note([t for t in self.args if t.line == at])
        return ConfigError(message + note, self.file, at)

    def arg_error(self) -> ConfigError:
        return self.error(f"wrong argument count or unexpected line ending after '{self.name}'")


@dataclass(slots=True)
class ServerBlock:
    """`key… { directive… }` with keys as written (zones, ports, CIDRs)."""

    keys: list[Token]
    directives: list[Directive]
    file: str
    line: int
