"""The template plugin's counters, named and labelled as CoreDNS's plugin/template/metrics.go."""

from __future__ import annotations

from prometheus_client import Counter

MATCHES = Counter(
    "matches",
    "Counter of template regex matches.",
    ["server", "zone", "view", "class", "type"],
    namespace="coredns",
    subsystem="template",
)
TEMPLATE_FAILURES = Counter(
    "template_failures",
    "Counter of go template failures.",
    ["server", "zone", "view", "class", "type", "section", "template"],
    namespace="coredns",
    subsystem="template",
)
RR_FAILURES = Counter(
    "rr_failures",
    "Counter of mis-templated RRs.",
    ["server", "zone", "view", "class", "type", "section", "template"],
    namespace="coredns",
    subsystem="template",
)
#: There are no views in ClusterDNS: the label CoreDNS has is always empty.
VIEW = ""
