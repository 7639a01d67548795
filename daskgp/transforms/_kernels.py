"""Compiled kernels of the per-voxel work: the warp's coordinates and sampling, and intensity.

numba kernels evaluate coordinates (affine part + separable B-spline + section shifts) and
sample nearest (any dtype, exact) or trilinear; OpenCV's ``remap`` samples slice-wise bilinear;
``scale_shift`` is IntensityAugment's range check, scale, shift and clip in one pass;
``subdivide`` refines B-spline coefficients for the bounds (``SplineHull``).
"""

from __future__ import annotations

import math

import cv2
import numba
import numpy as np

# dask runs one task per core; OpenCV's own thread pool would oversubscribe the cores.
cv2.setNumThreads(1)
# cv2.remap indexes with 16-bit signed integers internally.
_REMAP_LIMIT = 32767

_jit = numba.njit(nogil=True, cache=True)


@_jit
def slab_coordinates(offset, matrix, positions0, positions1, positions2, active, coefficients,
                     index0, weight0, index1, weight1, index2, weight2, shifted, shifts,
                     relative, components, out):
    """Source coordinates (float32) of a box of output voxels of a 3-axis grid: the axes
    ``components[0]`` to ``components[1] - 1`` into ``out`` (``(count, n0, n1, n2)``; grids
    of fewer axes are padded in front); ``ElasticTransform``'s arithmetic, voxel by voxel.

    Per axis ``d``: ``float32(offset[d] + sum_e matrix[d, e] * positions_e)`` (float64, ``e``
    in order), then, if ``active[d]``, plus the spline (float32, contracted along axis 0, 2,
    then 1, taps in order), then, if ``shifted[d]``, plus ``shifts[i0, d]``, minus
    ``relative[d]``. The last contraction runs along rows, which vectorizes.
    """
    n0, n1, n2 = positions0.shape[0], positions1.shape[0], positions2.shape[0]
    k1, k2 = coefficients.shape[2], coefficients.shape[3]
    first = np.empty((k1, k2), np.float32)
    second = np.empty((k1, n2), np.float32)
    row = np.empty(n2, np.float32)
    spline = np.empty(n2, np.float32)
    # Only the coefficient rows and columns that the box's taps reach are contracted (a tile
    # of a bound's search reaches a few of them): the same arithmetic for those, less work.
    a_low, a_high = k1, 0
    for i1 in range(n1):
        for t in range(index1.shape[1]):
            a_low = min(a_low, index1[i1, t])
            a_high = max(a_high, index1[i1, t] + 1)
    b_low, b_high = k2, 0
    for i2 in range(n2):
        for t in range(index2.shape[1]):
            b_low = min(b_low, index2[i2, t])
            b_high = max(b_high, index2[i2, t] + 1)
    for d in range(components[0], components[1]):
        target = out[d - components[0]]
        for i0 in range(n0):
            if active[d]:
                for a in range(a_low, a_high):
                    for b in range(b_low, b_high):
                        value = coefficients[d, index0[i0, 0], a, b] * weight0[i0, 0]
                        for t in range(1, index0.shape[1]):
                            value += coefficients[d, index0[i0, t], a, b] * weight0[i0, t]
                        first[a, b] = value
                for a in range(a_low, a_high):
                    for i2 in range(n2):
                        value = first[a, index2[i2, 0]] * weight2[i2, 0]
                        for t in range(1, index2.shape[1]):
                            value += first[a, index2[i2, t]] * weight2[i2, t]
                        second[a, i2] = value
            base0 = offset[d] + matrix[d, 0] * positions0[i0]
            step = matrix[d, 2]
            shift = shifts[i0, d] if shifted[d] else np.float32(0)
            rel = relative[d]
            for i1 in range(n1):
                base1 = base0 + matrix[d, 1] * positions1[i1]
                if active[d] and index1.shape[1] == 4 and not shifted[d]:
                    # The usual case (cubic taps, no shift) in one pass per row, which
                    # vectorizes: the same operations per voxel, in the same order.
                    t0, t1, t2, t3 = index1[i1, 0], index1[i1, 1], index1[i1, 2], index1[i1, 3]
                    w0, w1, w2, w3 = weight1[i1, 0], weight1[i1, 1], weight1[i1, 2], weight1[i1, 3]
                    for i2 in range(n2):
                        value = second[t0, i2] * w0
                        value += second[t1, i2] * w1
                        value += second[t2, i2] * w2
                        value += second[t3, i2] * w3
                        target[i0, i1, i2] = (np.float32(base1 + step * positions2[i2])
                                              + value) - rel
                    continue
                for i2 in range(n2):
                    row[i2] = np.float32(base1 + step * positions2[i2])
                if active[d]:
                    tap, weight = index1[i1, 0], weight1[i1, 0]
                    for i2 in range(n2):
                        spline[i2] = second[tap, i2] * weight
                    for t in range(1, index1.shape[1]):
                        tap, weight = index1[i1, t], weight1[i1, t]
                        for i2 in range(n2):
                            spline[i2] += second[tap, i2] * weight
                    for i2 in range(n2):
                        row[i2] = row[i2] + spline[i2]
                if shifted[d]:
                    for i2 in range(n2):
                        target[i0, i1, i2] = (row[i2] + shift) - rel
                else:
                    for i2 in range(n2):
                        target[i0, i1, i2] = row[i2] - rel


@_jit
def visit_tiles(offset, matrix, positions0, positions1, positions2, active, coefficients,
                index0, weight0, index1, weight1, index2, weight2, shifted, shifts, relative,
                begins, ends, tile_low, tile_high, order, low, high, done):
    """The extremes of the coordinates (``slab_coordinates``' bits, 3 axes) of the tiles
    ``order`` of a box, into ``low`` and ``high`` (per axis): tile ``n`` spans
    ``[begins[n], ends[n])`` (box voxels) and is evaluated, and marked ``done``, only if the
    bounds of its values (``tile_low[:, n]``, ``tile_high[:, n]``) could still move the floor
    of ``low`` or the ceil of ``high`` on some axis; the floors and ceils are then those of
    all the tiles' values."""
    components = np.array([0, 3])
    for number in order:
        if done[number]:
            continue
        widens = False
        for d in range(3):
            if (math.floor(tile_low[d, number]) < math.floor(low[d])
                    or math.ceil(tile_high[d, number]) > math.ceil(high[d])):
                widens = True
        if not widens:
            continue
        done[number] = True
        b0, b1, b2 = begins[number, 0], begins[number, 1], begins[number, 2]
        e0, e1, e2 = ends[number, 0], ends[number, 1], ends[number, 2]
        values = np.empty((3, e0 - b0, e1 - b1, e2 - b2), np.float32)
        slab_coordinates(offset, matrix, positions0[b0:e0], positions1[b1:e1],
                         positions2[b2:e2], active, coefficients, index0[b0:e0],
                         weight0[b0:e0], index1[b1:e1], weight1[b1:e1], index2[b2:e2],
                         weight2[b2:e2], shifted, shifts[b0:e0], relative, components, values)
        for d in range(3):
            smallest, largest = low[d], high[d]
            for value in values[d].ravel():
                smallest = min(smallest, np.float64(value))
                largest = max(largest, np.float64(value))
            low[d], high[d] = smallest, largest


# Output voxels per tile edge of the 3D kernels: a tile's source footprint stays in cache
# however the rotation turns the rows.
_TILE = 16
_ONE = np.float32(1.0)


@_jit
def nearest(data, coordinates, out):
    """``out[i] = data[floor(c + 0.5)]`` at the coordinates ``coordinates[:, i]`` (3 axes),
    0 where a coordinate lies outside ``[0, size - 1]``: ``map_coordinates(order=0,
    mode="constant")``, exact for every dtype (no float64 round trip). Tile by tile."""
    s0, s1, s2 = data.shape
    n0, n1, n2 = out.shape
    for t1 in range(0, n1, _TILE):
        for t2 in range(0, n2, _TILE):
            for i0 in range(n0):
                for i1 in range(t1, min(t1 + _TILE, n1)):
                    for i2 in range(t2, min(t2 + _TILE, n2)):
                        c0 = np.float64(coordinates[0, i0, i1, i2])
                        c1 = np.float64(coordinates[1, i0, i1, i2])
                        c2 = np.float64(coordinates[2, i0, i1, i2])
                        if (c0 >= 0.0 and c0 <= s0 - 1 and c1 >= 0.0 and c1 <= s1 - 1
                                and c2 >= 0.0 and c2 <= s2 - 1):
                            out[i0, i1, i2] = data[math.floor(c0 + 0.5), math.floor(c1 + 0.5),
                                                   math.floor(c2 + 0.5)]
                        else:
                            out[i0, i1, i2] = 0


@_jit
def nearest_section(image, rows, columns, out):
    """``nearest`` in one section: ``image`` 2D, ``rows``/``columns``/``out`` of one shape."""
    s1, s2 = image.shape
    for i1 in range(out.shape[0]):
        for i2 in range(out.shape[1]):
            c1 = np.float64(rows[i1, i2])
            c2 = np.float64(columns[i1, i2])
            if c1 >= 0.0 and c1 <= s1 - 1 and c2 >= 0.0 and c2 <= s2 - 1:
                out[i1, i2] = image[math.floor(c1 + 0.5), math.floor(c2 + 0.5)]
            else:
                out[i1, i2] = 0


@_jit
def _corner(data, i0, i1, i2, factor, normalize):
    """A source value, normalized (``float32(value) * factor``, ``Normalization``'s bits)."""
    if normalize:
        return np.float32(data[i0, i1, i2]) * factor
    return data[i0, i1, i2]


@_jit
def _cell(coordinates, i0, i1, i2, s0, s1, s2):
    """The trilinear cell of output voxel ``(i0, i1, i2)`` in a source of shape
    ``(s0, s1, s2)``: whether its coordinate lies inside ``[0, size - 1]`` on every axis, the
    lower and upper corners (the upper clamped to the last voxel) and the fractions (float64),
    as ``map_coordinates(order=1)`` takes them."""
    c0 = np.float64(coordinates[0, i0, i1, i2])
    c1 = np.float64(coordinates[1, i0, i1, i2])
    c2 = np.float64(coordinates[2, i0, i1, i2])
    if not (c0 >= 0.0 and c0 <= s0 - 1 and c1 >= 0.0 and c1 <= s1 - 1
            and c2 >= 0.0 and c2 <= s2 - 1):
        return False, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0
    a0, a1, a2 = math.floor(c0), math.floor(c1), math.floor(c2)
    return (True, a0, a1, a2, min(a0 + 1, s0 - 1), min(a1 + 1, s1 - 1), min(a2 + 1, s2 - 1),
            c0 - a0, c1 - a1, c2 - a2)


@_jit
def trilinear(data, coordinates, out, factor=_ONE, normalize=False):
    """Trilinear interpolation (float64 weights) of ``data`` at ``coordinates`` (3 axes), 0
    where a coordinate lies outside ``[0, size - 1]``: ``map_coordinates(order=1,
    mode="constant")`` for float data. With ``normalize``, each source value is
    ``float32(value) * factor`` first (a fused ``Normalize``). Tile by tile."""
    s0, s1, s2 = data.shape
    n0, n1, n2 = out.shape
    for t1 in range(0, n1, _TILE):
        for t2 in range(0, n2, _TILE):
            for i0 in range(n0):
                for i1 in range(t1, min(t1 + _TILE, n1)):
                    for i2 in range(t2, min(t2 + _TILE, n2)):
                        inside, a0, a1, a2, b0, b1, b2, f0, f1, f2 = _cell(
                            coordinates, i0, i1, i2, s0, s1, s2)
                        if not inside:
                            out[i0, i1, i2] = 0
                            continue
                        g0, g1, g2 = 1.0 - f0, 1.0 - f1, 1.0 - f2
                        low = ((_corner(data, a0, a1, a2, factor, normalize) * g2
                                + _corner(data, a0, a1, b2, factor, normalize) * f2) * g1
                               + (_corner(data, a0, b1, a2, factor, normalize) * g2
                                  + _corner(data, a0, b1, b2, factor, normalize) * f2) * f1)
                        high = ((_corner(data, b0, a1, a2, factor, normalize) * g2
                                 + _corner(data, b0, a1, b2, factor, normalize) * f2) * g1
                                + (_corner(data, b0, b1, a2, factor, normalize) * g2
                                   + _corner(data, b0, b1, b2, factor, normalize) * f2) * f1)
                        out[i0, i1, i2] = low * g0 + high * f0


@_jit
def _round_to(t, low, high, unsigned):
    """map_coordinates' rounding of a float64 result to an integer output type: half up
    (unsigned: negatives to 0), half away from zero for signed, clipped to [low, high]."""
    if unsigned:
        t = t + 0.5 if t > 0 else 0.0
    else:
        t = t + 0.5 if t > 0 else t - 0.5
    return min(max(t, low), high)


@_jit
def bilinear_integer_section(image, rows, columns, out):
    """Bilinear interpolation of an integer 2D ``image`` into integer ``out``, as
    ``map_coordinates(order=1, mode="constant")`` computes it: corner terms
    ``value * weight_row * weight_column`` summed in C order in float64, rounded half up
    (unsigned: negatives to 0) and clipped to the output type; 0 outside ``[0, size - 1]``."""
    s1, s2 = image.shape
    info = np.iinfo(out.dtype)
    low, high = np.float64(info.min), np.float64(info.max)
    unsigned = info.min == 0
    for i1 in range(out.shape[0]):
        for i2 in range(out.shape[1]):
            c1 = np.float64(rows[i1, i2])
            c2 = np.float64(columns[i1, i2])
            if not (c1 >= 0.0 and c1 <= s1 - 1 and c2 >= 0.0 and c2 <= s2 - 1):
                out[i1, i2] = 0
                continue
            a1, a2 = math.floor(c1), math.floor(c2)
            f1, f2 = c1 - a1, c2 - a2
            b1, b2 = min(a1 + 1, s1 - 1), min(a2 + 1, s2 - 1)
            t = 0.0
            t += image[a1, a2] * (1.0 - f1) * (1.0 - f2)
            t += image[a1, b2] * (1.0 - f1) * f2
            t += image[b1, a2] * f1 * (1.0 - f2)
            t += image[b1, b2] * f1 * f2
            out[i1, i2] = _round_to(t, low, high, unsigned)


@_jit
def trilinear_integer(data, coordinates, out):
    """Trilinear interpolation of an integer 3D ``data`` at ``coordinates`` into integer
    ``out``, as ``map_coordinates(order=1, mode="constant")`` computes it: the 8 corner terms
    ``value * weight0 * weight1 * weight2`` summed in C order in float64, then rounded as
    there (``bilinear_integer_section``'s rule); 0 outside ``[0, size - 1]``. Tile by tile."""
    s0, s1, s2 = data.shape
    n0, n1, n2 = out.shape
    info = np.iinfo(out.dtype)
    low, high = np.float64(info.min), np.float64(info.max)
    unsigned = info.min == 0
    for t1 in range(0, n1, _TILE):
        for t2 in range(0, n2, _TILE):
            for i0 in range(n0):
                for i1 in range(t1, min(t1 + _TILE, n1)):
                    for i2 in range(t2, min(t2 + _TILE, n2)):
                        inside, a0, a1, a2, b0, b1, b2, f0, f1, f2 = _cell(
                            coordinates, i0, i1, i2, s0, s1, s2)
                        if not inside:
                            out[i0, i1, i2] = 0
                            continue
                        g0, g1, g2 = 1.0 - f0, 1.0 - f1, 1.0 - f2
                        t = 0.0
                        t += data[a0, a1, a2] * g0 * g1 * g2
                        t += data[a0, a1, b2] * g0 * g1 * f2
                        t += data[a0, b1, a2] * g0 * f1 * g2
                        t += data[a0, b1, b2] * g0 * f1 * f2
                        t += data[b0, a1, a2] * f0 * g1 * g2
                        t += data[b0, a1, b2] * f0 * g1 * f2
                        t += data[b0, b1, a2] * f0 * f1 * g2
                        t += data[b0, b1, b2] * f0 * f1 * f2
                        out[i0, i1, i2] = _round_to(t, low, high, unsigned)


def remappable(image: np.ndarray) -> bool:
    """Whether OpenCV's ``remap`` takes ``image`` (2D float32 or float64 within its limits)."""
    return (image.ndim == 2 and image.dtype in (np.float32, np.float64)
            and max(image.shape) < _REMAP_LIMIT)


def bilinear(image: np.ndarray, rows: np.ndarray, columns: np.ndarray,
             out: np.ndarray) -> None:
    """Bilinear interpolation of a 2D float ``image`` at ``(rows, columns)`` (float32, all
    within ``[0, size - 1]``) into ``out``, with ``cv2.remap``.

    Within the image it equals ``map_coordinates(order=1)`` to float32 rounding (OpenCV 5
    interpolates float maps in floating point); beyond its edges it would blend with 0 where
    map_coordinates gives 0, so callers keep coordinates inside.

    Example:
        >>> image = np.arange(4, dtype=np.float32).reshape(2, 2)
        >>> out = np.empty((1, 1), np.float32)
        >>> bilinear(image, np.array([[0.5]], np.float32), np.array([[0.5]], np.float32), out)
        >>> out.tolist()
        [[1.5]]
    """
    if image.strides[1] != image.itemsize or image.strides[0] < image.shape[1] * image.itemsize:
        image = np.ascontiguousarray(image)  # OpenCV takes rows apart, not columns
    cv2.remap(image, columns, rows, cv2.INTER_LINEAR, dst=out,
              borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@_jit
def scale_shift(block, mean, scale, shift, clip, out):
    """``out = (block - mean) * scale + (mean + shift)`` in the block's precision, clipped to
    [0, 1] when ``clip``; one pass, the same arithmetic (and bits) as the numpy expression.
    Returns False when ``clip`` and a value lies outside [0, 1] (``out`` is then not to be
    used). Branch-free, so that the loop vectorizes."""
    values, result = block.ravel(), out.ravel()
    offset = mean + shift
    if not clip:
        for i in range(values.shape[0]):
            result[i] = (values[i] - mean) * scale + offset
        return True
    outside = 0
    for i in range(values.shape[0]):
        value = values[i]
        outside |= (value < 0) | (value > 1)
        result[i] = min(max((value - mean) * scale + offset, 0), 1)
    return outside == 0


@_jit
def lane_sum(values):
    """The float64 sum of the 1D ``values`` in eight interleaved partial sums (element ``i``
    into sum ``i % 8``), combined pairwise, then the remainder: a fixed order (the same bits
    wherever the same values are summed), and eight independent additions at a time."""
    n = values.shape[0]
    full = n - n % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for i in range(0, full, 8):
        a0 += values[i]
        a1 += values[i + 1]
        a2 += values[i + 2]
        a3 += values[i + 3]
        a4 += values[i + 4]
        a5 += values[i + 5]
        a6 += values[i + 6]
        a7 += values[i + 7]
    rest = 0.0
    for i in range(full, n):
        rest += values[i]
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + rest


@_jit
def row_sums(rows, out):
    """``out[r] = lane_sum(rows[r])`` for each row of the 2D C-contiguous ``rows``."""
    for r in range(rows.shape[0]):
        out[r] = lane_sum(rows[r])


@_jit
def scale_shift_in_place(values, mean, scale, shift, clip):
    """``scale_shift`` of the 1D ``values`` into itself (one array, so that the loop vectorizes:
    with two arguments that alias, the compiled loop falls back to one value at a time).
    Returns False when ``clip`` and a value lay outside [0, 1] (``values`` is then not to be
    used)."""
    offset = mean + shift
    if not clip:
        for i in range(values.shape[0]):
            values[i] = (values[i] - mean) * scale + offset
        return True
    outside = 0
    for i in range(values.shape[0]):
        value = values[i]
        outside |= (value < 0) | (value > 1)
        values[i] = min(max((value - mean) * scale + offset, 0), 1)
    return outside == 0


@_jit
def subdivide(coefficients, out):
    """Cubic B-spline coefficients on knots twice as dense along axis 1 of ``coefficients``
    (``(a, n, b)``, float64) into ``out`` (``(a, 2 * n - 5, b)``): even entries
    ``(c[i] + 6 * c[i + 1] + c[i + 2]) / 8``, odd ones ``(c[i + 1] + c[i + 2]) / 2``, in
    that order (numpy's arithmetic and bits, without its temporaries and axis moves)."""
    n, m = coefficients.shape[1], coefficients.shape[2]
    if m == 1:  # the last axis: along rows
        c, r = coefficients[:, :, 0], out[:, :, 0]
        for a in range(c.shape[0]):
            for i in range(n - 2):
                r[a, 2 * i] = (c[a, i] + 6.0 * c[a, i + 1] + c[a, i + 2]) / 8.0
            for i in range(n - 3):
                r[a, 2 * i + 1] = (c[a, i + 1] + c[a, i + 2]) / 2.0
        return
    for a in range(coefficients.shape[0]):
        for i in range(n - 2):
            for b in range(m):
                out[a, 2 * i, b] = (coefficients[a, i, b] + 6.0 * coefficients[a, i + 1, b]
                                    + coefficients[a, i + 2, b]) / 8.0
        for i in range(n - 3):
            for b in range(m):
                out[a, 2 * i + 1, b] = (coefficients[a, i + 1, b]
                                        + coefficients[a, i + 2, b]) / 2.0
