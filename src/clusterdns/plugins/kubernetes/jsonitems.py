"""A JSON object read member by member, its `items` array one item at a time.

A List (an API list page, `kubectl get -A -o json`) decoded with json.loads is one parse tree
of all its objects: for 100k endpoints that is hundreds of MB of dicts alive at once, only to be
converted to records and dropped. Here the top-level object's members are decoded one by one
(json's own C decoder, raw_decode, for every value), and the `items` array is walked item by
item, so only one item's dicts exist at a time beside the text itself.

Whether the items may be handed out as they come depends on the other members (a manifest
knows what a List's items are only from its `kind`), and `kubectl` writes `items` before `kind`.
So `stream(head)` is asked when the array is reached with the members read so far: if it says
no, the array is only stepped over (each item decoded and dropped) and `deferred` keeps its
position for `items_at` to walk again once the whole head is known — twice the decoding for
those files, never the whole tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m is not None else pos


def _char(text: str, pos: int) -> str:
    return text[pos] if pos < len(text) else ""


def items_at(text: str, pos: int) -> Iterator[Any]:
    """Each item of the JSON array starting at text[pos] (`[`), decoded one at a time."""
    if _char(text, pos) != "[":
        raise json.JSONDecodeError("Expecting '['", text, pos)
    return iter(_Array(text, pos))


class JsonObject:
    """The JSON object at text[pos]: `items()` yields the streamed items while it reads; after
    it, `head` holds every other member, `end` the position after the object and `deferred`
    the position of an `items` array that `stream` did not accept (-1 if none)."""

    def __init__(
        self, text: str, pos: int = 0, stream: Callable[[dict[str, Any]], bool] = lambda h: True
    ) -> None:
        self.text = text
        self.start = pos
        self.stream = stream
        self.head: dict[str, Any] = {}
        self.deferred = -1
        self.end = -1
        #: Whether an `items` member holding an array was met (streamed or deferred).
        self.array = False

    def items(self) -> Iterator[Any]:
        text, head = self.text, self.head
        pos = _ws(text, self.start)
        if _char(text, pos) != "{":
            raise json.JSONDecodeError("Expecting '{'", text, pos)
        pos = _ws(text, pos + 1)
        if _char(text, pos) == "}":
            self.end = pos + 1
            return
        while True:
            if _char(text, pos) != '"':
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, pos
                )
            key, pos = scanstring(text, pos + 1)
            pos = _ws(text, pos)
            if _char(text, pos) != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
            pos = _ws(text, pos + 1)
            if key == "items" and _char(text, pos) == "[":
                head.pop("items", None)
                self.array = True
                walk = _Array(text, pos)
                if self.stream(head):
                    self.deferred = -1
                    yield from walk
                else:
                    self.deferred = pos
                    for _ in walk:  # stepped over: decoded and dropped, one item at a time
                        pass
                pos = walk.end
            else:
                head[key], pos = _DECODER.raw_decode(text, pos)
                if key == "items":
                    self.deferred, self.array = -1, False
            pos = _ws(text, pos)
            c = _char(text, pos)
            if c == "}":
                self.end = pos + 1
                return
            if c != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = _ws(text, pos + 1)


class _Array:
    """items_at as an iterator that remembers where the array ended."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos
        self.end = -1

    def __iter__(self) -> Iterator[Any]:
        text = self.text
        pos = _ws(text, self.pos + 1)
        if _char(text, pos) == "]":
            self.end = pos + 1
            return
        while True:
            item, pos = _DECODER.raw_decode(text, pos)
            yield item
            pos = _ws(text, pos)
            c = _char(text, pos)
            if c == "]":
                self.end = pos + 1
                return
            if c != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = _ws(text, pos + 1)
