"""forward: proxy queries to upstream resolvers over UDP, TCP or DNS-over-TLS.

Syntax::

    forward FROM TO... {
        except IGNORED_NAMES...
        force_tcp
        prefer_udp
        expire DURATION
        max_idle_conns INTEGER
        max_fails INTEGER
        max_connect_attempts INTEGER
        tls [CERT KEY] [CA]
        tls_servername NAME
        policy random|round_robin|sequential
        health_check DURATION [no_rec] [domain FQDN]
        max_concurrent MAX
        next RCODE...
        failover RCODE...
        failfast_all_unhealthy_upstreams
    }

As CoreDNS's plugin/forward. FROM is the zone forwarded (a CIDR uses its first reverse zone);
TO is `IP[:PORT]`, `[IPv6]:PORT`, `dns://…`, `tls://IP[%NAME][:PORT]` (DoT, port 853) or a
resolv.conf-style file whose `nameserver` lines are used (a relative path is taken from the
Corefile's directory); at most 15 upstreams. Several `forward` lines may share a block: they
are tried in order, a name no line matches goes to the next plugin, and `next RCODE` hands an
answer with that rcode to the following `forward` line.

Per query: the policy orders the upstreams; an upstream that is down (more than `max_fails`
failed health checks) is skipped; when all are down one is picked at random ("spray", counted
in coredns_forward_healthcheck_broken_total) unless failfast_all_unhealthy_upstreams. A
failed exchange starts health checking of that upstream and moves on to the next; after 5s
(or `max_connect_attempts` failed attempts) the answer is SERVFAIL. An answer whose rcode is
listed in `failover` moves on to the next upstream too, until each was tried once. A
truncated UDP answer is asked again over TCP. `max_concurrent`: beyond N queries in flight
the answer is REFUSED at once (coredns_forward_max_concurrent_rejects_total).

Options CoreDNS does not have (`read_timeout`, `source_address`) and CoreDNS options not
implemented here (`doh_method`, `next_on_nodata`, `resolver`, `fallthrough`, `max_age`,
`https://` and host name upstreams) are errors, never silently ignored.
"""

from __future__ import annotations

from clusterdns.pkg.forward import Forward

PLUGIN = Forward
