"""Server block keys and zone arguments → normalized zones (CoreDNS's address rules).

Key syntax (CoreDNS core/dnsserver/register.go + plugin.SplitHostPort)::

    [dns://]ZONE[:PORT]      example.org   example.org:1053   dns://example.org
    .  .:53  dns://.:53      the root zone
    CIDR[:PORT]              10.3.0.0/24   10.3.0.0/22:53   fd00::/108

* The port is the text after the *last* colon when it is all digits; otherwise
  the colon belongs to the host (IPv6 CIDRs). A missing port means `default_port`.
* A CIDR stands for its reverse zones, split on octet (IPv4) / nibble (IPv6)
  boundaries like CoreDNS's plugin/pkg/cidr: ``10.3.0.0/22`` → ``0.3.10.in-addr.arpa.``
  … ``3.3.10.in-addr.arpa.``. Host bits are ignored (``10.3.0.1/24`` == ``10.3.0.0/24``).
* Zones are lower-cased and fully qualified.
* Stricter than CoreDNS, which would silently accept these as odd zone names: a
  non-numeric port, a malformed CIDR, a host containing ':' and an unknown scheme are
  errors. ``:53`` (no zone) is an error, as in CoreDNS: write ``.:53``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name

from clusterdns.corefile.ast import Token, unset_note
from clusterdns.errors import ConfigError

__all__ = ["ZoneAddr", "normalize_zone", "parse_key", "reverse_zones", "zones_from_args"]

_SUPPORTED = {"dns"}
_KNOWN_TRANSPORTS = {"dns", "tls", "grpc", "https", "https3", "quic", "unix"}
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ZoneAddr:
    """One zone a server block serves, on one port/transport.

    `key` (the key as written) is excluded from equality so duplicate zones in
    different blocks compare equal.
    """

    zone: str
    port: int
    transport: str = "dns"
    key: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.transport}://{self.zone}:{self.port}"


def normalize_zone(text: str) -> str:
    """Lower-case and fully qualify a bare zone name (no port, scheme or CIDR)."""
    zone = text.lower()
    return zone if zone.endswith(".") else zone + "."


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones covering `cidr`, split on octet/nibble boundaries.

    Raises ValueError if `cidr` is not an IPv4/IPv6 network in ADDRESS/BITS form.
    """
    if "/" not in cidr:
        raise ValueError(f"not a CIDR: {cidr}")
    if cidr.startswith(":") or (cidr.startswith("0") and ":" in cidr):
        raise ValueError(f"{cidr!r} starts with ':' or '0' and has ':'")  # CoreDNS refuses it
    net = ipaddress.ip_network(cidr, strict=False)  # ValueError if malformed
    step = 8 if net.version == 4 else 4  # bits per reverse label
    prefix = -(-net.prefixlen // step) * step  # round up to a label boundary
    zones = []
    for sub in net.subnets(new_prefix=prefix):
        labels = sub.network_address.reverse_pointer.split(".")
        drop = (net.max_prefixlen - prefix) // step
        zones.append(".".join(labels[drop:]) + ".")
    return zones


def _split_transport(text: str) -> tuple[str, str]:
    scheme, sep, rest = text.partition("://")
    return (scheme.lower(), rest) if sep else ("dns", text)


def _split_port(text: str) -> tuple[str, str | None]:
    """Split HOST[:PORT]; the port (if any) is returned as text, unvalidated."""
    colon = text.rfind(":")
    if colon == -1:
        return text, None
    host, tail = text[:colon], text[colon + 1 :]
    if tail == "":
        raise ValueError(f"expecting data after last colon: {text!r}")
    if _DIGITS.fullmatch(tail):
        return host, tail
    if "/" in text:  # an IPv6 CIDR without port: its colons are not a port separator
        return text, None
    raise ValueError(f"invalid port {tail!r} in {text!r}")


def _host_zones(host: str) -> list[str]:
    """Normalized zones for a host part: a CIDR's reverse zones or the zone name."""
    if "/" in host:
        try:
            return reverse_zones(host)
        except ValueError as e:
            raise ValueError(f"invalid CIDR: {e}") from None
    if host == "":
        raise ValueError("no zone before the port (write '.:PORT' for the root zone)")
    if ":" in host:
        raise ValueError(f"zone is not a valid domain name: {host!r}")
    try:
        dns.name.from_text(host)  # label and name length limits
    except dns.exception.DNSException as e:
        raise ValueError(f"zone is not a valid domain name: {host!r} ({e})") from None
    return [normalize_zone(host)]


def parse_key(token: Token, default_port: int) -> list[ZoneAddr]:
    """The zone addresses a server block key stands for (several for a CIDR)."""

    def fail(message: str) -> ConfigError:
        return ConfigError(
            f"invalid server block key {token.text!r}: {message}{unset_note([token])}",
            token.file,
            token.line,
        )

    transport, rest = _split_transport(token.text.strip())
    if transport not in _SUPPORTED:
        if transport in _KNOWN_TRANSPORTS:
            raise ConfigError(
                f"transport {transport}:// is not supported yet (key {token.text!r})",
                token.file,
                token.line,
            )
        raise fail(f"unknown transport {transport}://")
    try:
        host, port_text = _split_port(rest)
        zones = _host_zones(host)
    except ValueError as e:
        raise fail(str(e)) from None
    port = default_port if port_text is None else int(port_text)
    if not 0 <= port <= 65535:
        raise fail(f"port {port} out of range 0-65535")
    return [ZoneAddr(zone, port, transport, token.text) for zone in zones]


def zones_from_args(args: Sequence[Token], *, default: Sequence[str] | None = None) -> list[str]:
    """Normalized zones from plugin arguments (names or CIDRs; scheme and port ignored).

    Mirrors CoreDNS's plugin.OriginsFromArgsOrServerBlock: with no `args`, the
    (already normalized) `default` zones - usually the server block's - are returned.
    Unlike CoreDNS, which silently drops an argument it can't parse, that is an error.
    """
    if not args:
        return [normalize_zone(z) for z in default or ()]
    zones: list[str] = []
    for tok in args:
        _, rest = _split_transport(tok.text.strip())
        try:
            host, _ = _split_port(rest)
            zones.extend(_host_zones(host))
        except ValueError as e:
            raise ConfigError(
                f"invalid zone {tok.text!r}: {e}{unset_note([tok])}", tok.file, tok.line
            ) from None
    return zones
