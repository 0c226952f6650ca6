"""Finding, fingerprinting and splitting the manifest files (the blocking part of `manifests`).

Kept apart from the conversion so the source module stays small: everything here is plain file
and text work that runs in a worker thread, and knows nothing about Kubernetes kinds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from clusterdns.plugins.kubernetes.jsonitems import JsonObject

#: Files modified this recently are hashed too (timestamps can be coarser than two writes).
RACY_WINDOW_NS = 2_000_000_000
SUFFIXES = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A document marker at column 0 can never be content (YAML 1.2 §9.1.4: c-forbidden).
_MARKER = re.compile(r"^(---|\.\.\.)(?=[ \t\r]|$)", re.MULTILINE)

#: Per file: (device, inode, size, mtime_ns) and a content digest for recently written files;
#: None for a PATH that does not exist.
FileState = tuple[tuple[int, int, int, int], bytes | None] | None
Scan = dict[str, FileState]
#: (directory, reason) for directories that could not be listed.
WalkErrors = list[tuple[str, str]]


# ---- finding and fingerprinting the files ---------------------------------------------------


def list_files(paths: list[str], errors: WalkErrors | None = None) -> Iterator[tuple[str, bool]]:
    """(path, exists) for every file to read, in a stable order.

    A directory reached twice (a symlink loop, or a PATH inside another) is walked once.
    Unreadable directories are added to `errors` as (path, reason) when it is given.
    """
    seen: set[tuple[int, int]] = set()
    for top in paths:
        if os.path.isdir(top):
            yield from ((p, True) for p in _walk(top, seen, errors))
        else:
            yield top, os.path.exists(top)


def _walk(directory: str, seen: set[tuple[int, int]], errors: WalkErrors | None) -> Iterator[str]:
    try:
        st = os.stat(directory)
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        names = sorted(os.listdir(directory))
    except OSError as e:
        if errors is not None:
            errors.append((directory, str(e.strerror or e)))
        return
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            yield from _walk(path, seen, errors)
        elif name.endswith(SUFFIXES) and os.path.isfile(path):
            yield path


def scan(paths: list[str]) -> Scan:
    out: Scan = {}
    now = time.time_ns()
    for path, exists in list_files(paths):
        try:
            st = os.stat(path) if exists else None
        except OSError:
            st = None
        if st is None:
            out[path] = None
            continue
        digest = None
        if now - st.st_mtime_ns < RACY_WINDOW_NS:
            try:
                with open(path, "rb") as f:
                    digest = hashlib.blake2b(f.read(), digest_size=16).digest()
            except OSError:
                pass
        out[path] = ((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), digest)
    return out


def changed(old: Scan, new: Scan) -> bool:
    """Whether the file set differs; digests only count when both scans took one."""
    if old.keys() != new.keys():
        return True
    for path, now in new.items():
        before = old[path]
        if before is None or now is None:
            if before is not now:
                return True
            continue
        if before[0] != now[0]:
            return True
        if before[1] is not None and now[1] is not None and before[1] != now[1]:
            return True
    return False


# ---- reading documents ----------------------------------------------------------------------


@dataclass(slots=True)
class Doc:
    """One document of a file, or the error that stopped it from being read."""

    file: str
    number: int  # 1-based, in file order
    obj: Any = None
    error: str = ""
    #: A JSON object read member by member (a List's items one at a time, jsonitems.py): the
    #: reader drives it; `obj` is then None. An error in it ends the file (as in `obj`'s).
    stream: JsonObject | None = None


def read_documents(path: str) -> Iterator[Doc]:
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        yield Doc(path, 0, error=reason)
        return
    if path.endswith(".json"):
        yield from _json_documents(path, text)
    else:
        yield from _yaml_documents(path, text)


def _json_documents(path: str, text: str) -> Iterator[Doc]:
    decoder = json.JSONDecoder()
    pos, number = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        number += 1
        if text[pos] == "{":
            stream = JsonObject(text, pos, _list_head)
            yield Doc(path, number, stream=stream)
            if stream.end < 0:
                return  # a syntax error (the reader said so): the stream cannot resynchronise
            pos = stream.end
            continue
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield Doc(path, number, error=json_error(e))
            return  # a JSON stream cannot be resynchronised
        yield Doc(path, number, obj)


def json_error(e: json.JSONDecodeError) -> str:
    return f"JSON syntax error at line {e.lineno}: {e.msg}"


def _list_head(head: dict[str, Any]) -> bool:
    """Whether a List's items can be handed out as they are read: its kind and apiVersion (the
    items' defaults) are known by then. kubectl writes `items` before `kind`: such an array is
    read again once the head is complete (jsonitems.py)."""
    kind = head.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and "apiVersion" in head


def _yaml_chunks(text: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each document, split at the `---`/`...` markers."""
    starts = [m.start() for m in _MARKER.finditer(text)]
    bounds = [0, *starts, len(text)]
    pending = ""  # directives (%YAML…) belong to the document that follows
    for a, b in itertools.pairwise(bounds):
        chunk = text[a:b]
        line = text.count("\n", 0, a) + 1 - pending.count("\n")
        if chunk.startswith("..."):
            chunk = chunk[3:]  # an end marker; what follows may start a bare document
        if not chunk.startswith("---"):
            meaningful = [
                s for s in chunk.splitlines() if s.strip() and not s.lstrip().startswith("#")
            ]
            if not meaningful:
                continue
            if all(s.startswith("%") for s in meaningful):
                pending += chunk
                continue
        yield line, pending + chunk
        pending = ""


def _yaml_documents(path: str, text: str) -> Iterator[Doc]:
    for number, (line, chunk) in enumerate(_yaml_chunks(text), 1):
        try:
            obj = yaml.load(chunk, Loader=_Loader)  # a safe loader (CSafeLoader/SafeLoader)
        except yaml.YAMLError as e:
            yield Doc(path, number, error=_yaml_error(e, line))
            continue
        yield Doc(path, number, obj)


def _yaml_error(e: yaml.YAMLError, first_line: int) -> str:
    """PyYAML's problem and context with line numbers of the whole file (1-based)."""
    problem = getattr(e, "problem", None)
    if not isinstance(e, yaml.MarkedYAMLError) or not problem:
        return f"YAML error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    text = "YAML syntax error"
    if e.problem_mark is not None:
        text += f" at line {first_line + e.problem_mark.line}"
    text += f": {problem}"
    if e.context:
        at = f" at line {first_line + e.context_mark.line}" if e.context_mark is not None else ""
        text += f" ({e.context}{at})"
    return text
