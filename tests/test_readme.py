"""What the README promises: `make run`'s example answers exactly the dig transcripts shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import dns.rdatatype
import dns.reversename
import pytest

from tests.harness import ROOT, Server, run_cli, start

README = (ROOT / "README.md").read_text()


def _transcripts() -> list[tuple[list[str], list[str]]]:
    block = README.split("<!-- dig-examples -->", 1)[1].split("<!-- /dig-examples -->", 1)[0]
    out: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ dig "):
            out.append((shlex.split(line[2:]), []))
        elif out and line and not line.startswith("```"):
            out[-1][1].append(line)
    return out


TRANSCRIPTS = _transcripts()


def _example_corefile(tmp: Path) -> str:
    """examples/Corefile with its fixed ports swapped for free ones (@PORT@, @P1@…)."""
    text = (ROOT / "examples" / "Corefile").read_text()
    text = text.replace(":1053", ":@PORT@").replace("127.0.0.1:8080", "127.0.0.1:@P1@")
    text = text.replace("127.0.0.1:8181", "127.0.0.1:@P2@")
    text = text.replace("127.0.0.1:9153", "127.0.0.1:@P3@")
    (tmp / "cluster").symlink_to(ROOT / "examples" / "cluster")
    return text


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Server:
    tmp = tmp_path_factory.mktemp("readme")
    srv = start(_example_corefile(tmp), tmp)
    yield srv  # type: ignore[misc]
    srv.stop()


def test_readme_has_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 10
    assert README.startswith("# ClusterDNS\n\n```sh\nmake run")
    assert "make test" in README.split("\n\n")[1]


@pytest.mark.parametrize(("argv", "want"), TRANSCRIPTS, ids=lambda v: " ".join(v[-2:]))
def test_dig_transcript(example: Server, argv: list[str], want: list[str]) -> None:
    args = [a for a in argv[1:] if not a.startswith(("@", "+")) and a not in ("-p", "1053")]
    if args[0] == "-x":
        name, rdtype = dns.reversename.from_address(args[1]).to_text(), "PTR"
    else:
        name, rdtype = args[0], args[1] if len(args) > 1 else "A"
    r = example.query(name, rdtype)
    got = [
        rd.to_text()
        for rrset in r.answer
        if rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for rd in rrset
    ]
    assert sorted(got) == sorted(want), f"{' '.join(argv)}: {got}"


def test_example_health_ready_metrics(example: Server) -> None:
    assert example.http("P1", "/health") == (200, "OK")
    assert example.http("P2", "/ready")[0] == 200
    assert "coredns_dns_requests_total" in example.metrics("P3")


def test_example_corefile_validates() -> None:
    r = run_cli("-conf", str(ROOT / "examples" / "Corefile"), "-validate")
    assert r.returncode == 0, r.stderr
    assert re.search(r"valid \(2 server blocks\)", r.stdout)


def test_plugin_table_lists_every_plugin() -> None:
    from clusterdns.registry import AVAILABLE

    table = README.split("## Plugins", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| \[(\w+)\]\(docs/plugins/(\w+)\.md\)", table, re.M))
    assert {name for name, _ in listed} == set(AVAILABLE)
    assert all(a == b and (ROOT / "docs" / "plugins" / f"{a}.md").exists() for a, b in listed)


def test_command_line_section_names_every_flag() -> None:
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    out = run_cli("-h").stdout
    flags = set(re.findall(r"^  (-[a-z.]+)", out, re.M)) - {"-h"}
    assert flags and all(f in section for f in flags), flags
