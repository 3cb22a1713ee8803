"""HPACK with a memory: header blocks that repeat are coded once while the table stands still.

A client that sends the same request again (a load balancer's health check, a gRPC stub, a
page's API calls) sends the same header block: once every field is in the dynamic table, each
is one index byte, and decoding them changes nothing. The same holds for our responses: after
the first, ``:status``, ``content-type``, ``server`` and ``date`` (until the next second) are
all indexed. hpack decodes and encodes them field by field in Python (about a third of an
HTTP/2 hello's instructions), so these coders remember, per connection, what a block decoded
to and what a header list encoded to, and reuse it only while the dynamic table is exactly as
it was then (a counter bumped by every change of the table: an insertion, an eviction, a size
update) and the limits are the same. Everything else goes to hpack unchanged, so hpack stays
the authority on the coding and h2 on what the fields mean: the decoded list is validated by
h2 for every request, cached or not.
"""

from __future__ import annotations

from typing import Any

import hpack
from hpack.table import HeaderTable

# Per connection and direction. Blocks and lists differ when the path or a cookie does, so
# only a handful repeat; the bound keeps a connection that never repeats cheap.
_MAX_ENTRIES = 16
_MAX_BLOCK = 512  # bytes of an encoded block worth remembering


class VersionedTable(HeaderTable):
    """hpack's dynamic table, with ``version`` bumped on every change."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(hpack.Decoder):
    """``hpack.Decoder`` that returns a remembered list for a block seen at this table state."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self.header_table = self.table = table = VersionedTable()
        self.max_allowed_table_size = table.maxsize
        self._cache: dict[bytes, list[Any]] = {}
        self._state = (-1, 0, 0)

    def decode(self, data: bytes, raw: bool = False) -> Any:
        if not raw or type(data) is not bytes or len(data) > _MAX_BLOCK:
            return super().decode(data, raw)
        state = (self.table.version, self.max_header_list_size,
                 self.max_allowed_table_size)
        cache = self._cache
        if state != self._state:
            cache.clear()
            self._state = state
        else:
            known = cache.get(data)
            if known is not None:
                return known.copy()
        headers: Any = super().decode(data, raw)  # a list
        if self.table.version == state[0]:  # the block left the table as it was
            if len(cache) >= _MAX_ENTRIES:
                cache.clear()
            cache[data] = headers.copy()
        return headers


class CachingEncoder(hpack.Encoder):
    """``hpack.Encoder`` that returns a remembered block for a list sent at this table state.

    Only lists of plain ``(bytes, bytes)`` tuples are remembered (what the worker sends):
    a ``NeverIndexedHeaderTuple`` compares equal to a plain tuple but must be coded otherwise.
    """

    def __init__(self) -> None:
        super().__init__()
        self.header_table = self.table = VersionedTable()
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._version = -1

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.table
        if not huffman or table.resized or isinstance(headers, dict):
            return super().encode(headers, huffman)
        key = tuple(headers)
        cache = self._cache
        version = table.version
        if version != self._version:
            cache.clear()
            self._version = version
        else:
            block = cache.get(key)
            if block is not None:
                return block
        block = super().encode(key, huffman)
        if (table.version == version
                and len(block) <= _MAX_BLOCK
                and all(type(header) is tuple for header in key)):
            if len(cache) >= _MAX_ENTRIES:
                cache.clear()
            cache[key] = block
        return block
