"""Pyramid tiles in one SQLite file per channel layer (no file per tile).

A container is an SQLite database with one table ``tiles(key, data)``: the
JPEG bytes of each 256×256 tile under an integer key made of its level, row
and column, so a tile is one B-tree lookup (:meth:`TileReader.get_tile`).
SQLite is in the standard library, reads concurrently without a server and
can be inspected with the ``sqlite3`` shell.

Tiles that are entirely black (spacers between wells and plates, space
beyond the images) are not stored; :meth:`TileReader.get_tile` answers None
for them and callers show black.

Writing never happens in place: :class:`TileWriter` fills a temporary file and
renames it into place at the end, so a reader sees either the old container or
the complete new one. Parallel jobs each write their own container (a
*shard*); :meth:`TileWriter.add_container` joins shards into the layer's container.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

#: bits of the row and of the column in a tile key (2**24 tiles = 4.3 Gpx per side)
_BITS = 24
_MASK = (1 << _BITS) - 1

_SCHEMA = "CREATE TABLE tiles (key INTEGER PRIMARY KEY, data BLOB NOT NULL)"


def tile_key(level: int, row: int, column: int) -> int:
    """The integer key of a tile."""
    if not (0 <= row <= _MASK and 0 <= column <= _MASK and 0 <= level < 64):
        raise ValueError(f"tile ({level}, {row}, {column}) is out of range")
    return (level << (2 * _BITS)) | (row << _BITS) | column


def split_key(key: int) -> tuple[int, int, int]:
    """(level, row, column) of a tile key."""
    return key >> (2 * _BITS), (key >> _BITS) & _MASK, key & _MASK


class TileWriter:
    """Write a container atomically: tiles go to a temporary file that
    :meth:`close` renames to `path` (a failure leaves `path` as it was).

    Use as a context manager; leaving the block with an exception discards
    the temporary file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from tmlib.storage import temporary_file  # (h5py only when writing)

        # named after its writer: a killed job's leftover can be found and removed
        self._tmp = temporary_file(self.path)
        tmp = str(self._tmp)
        # A private temporary file: no journal and no syncs until the rename.
        self._db = sqlite3.connect(tmp, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_SCHEMA)
        self._db.execute("BEGIN")

    def put(self, level: int, row: int, column: int, data: bytes) -> None:
        """Store (or replace) the encoded tile at (level, row, column)."""
        self._db.execute(
            "INSERT OR REPLACE INTO tiles VALUES (?, ?)", (tile_key(level, row, column), data)
        )

    def put_many(self, tiles: Iterable[tuple[int, int, int, bytes]]) -> None:
        """Store tiles given as (level, row, column, data)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO tiles VALUES (?, ?)",
            ((tile_key(lv, r, c), data) for lv, r, c, data in tiles),
        )

    def add_container(self, path: str | os.PathLike) -> None:
        """Copy all tiles of another container (inside SQLite, without Python per tile)."""
        self._db.execute("COMMIT")  # SQLite attaches and detaches only between transactions
        self._db.execute("ATTACH DATABASE ? AS other", (f"file:{path}?mode=ro",))
        try:
            self._db.execute("INSERT OR REPLACE INTO tiles SELECT key, data FROM other.tiles")
        finally:
            self._db.execute("DETACH DATABASE other")
            self._db.execute("BEGIN")

    def close(self) -> Path:
        """Finish the container and move it to its path; returns the path."""
        self._db.execute("COMMIT")
        self._db.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Drop everything written; the path keeps its earlier content."""
        self._db.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TileWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class TileReader:
    """Random read access to a container.

    Parameters
    ----------
    path : path-like
        An existing container.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no tile container at {self.path}")
        # Containers never change after the rename: no locking is needed, and
        # one connection may serve several threads.
        self._db = sqlite3.connect(
            f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )

    def get_tile(self, level: int, row: int, column: int) -> bytes | None:
        """JPEG bytes of a tile, or None for a black (or nonexistent) tile."""
        found = self._db.execute(
            "SELECT data FROM tiles WHERE key = ?", (tile_key(level, row, column),)
        ).fetchone()
        return None if found is None else found[0]

    def tiles(self, level: int | None = None) -> Iterator[tuple[int, int, int, bytes]]:
        """All stored tiles (of one level) as (level, row, column, data), in key order."""
        if level is None:
            rows = self._db.execute("SELECT key, data FROM tiles ORDER BY key")
        else:
            rows = self._db.execute(
                "SELECT key, data FROM tiles WHERE key >= ? AND key < ? ORDER BY key",
                (tile_key(level, 0, 0), tile_key(level + 1, 0, 0)),
            )
        for key, data in rows:
            yield (*split_key(key), data)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM tiles").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
