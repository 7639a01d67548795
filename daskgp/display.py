"""Pictures of batches: a mid-slice image of each spatial array (labels coloured, masks and
intensities in grey), as a matplotlib figure, a PNG, or the HTML that Jupyter shows.

``Batch._repr_html_``/``_repr_png_`` and ``daskgp show`` draw with these functions.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np

from .batch import Array, Batch
from .geometry import Roi

#: Inches per panel of a grid.
PANEL_INCHES = 2.6


@dataclass(frozen=True)
class Panel:
    """One picture of a grid: a 2D image (or RGB), its kind and its world extent.

    Attributes:
        title (str): what the panel shows (key, slice, shape).
        image (numpy.ndarray): (height, width) values, or (height, width, 3) colours.
        kind (str): ``"image"``, ``"labels"``, ``"mask"`` or ``"rgb"``.
        extent (tuple of float or None): (x begin, x end, y end, y begin) in world units.
    """

    title: str
    image: np.ndarray
    kind: str
    extent: tuple[float, float, float, float] | None = None


def array_kind(values: np.ndarray, interpolatable: bool | None) -> str:
    """``"mask"`` for booleans and 0/1 integers, ``"labels"`` for other integers that do not
    interpolate (ids), else ``"image"``.

    Example:
        >>> array_kind(np.array([0, 1, 1], np.uint8), True), array_kind(np.array([0, 7]), False)
        ('mask', 'labels')
    """
    if values.dtype == bool:
        return "mask"
    if np.issubdtype(values.dtype, np.integer):
        if values.size and values.min() >= 0 and values.max() <= 1:
            return "mask"
        if not interpolatable:
            return "labels"
    return "image"


def label_colours(labels: np.ndarray) -> np.ndarray:
    """(…, 3) float RGB of integer ``labels``: a fixed colour per id (golden-ratio hues), id 0
    black, so one neuron keeps its colour across panels and batches.

    Example:
        >>> label_colours(np.array([[0, 5]]))[0, 0].tolist()
        [0.0, 0.0, 0.0]
    """
    ids, inverse = np.unique(labels, return_inverse=True)
    hue = (ids.astype(np.float64) * 0.6180339887) % 1.0
    saturation = 0.55 + 0.4 * ((ids.astype(np.float64) * 0.7548776662) % 1.0)
    from matplotlib.colors import hsv_to_rgb

    colours = hsv_to_rgb(np.stack([hue, saturation, np.full(hue.shape, 0.95)], axis=-1))
    colours[ids == 0] = 0.0
    return colours[inverse.reshape(labels.shape)]


def common_centre(arrays: Sequence[Array]) -> tuple | None:
    """The world centre of the ROIs' intersection (None when they do not intersect)."""
    common: Roi | None = None
    for array in arrays:
        roi = array.spec.roi
        common = roi if common is None else common.intersect(roi)
    if common is None or common.empty:
        return None
    return tuple(b + s / 2 for b, s in zip(common.begin, common.shape, strict=True))


def _is_spatial(array: Array) -> bool:
    spec = array.spec
    return (not spec.nonspatial and spec.roi is not None and spec.voxel_size is not None
            and spec.roi.dims >= 2 and not spec.roi.empty)


def array_panel(name: str, array: Array, centre: Sequence[float] | None = None) -> Panel:
    """A panel of ``array``'s slice through world point ``centre`` (default: its middle)
    along every spatial axis but the last two, channel 0 (or RGB for three float channels).

    On a lazy array, only that slice is computed (a materialization boundary for the slice).

    Example:
        >>> a = Array(np.arange(24.0).reshape(2, 3, 4), ArraySpec(roi=Roi((0, 0, 0), (2, 3, 4)),
        ...           voxel_size=(1, 1, 1)))
        >>> array_panel("RAW", a).image.tolist()[0]
        [12.0, 13.0, 14.0, 15.0]
    """
    spec = array.spec
    dims = spec.roi.dims
    voxel_size, begin = spec.voxel_size, spec.roi.begin
    shape = spec.roi.shape / voxel_size
    where = []
    for d in range(dims - 2):
        world = centre[d] if centre is not None else begin[d] + spec.roi.shape[d] / 2
        where.append(int(np.clip((world - begin[d]) // voxel_size[d], 0, shape[d] - 1)))
    leading = array.data.ndim - dims
    rgb = leading == 1 and array.data.shape[0] == 3 and np.dtype(array.data.dtype).kind == "f"
    channels = (slice(None),) if rgb else (0,) * leading
    data = array.data[channels + tuple(where)]
    image = np.asarray(data.compute() if isinstance(data, da.Array) else data)
    if rgb:
        kind, image = "rgb", np.moveaxis(image, 0, -1)
    else:
        kind = array_kind(image, spec.interpolatable)
    extent = (float(begin[-1]), float(spec.roi.end[-1]), float(spec.roi.end[-2]),
              float(begin[-2]))
    at = ", ".join(f"{'zyx'[-dims:][d] if dims <= 3 else d}={begin[d] + i * voxel_size[d]}"
                   for d, i in enumerate(where))
    channel_note = "[0]" * leading if not rgb else " (rgb)"
    title = f"{name}{channel_note}" + (f" at {at}" if at else "")
    return Panel(title, image, kind, extent)


def batch_panels(batch: Batch) -> list[Panel]:
    """One panel per spatial array of ``batch``, sliced through the centre their ROIs share."""
    arrays = {key: array for key, array in batch.arrays.items() if _is_spatial(array)}
    centre = common_centre(list(arrays.values()))
    return [array_panel(str(key), array, centre) for key, array in arrays.items()]


def _draw(axes, panel: Panel) -> None:
    if panel.kind == "labels":
        image, options = label_colours(panel.image), {}
    elif panel.kind == "rgb":
        low, high = np.nanmin(panel.image), np.nanmax(panel.image)
        image, options = (panel.image - low) / ((high - low) or 1.0), {}
    else:
        image = panel.image.astype(np.float64)
        low, high = (0.0, 1.0) if panel.kind == "mask" else (np.nanmin(image), np.nanmax(image))
        options = {"cmap": "gray", "vmin": low, "vmax": high if high > low else low + 1}
    axes.imshow(image, extent=panel.extent, interpolation="nearest", **options)
    axes.set_title(panel.title, fontsize=8)
    axes.tick_params(labelsize=6)


def _outline(axes, extent, inner) -> None:
    """Outline ``inner`` (the row's smallest ROI, e.g. the network's output) on a larger
    panel, so context and output line up by eye."""
    if extent is None or inner is None or extent == inner:
        return
    from matplotlib.patches import Rectangle

    x0, x1, y1, y0 = inner
    axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#ffb000",
                             linewidth=1.0, linestyle="--"))


def grid_figure(rows: Sequence[tuple[str, Sequence[Panel]]]):
    """A matplotlib ``Figure`` with one row of panels per ``(row title, panels)``.

    Drawn without pyplot (no GUI backend, safe in threads and headless).

    Example:
        >>> figure = grid_figure([("batch 0", batch_panels(batch))])  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    columns = max([len(panels) for _, panels in rows] + [1])
    figure = Figure(figsize=(PANEL_INCHES * columns, PANEL_INCHES * max(len(rows), 1) + 0.3),
                    layout="constrained")
    grid = figure.subplots(max(len(rows), 1), columns, squeeze=False)
    for r, (row_title, panels) in enumerate(rows):
        smallest = min((p.extent for p in panels if p.extent is not None), default=None,
                       key=lambda e: abs((e[1] - e[0]) * (e[2] - e[3])))
        for c in range(columns):
            axes = grid[r][c]
            if c < len(panels):
                _draw(axes, panels[c])
                _outline(axes, panels[c].extent, smallest)
            else:
                axes.axis("off")
        grid[r][0].set_ylabel(row_title, fontsize=9)
    return figure


def figure_png(figure, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib ``figure``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def batch_png(batch: Batch) -> bytes | None:
    """A PNG of ``batch``'s mid-slices (one row), or None when it has no spatial array."""
    panels = batch_panels(batch)
    if not panels:
        return None
    return figure_png(grid_figure([(f"batch {batch.id}", panels)]))


def batch_html(batch: Batch) -> str:
    """HTML for Jupyter: a table of the batch's keys (shape, dtype, ROI, voxel size, lazy or
    numpy) and the PNG of its mid-slices."""
    cells = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                    ("key", "shape", "dtype", "ROI", "voxel size", "data"))
    rows = [f"<tr>{cells}</tr>"]
    for key, array in batch.arrays.items():
        spec = array.spec
        values = (key, tuple(array.data.shape), array.data.dtype,
                  "nonspatial" if spec.nonspatial else spec.roi, spec.voxel_size,
                  "dask (lazy)" if array.is_lazy else "numpy")
        rows.append("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                                     for v in values) + "</tr>")
    for key, graph in batch.graphs.items():
        size = f"{len(graph)} nodes" if hasattr(graph, "__len__") else ""
        rows.append(f"<tr><td>{html.escape(str(key))}</td><td colspan=5>"
                    f"{html.escape(type(graph).__name__)} {size}</td></tr>")
    extra = [f"{name} {value:.4g}" for name, value in (("loss", batch.loss),
             ("iteration", batch.iteration)) if isinstance(value, (int, float))]
    heading = f"<b>Batch {batch.id}</b>" + (f" ({', '.join(extra)})" if extra else "")
    png = batch_png(batch)
    image = ("" if png is None else
             f"<br><img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>")
    return f"<div>{heading}<table>{''.join(rows)}</table>{image}</div>"
