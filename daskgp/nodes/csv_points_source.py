"""``CsvPointsSource``: points read from a CSV file, one per line, served by ROI.

Parsed once at setup, with errors that name the file and line; indexed like ``GraphSource``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np

from ..errors import SourceError
from ..graph import Graph
from ..keys import GraphKey
from ..specs import GraphSpec
from .graph_source import GraphSource


class CsvPointsSource(GraphSource):
    """Read points from a CSV file, as gunpowder's ``CsvPointsSource``: each line holds one
    point (e.g. ``z, y, x[, id]``); a header line is skipped if ``csv.Sniffer`` sees one
    (and, unlike gunpowder, only if its coordinate columns are not numbers).

    The provided ROI is the bounding box of the points (``floor(min)`` to ``ceil(max) + 1``)
    unless ``points_spec`` says otherwise. Requests are answered through a spatial index.

    Differences from gunpowder: ids (``id_col``) must be integers (gunpowder keeps strings)
    and ``id_col=0`` is honoured (gunpowder ignores it); a missing file, an empty file, a
    short line, a value that is not a number, a NaN or infinite coordinate and duplicate ids
    raise ``SourceError`` naming the file and line.

    Args:
        filename (str): the CSV file.
        points (GraphKey): the key to provide.
        spatial_cols (list of int): the columns of the coordinates, in the order to use.
        points_spec (GraphSpec, optional): overrides the provided spec (e.g. its ROI).
        scale (scalar or sequence, optional): multiplies the coordinates (voxels to world).
        id_col (int, optional): the column of the point ids (default: the row numbers).
        delimiter (str): the CSV delimiter.

    Example:
        >>> pipeline = CsvPointsSource("points.csv", gp.GraphKey("POINTS"), [0, 1, 2],
        ...                            scale=(40, 4, 4))                  # doctest: +SKIP
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        points: GraphKey,
        spatial_cols: Sequence[int],
        points_spec: GraphSpec | None = None,
        scale=None,
        id_col: int | None = None,
        delimiter: str = ",",
    ) -> None:
        self.filename = os.fspath(filename)
        self.points = points
        self.spatial_cols = [int(c) for c in spatial_cols]
        self.points_spec = points_spec
        self.scale = scale
        self.id_col = id_col
        self.delimiter = delimiter
        self.key = points
        self.graph_spec = points_spec

    def setup(self) -> None:
        ids, locations = self._parse()
        self.graph = Graph.from_arrays(ids, locations, spec=GraphSpec(), validate=False)
        super().setup()

    def _parse(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(self.filename, newline="") as f:
                text = f.read()
        except OSError as error:
            raise SourceError(
                f"{self.name()}: cannot read the points of {self.points} from "
                f"{self.filename!r}: {error}"
            ) from None
        if not text.strip():
            raise SourceError(
                f"{self.name()}: {self.filename!r} (points of {self.points}) is empty"
            )
        try:
            has_header = csv.Sniffer().has_header(text[:1024])
        except csv.Error:
            has_header = False
        columns = list(self.spatial_cols) + ([] if self.id_col is None else [self.id_col])
        needed = max(columns) + 1
        locations, ids = [], []
        reader = csv.reader(text.splitlines(), delimiter=self.delimiter)
        for line_number, row in enumerate(reader, start=1):
            if line_number == 1 and has_header and not _numeric(row, self.spatial_cols):
                continue
            if not row or all(not cell.strip() for cell in row):
                continue
            where = f"{self.filename}, line {line_number} (points of {self.points})"
            if len(row) < needed:
                raise SourceError(
                    f"{self.name()}: {where} has {len(row)} columns, but columns {columns} "
                    f"are read (spatial_cols={self.spatial_cols}, id_col={self.id_col}): "
                    f"{self.delimiter.join(row)!r}"
                )
            point = []
            for c in self.spatial_cols:
                try:
                    value = float(row[c])
                except ValueError:
                    raise SourceError(
                        f"{self.name()}: {where}, column {c}: {row[c]!r} is not a number"
                    ) from None
                if not math.isfinite(value):
                    raise SourceError(
                        f"{self.name()}: {where}, column {c}: coordinate {row[c]!r} is not "
                        "finite"
                    )
                point.append(value)
            locations.append(point)
            if self.id_col is not None:
                try:
                    ids.append(int(row[self.id_col]))
                except ValueError:
                    raise SourceError(
                        f"{self.name()}: {where}, column {self.id_col}: id "
                        f"{row[self.id_col]!r} is not an integer"
                    ) from None
        if not locations:
            raise SourceError(
                f"{self.name()}: {self.filename!r} (points of {self.points}) has no points"
            )
        locations = np.array(locations, dtype=np.float32)
        if self.scale is not None:
            locations *= np.asarray(self.scale, dtype=np.float32)
        ids = np.arange(len(locations)) if self.id_col is None else np.array(ids, np.int64)
        unique, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise SourceError(
                f"{self.name()}: {self.filename!r} has duplicate ids "
                f"{unique[counts > 1][:5].tolist()} in column {self.id_col}"
            )
        return ids, locations


def _numeric(row: list[str], columns: list[int]) -> bool:
    """Whether ``row`` has a number in each of ``columns``."""
    try:
        [float(row[c]) for c in columns]
        return True
    except (ValueError, IndexError):
        return False
