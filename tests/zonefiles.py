"""Zone files shared by the file, auto, transfer and secondary tests."""

from __future__ import annotations

#: example.org: apex records, CNAME chains in and out of the zone, wildcards (one under an
#: empty non-terminal), a delegation with in- and out-of-bailiwick name servers, DNAMEs, SRV.
EXAMPLE_ORG = """\
$ORIGIN example.org.
$TTL 3600
@        IN SOA  ns1.example.org. Hostmaster.example.org. 2026120101 7200 3600 1209600 300
@        IN NS   ns1.example.org.
@        IN NS   ns2.other.net.
@        IN MX   10 mail.example.org.
ns1      IN A    192.0.2.53
www      IN A    192.0.2.10
www      IN AAAA 2001:db8::10
mail     IN A    192.0.2.25
alias    IN CNAME www
alias2   IN CNAME alias
ext      IN CNAME www.example.net.
dangling IN CNAME nothere
*.wild   IN A    192.0.2.99
*.wild   IN TXT  "wild"
*.cw     IN CNAME www
a.b.c    IN A    192.0.2.1
*.ent    IN A    192.0.2.98
x.y.ent  IN A    192.0.2.97
sub      IN NS   ns.sub.example.org.
sub      IN NS   ns.elsewhere.net.
ns.sub   IN A    192.0.2.200
ns.sub   IN AAAA 2001:db8::200
tosub    IN CNAME host.sub
dn       IN DNAME example.net.
dn2      IN DNAME www.example.org.
_sip._tcp IN SRV 0 5 5060 mail.example.org.
txt      IN TXT  "hello" "world"
Upper    IN A    192.0.2.77
"""

EXAMPLE_NET = """\
$ORIGIN example.net.
@   300 IN SOA ns.example.net. h.example.net. 1 7200 3600 1209600 300
@   300 IN NS  ns.example.net.
www 300 IN A   198.51.100.1
"""


def soa_serial(text: str, serial: int) -> str:
    """`text` with its SOA serial replaced (the first number after the SOA's two names)."""
    lines = []
    for line in text.splitlines():
        if " SOA " in line:
            f = line.split()
            i = f.index("SOA") + 3
            f[i] = str(serial)
            line = " ".join(f)
        lines.append(line)
    return "\n".join(lines) + "\n"
