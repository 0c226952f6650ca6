"""The command line: flags, exit codes, the default Corefile, signals."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.rcode

from tests.harness import HOST, free_port, run_cli, serve

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"


def test_version() -> None:
    r = run_cli("-version")
    assert r.returncode == 0
    assert re.match(r"ClusterDNS-\d+\.\d+\.\d+\n", r.stdout)


def test_plugins_lists_every_available_plugin() -> None:
    r = run_cli("-plugins")
    assert r.returncode == 0
    for name in ("whoami", "hosts", "log", "errors", "health", "ready", "prometheus", "reload"):
        assert f"dns.{name}\n" in r.stdout


def test_validate_accepts_a_good_corefile(tmp_path: Path) -> None:
    (tmp_path / "Corefile").write_text(".:1053 {\n    whoami\n    log\n}\n")
    r = run_cli("-conf", str(tmp_path / "Corefile"), "-validate")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_validate_reports_every_error_with_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n    whoami extra\n    nosuchplugin\n    log\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:2" in r.stderr and "whoami" in r.stderr
    assert f"{conf}:3" in r.stderr and "unknown directive 'nosuchplugin'" in r.stderr


def test_missing_corefile_is_an_error(tmp_path: Path) -> None:
    r = run_cli("-conf", str(tmp_path / "nope"), "-validate")
    assert r.returncode == 1
    assert "nope" in r.stderr


def test_no_corefile_serves_whoami_on_the_default_port(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdns", "-dns.port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        import dns.message
        import dns.query

        q = dns.message.make_query("example.com.", "A")
        deadline = time.monotonic() + 10
        while True:
            try:
                r = dns.query.udp(q, HOST, port=port, timeout=0.3)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
        assert r.rcode() == dns.rcode.NOERROR
        assert r.additional and r.additional[0].to_text().endswith(f"A {HOST}")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out


def test_bind_error_exits_1(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind((HOST, 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        conf = tmp_path / "Corefile"
        conf.write_text(f".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n")
        r = run_cli("-conf", str(conf))
        assert r.returncode == 1
        assert "listen" in r.stderr.lower()
    finally:
        busy.close()


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as srv:
        assert srv.query("x.", "A").rcode() == dns.rcode.NOERROR
        assert srv.stop() == 0


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as srv:
        srv.signal(signal.SIGINT)
        assert srv.proc.wait(10) == 0


def test_module_and_console_script_are_the_same(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "clusterdns"
    r = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert r.stdout == run_cli("-version").stdout


def test_quiet_drops_the_start_banner(tmp_path: Path) -> None:
    body = ".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n"
    loud, quiet = tmp_path / "loud", tmp_path / "quiet"
    loud.mkdir()
    quiet.mkdir()
    with serve(body, loud) as srv:
        srv.wait_output(r"ClusterDNS-\d+\.\d+\.\d+")
    with serve(body, quiet, args=("-quiet",)) as srv:
        assert srv.query("x.", "A").rcode() == dns.rcode.NOERROR
        assert "ClusterDNS-" not in srv.output
