"""tmlib.tiles: layers made of block shards read back like one container."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tmlib.tiles import (
    TileReader,
    TileWriter,
    count_tiles,
    remove_layer,
    top_block_level,
    write_layer,
)

#: a pyramid of 4 levels (1, 2x2, 4x4 and 8x8 tiles) cut into blocks of 4x4 tiles
LEVELS, SIDE = 4, 4
GRIDS = [(1, 1), (2, 2), (4, 4), (8, 8)]


def tile_bytes(level: int, row: int, column: int) -> bytes:
    return f"tile {level}/{row}/{column}".encode() * 3


def all_tiles(black: set[tuple[int, int, int]] = frozenset()) -> dict[tuple[int, int, int], bytes]:
    return {
        (lv, r, c): tile_bytes(lv, r, c)
        for lv, (rows, columns) in enumerate(GRIDS)
        for r, c in itertools.product(range(rows), range(columns))
        if (lv, r, c) not in black
    }


def block_of(level: int, row: int, column: int) -> tuple[int, int]:
    span = SIDE >> (LEVELS - 1 - level)
    return row // span, column // span


def make_layer(
    tmp_path: Path, tiles: dict[tuple[int, int, int], bytes], skip: set = frozenset()
) -> tuple[Path, dict[tuple[int, int], Path]]:
    """Shards as illuminati's run jobs write them, and the layer made of them."""
    stop = top_block_level(LEVELS, SIDE)
    shards: dict[tuple[int, int], Path] = {}
    writers: dict[tuple[int, int], TileWriter] = {}
    for block in itertools.product(range(2), range(2)):
        if block in skip:
            continue
        shards[block] = tmp_path / "shards" / f"block_{block[0]}_{block[1]}.tiles"
        writers[block] = TileWriter(shards[block])
    top = []
    for (lv, r, c), data in tiles.items():
        if lv < stop:
            top.append((lv, r, c, data))
        elif block_of(lv, r, c) in writers:
            writers[block_of(lv, r, c)].put(lv, r, c, data)
    for writer in writers.values():
        writer.close()
    path = tmp_path / "layers" / "layer_t0_z0.tiles"
    write_layer(path, shards, SIDE, LEVELS, top)
    return path, shards


def test_top_block_level():
    assert top_block_level(LEVELS, SIDE) == 1
    assert top_block_level(3, 32) == 0  # blocks reach level 0: no top levels
    assert top_block_level(12, 1) == 11


def test_a_layer_reads_back_every_tile_across_block_borders_and_top_levels(tmp_path):
    black = {(3, 0, 0), (3, 4, 3), (2, 1, 2)}  # not stored: read as None
    tiles = all_tiles(black)
    path, shards = make_layer(tmp_path, tiles)
    with TileReader(path) as reader:
        for lv, (rows, columns) in enumerate(GRIDS):
            for r, c in itertools.product(range(rows), range(columns)):
                assert reader.get_tile(lv, r, c) == tiles.get((lv, r, c)), (lv, r, c)
        assert reader.get_tile(3, 8, 0) is None  # beyond the blocks
        assert reader.get_tile(7, 0, 0) is None  # beyond the levels
        assert len(reader) == len(tiles)
        assert list(reader.tiles()) == [(*key, tiles[key]) for key in sorted(tiles)]
        for lv in range(LEVELS):
            assert [t[:3] for t in reader.tiles(lv)] == sorted(k for k in tiles if k[0] == lv)
    # the index holds the top levels only; the blocks are the shards' files, linked
    index_count = count_tiles(path)
    assert index_count == sum(1 for k in tiles if k[0] < 1)
    (blocks,) = [p for p in path.parent.iterdir() if p.is_dir()]
    assert blocks.name.startswith("layer_t0_z0.tiles.blocks-")
    assert sorted(p.name for p in blocks.iterdir()) == sorted(s.name for s in shards.values())
    for shard in shards.values():
        if hasattr(os, "link"):
            assert os.stat(shard).st_ino == os.stat(blocks / shard.name).st_ino  # no copy
        shard.unlink()  # the layer keeps its own names
    with TileReader(path) as reader:
        assert reader.get_tile(3, 7, 7) == tiles[(3, 7, 7)]


def test_a_block_without_a_shard_is_black(tmp_path):
    tiles = all_tiles()
    path, _ = make_layer(tmp_path, tiles, skip={(1, 0)})
    with TileReader(path) as reader:
        assert reader.get_tile(3, 4, 0) is None and reader.get_tile(1, 1, 0) is None
        assert reader.get_tile(3, 4, 4) == tiles[(3, 4, 4)]
        stored = {t[:3] for t in reader.tiles()}
    assert stored == {k for k in tiles if k[0] < 1 or block_of(*k) != (1, 0)}


def test_many_readers_of_shards_stay_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(TileReader, "max_open_shards", 1)
    tiles = all_tiles()
    path, _ = make_layer(tmp_path, tiles)
    with TileReader(path) as reader:
        for _ in range(2):
            for key in [(3, 0, 0), (3, 7, 7), (2, 0, 3), (3, 0, 1)]:
                assert reader.get_tile(*key) == tiles[key]
        assert len(reader._shards) == 1


def test_a_missing_or_bad_shard_is_a_clear_error_and_changes_nothing(tmp_path):
    tiles = all_tiles()
    path, shards = make_layer(tmp_path, tiles)
    layer_files = sorted(path.parent.rglob("*"))

    missing = dict(shards)
    missing[(1, 1)] = tmp_path / "shards" / "gone.tiles"
    with pytest.raises(FileNotFoundError, match="gone.tiles"):
        write_layer(path, missing, SIDE, LEVELS)
    bad = tmp_path / "shards" / "bad.tiles"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(ValueError, match="bad.tiles is not a tile container"):
        write_layer(path, {**shards, (1, 1): bad}, SIDE, LEVELS)
    with pytest.raises(ValueError, match="at a level the blocks hold"):
        write_layer(path, shards, SIDE, LEVELS, [(1, 0, 0, b"x")])
    with pytest.raises(ValueError, match="power of two"):
        write_layer(path, shards, 3, LEVELS)
    assert sorted(path.parent.rglob("*")) == layer_files  # the layer as it was, nothing new
    with TileReader(path) as reader:
        assert len(reader) == len(tiles)

    # a shard lost after the layer was made: reading its block says so
    (blocks,) = [p for p in path.parent.iterdir() if p.is_dir()]
    (blocks / "block_1_1.tiles").unlink()
    with TileReader(path) as reader:
        assert reader.get_tile(3, 0, 0) == tiles[(3, 0, 0)]
        with pytest.raises(FileNotFoundError, match=r"shard of block \(1, 1\) is missing"):
            reader.get_tile(3, 7, 7)


def test_a_new_layer_replaces_the_old_and_remove_layer_removes_all(tmp_path):
    path, shards = make_layer(tmp_path, all_tiles())
    (old,) = [p for p in path.parent.iterdir() if p.is_dir()]
    with TileWriter(tmp_path / "one.tiles") as writer:
        writer.put(3, 0, 0, b"new")
    write_layer(path, {(0, 0): tmp_path / "one.tiles"}, SIDE, LEVELS)
    assert not old.exists()
    with TileReader(path) as reader:
        assert list(reader.tiles()) == [(3, 0, 0, b"new")]
    remove_layer(path)
    assert list(path.parent.iterdir()) == []
    remove_layer(path)  # absent: nothing to do
    # a single container is removed as well
    remove_layer(tmp_path / "one.tiles")
    assert not (tmp_path / "one.tiles").exists()
