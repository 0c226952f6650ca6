"""tsig: signed queries verified and answered signed; BADKEY/BADSIG/BADTIME; `require`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import dns.message
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest

from tests import coredns_ref
from tests.harness import HOST, Server, rrs, serve, setup_error

SECRET = "NoTCJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk="
COREFILE = f"""
.:@PORT@ {{
    bind 127.0.0.1
    tsig {{
        secret key.example. {SECRET}
        secrets keys.conf
        require A
    }}
    whoami
}}
example.org:@PORT@ {{
    bind 127.0.0.1
    tsig {{
        secret Key.Example {SECRET}
    }}
    hosts {{
        10.0.0.1 www.example.org
    }}
}}
other.test:@PORT@ {{
    bind 127.0.0.1
    tsig example.org {{
        secret key.example. {SECRET}
        require all
    }}
    hosts {{
        10.0.0.2 www.other.test
    }}
}}
"""
KEYS = """\
key "file.example." {
    algorithm hmac-sha256;
    secret "c2VjcmV0LWZyb20tYS1maWxl";
};
"""

GOOD = dns.tsigkeyring.from_text({"key.example.": SECRET})
FILE_KEY = dns.tsigkeyring.from_text({"file.example.": "c2VjcmV0LWZyb20tYS1maWxl"})
WRONG = dns.tsigkeyring.from_text({"key.example.": "AAAAJU+DMqFWywaPyxSijrDEA/eC3nK0xi3AMEZuPVk="})
UNKNOWN = dns.tsigkeyring.from_text({"Other.Example.": SECRET})


def prepare(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "keys.conf").write_text(KEYS)
    return tmp


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, prepare(tmp_path_factory.mktemp("tsig"))) as s:
        yield s


def ask(
    port: int,
    name: str,
    rdtype: str,
    keyring: Any = None,
    keyname: str | None = None,
    algorithm: Any = dns.tsig.default_algorithm,
    skew: float = 0.0,
    edns: bool = False,
) -> tuple[object, ...]:
    """Send a (signed) query; (rcode, flags, records, TSIG error, verified, MAC empty)."""
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else None)
    if keyring is not None:
        q.use_tsig(keyring, keyname=keyname, algorithm=algorithm)
    now = time.time()
    with mock.patch("time.time", return_value=now + skew):
        wire = q.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, (HOST, port))
        data = s.recv(65535)
    r = dns.message.from_wire(data, keyring=False)
    records = [x for x in rrs(r.answer) + rrs(r.additional) if " SRV " not in x]
    if r.tsig is None:
        return (r.rcode(), r.flags, records, None, False, None)
    verified = True
    try:
        dns.message.from_wire(data, keyring=keyring, request_mac=q.mac)
    except Exception:
        verified = False
    rd = r.tsig[0]
    return (r.rcode(), r.flags, records, rd.error, verified, rd.mac == b"")


QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("x.test.", "A", {}),
    ("x.test.", "AAAA", {}),
    ("x.test.", "A", {"keyring": GOOD, "keyname": "key.example."}),
    ("x.test.", "A", {"keyring": GOOD, "keyname": "key.example.", "edns": True}),
    ("x.test.", "A", {"keyring": FILE_KEY, "keyname": "file.example."}),
    ("x.test.", "A", {"keyring": WRONG, "keyname": "key.example."}),
    ("x.test.", "A", {"keyring": UNKNOWN, "keyname": "Other.Example."}),
    ("x.test.", "A", {"keyring": GOOD, "keyname": "key.example.", "algorithm": dns.tsig.HMAC_SHA512}),
    ("x.test.", "A", {"keyring": GOOD, "keyname": "key.example.", "algorithm": dns.tsig.HMAC_MD5}),
    ("x.test.", "A", {"keyring": GOOD, "keyname": "key.example.", "skew": -1000}),
    ("www.example.org.", "A", {"keyring": GOOD, "keyname": "key.example."}),
    ("www.example.org.", "MX", {"keyring": GOOD, "keyname": "key.example."}),
    ("nx.example.org.", "A", {"keyring": GOOD, "keyname": "key.example."}),
    ("www.example.org.", "A", {}),
    # the tsig zones (example.org) do not cover other.test: signed or not, it passes
    ("www.other.test.", "A", {}),
    ("www.other.test.", "A", {"keyring": GOOD, "keyname": "key.example."}),
]  # fmt: skip

OK, REFUSED, NOTAUTH, SERVFAIL = (dns.rcode.NOERROR, dns.rcode.REFUSED, dns.rcode.NOTAUTH,
                                  dns.rcode.SERVFAIL)  # fmt: skip
BADSIG, BADKEY, BADTIME = dns.rcode.BADSIG, dns.rcode.BADKEY, dns.rcode.BADTIME
WWW = ["www.example.org. 3600 IN A 10.0.0.1"]
#: (rcode, TSIG error, verifies, MAC empty) per query above; None: no TSIG in the answer.
EXPECTED: list[tuple[int, int | None, bool, bool | None]] = [
    (REFUSED, None, False, None),  # required and unsigned
    (OK, None, False, None),
    (OK, 0, True, False),
    (OK, 0, True, False),
    (OK, 0, True, False),  # a key from the secrets file
    (NOTAUTH, BADSIG, False, True),
    (NOTAUTH, BADKEY, False, True),
    (OK, 0, True, False),
    (NOTAUTH, BADSIG, False, True),  # hmac-md5, as CoreDNS 1.14.7
    (NOTAUTH, BADTIME, False, False),  # signed, but a client refuses a BADTIME answer
    (OK, 0, True, False),
    (OK, 0, True, False),
    (SERVFAIL, 0, True, False),  # the error of the next plugin, signed
    (OK, None, False, None),
    (OK, None, False, None),
    (OK, None, False, None),
]


def test_answers(srv: Server) -> None:
    for (name, rdtype, kw), want in zip(QUERIES, EXPECTED, strict=True):
        rcode, _, records, error, verified, empty = ask(srv.port, name, rdtype, **kw)
        assert (rcode, error, verified, empty) == want, (name, rdtype, kw)
        if name == "www.example.org." and rdtype == "A":
            assert records == WWW


def test_same_as_coredns(srv: Server, tmp_path: Path) -> None:
    coredns_ref.require()
    with coredns_ref.serve_coredns(COREFILE, prepare(tmp_path)) as ref:
        diffs = []
        for name, rdtype, kw in QUERIES:
            ours, theirs = ask(srv.port, name, rdtype, **kw), ask(ref.port, name, rdtype, **kw)
            if ours != theirs:
                diffs.append(f"{name} {rdtype} {kw}:\n  ours {ours}\n  ref  {theirs}")
        assert not diffs, "\n".join(diffs)


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("tsig {\n    secret a.\n  }", 3, "wrong argument count"),
        (f"tsig {{\n    secret a. {SECRET}\n    secret A {SECRET}\n  }}", 4, 'key "a." redefined'),
        ("tsig {\n    require\n  }", 3, "wrong argument count"),
        ("tsig {\n    require BOGUS\n  }", 3, "unknown query type 'BOGUS'"),
        ("tsig {\n    require_opcode BOGUS\n  }", 3, "unknown opcode 'BOGUS'"),
        ("tsig {\n    secrets missing.conf\n  }", 3, "tsig: open missing.conf"),
        ("tsig {\n    bogus\n  }", 3, "unknown property 'bogus'"),
        ("tsig\n  tsig", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secret x;\n", 'unexpected token "secret"'),
        ("key\n", "expected key name"),
        ('key "a." {\n  algorithm hmac-sha256;\n};\n', 'expected secret for key "a."'),
        ('key "a." {\n  secret "";\n};\n', "expected secret key"),
        ('key "a." {\n  bogus 1;\n};\n', 'unexpected token "bogus"'),
        ('key "a." {\n  secret "eA==";\n};\nkey "A" {\n  secret "eA==";\n};\n', "redefined"),
    ],
)
def test_secrets_file_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "keys.conf").write_text(text)
    setup_error(tmp_path, "  tsig {\n    secrets keys.conf\n  }\n", 3, message)
