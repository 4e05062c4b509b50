"""PostgreSQL's binary COPY format, as far as TissueMAPS reads and writes it.

A binary COPY stream is a header, rows and a trailer. A row is the number of
its fields (int16) and per field its length in bytes (int32, -1 for NULL)
followed by its bytes, integers big-endian. Rows of fixed width are numpy
structured records, so whole blocks of them are made or read without Python
per row: feature values are exported that way (:mod:`tmlib.features`) and
jterator writes objects that way (:mod:`tmlib.jterator.saving`).
"""

from __future__ import annotations

import numpy as np

#: signature, flags (none) and the length of the header extension (none)
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
#: a field count of -1 ends the rows
TRAILER = b"\xff\xff"


def feature_values_row(n_features: int) -> np.dtype:
    """One row of (mapobject_id BIGINT, partition_key INTEGER, tpoint INTEGER, values BYTEA)
    whose values are `n_features` float64 (little-endian, as :class:`FloatArray` stores them).

    Fields: ``n`` (the field count, 4), ``l0``..``l3`` (the fields' lengths) and ``id``,
    ``key``, ``t``, ``v``.
    """
    return np.dtype(
        [("n", ">i2"), ("l0", ">i4"), ("id", ">i8"), ("l1", ">i4"), ("key", ">i4"),
         ("l2", ">i4"), ("t", ">i4"), ("l3", ">i4"), ("v", "<f8", (n_features,))]
    )  # fmt: skip
