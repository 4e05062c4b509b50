"""Pyramid tiles in SQLite containers (no file per tile).

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
*shard*).

Layers of blocks
----------------
A channel layer's pyramid is not one container but a *layered* one
(:func:`write_layer`): the block shards that illuminati's run jobs wrote, each
holding the tiles of one square block of the mosaic at every level down to the
level where the block is one tile, hard-linked (no bytes copied) into a
directory ``<name>.blocks-<token>`` next to an *index* container ``<name>``.
The index is a container of its own holding the tiles of the levels above the
blocks, plus two tables: ``layout`` (the block side in tiles at the full
resolution, the number of levels, the directory of the blocks) and ``blocks``
(the blocks that have a shard, with their numbers of tiles). A reader finds the
block of a tile by arithmetic: at level ``L`` of a pyramid whose last level is
``B``, a block of ``S`` tiles covers ``S >> (B - L)`` tiles per side, so tile
``(L, row, column)`` lies in block ``(row // that, column // that)``.

The index is renamed into place last, so a reader sees the old layer or the
complete new one; :class:`TileReader` reads both kinds of container, so every
caller reads a layer as if it were one. Removing a layer means removing its
index and its blocks directory (both in the channel's ``layers`` directory).
"""

from __future__ import annotations

import heapq
import math
import os
import secrets
import shutil
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

#: bits of the row and of the column in a tile key (2**24 tiles = 4.3 Gpx per side)
_BITS = 24
_MASK = (1 << _BITS) - 1

_SCHEMA = "CREATE TABLE tiles (key INTEGER PRIMARY KEY, data BLOB NOT NULL)"
_LAYOUT_SCHEMA = (
    "CREATE TABLE layout (name TEXT PRIMARY KEY, value NOT NULL)",
    "CREATE TABLE blocks (row INTEGER, col INTEGER, tiles INTEGER NOT NULL, "
    "PRIMARY KEY (row, col))",
)


def tile_key(level: int, row: int, column: int) -> int:
    """The integer key of a tile."""
    if not (0 <= row <= _MASK and 0 <= column <= _MASK and 0 <= level < 64):
        raise ValueError(f"tile ({level}, {row}, {column}) is out of range")
    return (level << (2 * _BITS)) | (row << _BITS) | column


def split_key(key: int) -> tuple[int, int, int]:
    """(level, row, column) of a tile key."""
    return key >> (2 * _BITS), (key >> _BITS) & _MASK, key & _MASK


def block_name(row: int, column: int) -> str:
    """File name of a block's shard in a layer's blocks directory."""
    return f"block_{row}_{column}.tiles"


def top_block_level(n_levels: int, block_tiles: int) -> int:
    """The level at which a block of `block_tiles` tiles (at the full resolution,
    the last of `n_levels` levels) is one tile; blocks hold this level and those
    below, the index of a layer the levels above (0 when blocks reach level 0)."""
    return max(n_levels - 1 - int(math.log2(block_tiles)), 0)


def _open(path: Path) -> sqlite3.Connection:
    """A read-only connection to a container that never changes."""
    # Containers never change after the rename: no locking is needed, and
    # one connection may serve several threads.
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)


def count_tiles(path: str | os.PathLike) -> int:
    """Number of tiles in a container file (not a layer); checks that it is one.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist.
    ValueError
        When `path` is not a tile container (not SQLite, or without tiles).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tile container at {path}")
    try:
        db = _open(path)
        try:
            return db.execute("SELECT count(*) FROM tiles").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path} is not a tile container ({err})") from None


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
        """Copy all tiles of another container (inside SQLite, without Python per tile).

        Copies every byte: layers of many blocks are made with :func:`write_layer`.
        """
        self._db.execute("COMMIT")  # SQLite attaches and detaches only between transactions
        self._db.execute("ATTACH DATABASE ? AS other", (f"file:{path}?mode=ro",))
        try:
            self._db.execute("INSERT OR REPLACE INTO tiles SELECT key, data FROM other.tiles")
        finally:
            self._db.execute("DETACH DATABASE other")
            self._db.execute("BEGIN")

    def _put_layout(
        self,
        block_tiles: int,
        n_levels: int,
        blocks_dir: str,
        counts: Mapping[tuple[int, int], int],
    ) -> None:
        """Make this container the index of a layer of blocks (see :func:`write_layer`)."""
        for statement in _LAYOUT_SCHEMA:
            self._db.execute(statement)
        self._db.executemany(
            "INSERT INTO layout VALUES (?, ?)",
            [("block_tiles", block_tiles), ("levels", n_levels), ("blocks", blocks_dir)],
        )
        self._db.executemany(
            "INSERT INTO blocks VALUES (?, ?, ?)", [(r, c, n) for (r, c), n in counts.items()]
        )

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


def _link(source: Path, target: Path) -> None:
    """Give `source` a second name (a copy where the file system has no hard links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _blocks_directory(path: Path) -> Path | None:
    """The blocks directory of the layer indexed by `path` (None: none, or one container)."""
    if not path.is_file():
        return None
    try:
        db = _open(path)
        try:
            found = db.execute("SELECT value FROM layout WHERE name = 'blocks'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:  # no layout table: one container
        return None
    return None if found is None else path.parent / found[0]


def write_layer(
    path: str | os.PathLike,
    blocks: Mapping[tuple[int, int], str | os.PathLike],
    block_tiles: int,
    n_levels: int,
    top_tiles: Iterable[tuple[int, int, int, bytes]] = (),
) -> Path:
    """Make a layer of block shards and the tiles above them, without copying the shards.

    The shards are hard-linked (copied only where the file system cannot link)
    into a new directory ``<name>.blocks-<token>`` next to `path`; then the
    index (the `top_tiles`, the layout and the list of blocks) is written to a
    temporary file renamed to `path`. A failure leaves `path` as it was and no
    new directory; an earlier layer at `path` is replaced, its blocks removed.
    The shards keep their own names (the caller removes them when done).

    Parameters
    ----------
    path : path-like
        The layer's index container.
    blocks : mapping of (int, int) to path-like
        Shard of each block (block row, block column) that has one; a block
        without a shard is black.
    block_tiles : int
        Side of a block in tiles at the full resolution (a power of two).
    n_levels : int
        Levels of the pyramid (the last is the full resolution).
    top_tiles : iterable of (level, row, column, data)
        The tiles of the levels above :func:`top_block_level`.

    Raises
    ------
    FileNotFoundError
        When a shard does not exist (naming it).
    ValueError
        When a shard is not a tile container, for a bad `block_tiles` or
        `n_levels`, or a top tile at a level the blocks hold.
    """
    path = Path(path)
    if block_tiles < 1 or block_tiles & (block_tiles - 1):
        raise ValueError(f"block_tiles must be a power of two, got {block_tiles}")
    if n_levels < 1:
        raise ValueError(f"a pyramid has at least one level, got {n_levels}")
    shards = {(int(r), int(c)): Path(shard) for (r, c), shard in blocks.items()}
    counts = {block: count_tiles(shard) for block, shard in shards.items()}  # checks them
    stop = top_block_level(n_levels, block_tiles)
    old = _blocks_directory(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = path.with_name(f"{path.name}.blocks-{secrets.token_hex(4)}")
    directory.mkdir()
    try:
        for (row, column), shard in shards.items():
            _link(shard, directory / block_name(row, column))
        with TileWriter(path) as writer:
            for level, row, column, data in top_tiles:
                if level >= stop:
                    raise ValueError(
                        f"top tile ({level}, {row}, {column}) is at a level the blocks hold "
                        f"(levels {stop} and above)"
                    )
                writer.put(level, row, column, data)
            writer._put_layout(block_tiles, n_levels, directory.name, counts)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    if old is not None and old != directory:
        shutil.rmtree(old, ignore_errors=True)
    return path


def remove_layer(path: str | os.PathLike) -> None:
    """Remove a container, or a layer's index and its blocks (no error if absent)."""
    path = Path(path)
    blocks = _blocks_directory(path)
    path.unlink(missing_ok=True)  # first: a reader then finds no layer, not a broken one
    if blocks is not None:
        shutil.rmtree(blocks, ignore_errors=True)


class TileReader:
    """Random read access to a container, or to a layer of blocks (:func:`write_layer`).

    Parameters
    ----------
    path : path-like
        An existing container (a layer's index).

    Raises
    ------
    FileNotFoundError
        When `path` does not exist.
    """

    #: shards of a layer kept open at once (the least recently used are dropped)
    max_open_shards = 64

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no tile container at {self.path}")
        self._db = _open(self.path)
        self._shards: OrderedDict[tuple[int, int], sqlite3.Connection] = OrderedDict()
        self._lock = threading.Lock()
        #: (block side in tiles, levels, first level of the blocks); None: one container
        self.layout: tuple[int, int, int] | None = None
        self._counts: dict[tuple[int, int], int] = {}
        layered = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layout'"
        ).fetchone()
        if layered:
            values = dict(self._db.execute("SELECT name, value FROM layout"))
            side, n_levels = int(values["block_tiles"]), int(values["levels"])
            self.layout = (side, n_levels, top_block_level(n_levels, side))
            self._blocks = self.path.parent / values["blocks"]
            self._counts = {
                (r, c): n for r, c, n in self._db.execute("SELECT row, col, tiles FROM blocks")
            }

    # ----------------------------------------------------------------- blocks

    def _block_of(self, level: int, row: int, column: int) -> tuple[int, int] | None:
        """The block holding a tile of a level the blocks hold (None: no such block)."""
        side, n_levels, _ = self.layout
        if level >= n_levels:
            return None
        span = max(side >> (n_levels - 1 - level), 1)
        block = (row // span, column // span)
        return block if block in self._counts else None

    def _shard_path(self, block: tuple[int, int]) -> Path:
        path = self._blocks / block_name(*block)
        if not path.is_file():
            raise FileNotFoundError(
                f"tile container {self.path}: the shard of block {block} is missing ({path}); "
                "build the pyramid again"
            )
        return path

    def _shard(self, block: tuple[int, int]) -> sqlite3.Connection:
        with self._lock:
            db = self._shards.get(block)
            if db is not None:
                self._shards.move_to_end(block)
                return db
            db = _open(self._shard_path(block))
            self._shards[block] = db
            while len(self._shards) > self.max_open_shards:
                # dropped, not closed: another thread may still read from it
                self._shards.popitem(last=False)
            return db

    # ----------------------------------------------------------------- reading

    def get_tile(self, level: int, row: int, column: int) -> bytes | None:
        """JPEG bytes of a tile, or None for a black (or nonexistent) tile."""
        key = tile_key(level, row, column)
        db = self._db
        if self.layout is not None and level >= self.layout[2]:
            block = self._block_of(level, row, column)
            if block is None:
                return None
            db = self._shard(block)
        found = db.execute("SELECT data FROM tiles WHERE key = ?", (key,)).fetchone()
        return None if found is None else found[0]

    @staticmethod
    def _rows(db: sqlite3.Connection, level: int | None) -> Iterator[tuple[int, int, int, bytes]]:
        if level is None:
            rows = db.execute("SELECT key, data FROM tiles ORDER BY key")
        else:
            rows = db.execute(
                "SELECT key, data FROM tiles WHERE key >= ? AND key < ? ORDER BY key",
                (tile_key(level, 0, 0), tile_key(level + 1, 0, 0)),
            )
        for key, data in rows:
            yield (*split_key(key), data)

    def tiles(self, level: int | None = None) -> Iterator[tuple[int, int, int, bytes]]:
        """All stored tiles (of one level) as (level, row, column, data), in key order."""
        if self.layout is None:
            yield from self._rows(self._db, level)
            return
        _side, n_levels, stop = self.layout
        # blocks of one block row interleave in key order; rows of blocks do not
        by_row: dict[int, list[int]] = {}
        for r, c in sorted(self._counts):
            by_row.setdefault(r, []).append(c)
        for lv in range(n_levels) if level is None else [level]:
            if lv < stop:
                yield from self._rows(self._db, lv)
                continue
            if lv >= n_levels:
                continue
            for r, columns in by_row.items():
                shards = [_open(self._shard_path((r, c))) for c in columns]
                try:
                    yield from heapq.merge(*(self._rows(db, lv) for db in shards))
                finally:
                    for db in shards:
                        db.close()

    def __len__(self) -> int:
        top = self._db.execute("SELECT count(*) FROM tiles").fetchone()[0]
        return top + sum(self._counts.values())

    def close(self) -> None:
        with self._lock:
            shards = list(self._shards.values())
            self._shards.clear()
        for db in shards:
            db.close()
        self._db.close()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
