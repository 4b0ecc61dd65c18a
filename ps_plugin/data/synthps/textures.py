"""Pattern fills for clothing and clutter: plain, stripes, checks, dots.

All fills are float32 [H, W, 3] RGB images in 0..255, computed from pixel coordinates only (no
randomness), so the same appearance renders the same pattern at the same scale.
"""
import numpy as np


def pattern_fill(height, width, pattern, base_rgb, second_rgb, period, origin=(0, 0)):
    """[height, width, 3] float32 fill of `pattern` with a cycle of `period` pixels (>= 2).

    `origin` (row, column) is the fill's top-left position in the pattern's frame, so a crop of a
    larger fill can be computed on its own.

    stripes: horizontal bands; checks: alternating squares; dots: discs of radius period/4 on a
    square grid; plain: `base_rgb` everywhere.
    """
    base = np.asarray(base_rgb, dtype=np.float32)
    second = np.asarray(second_rgb, dtype=np.float32)
    fill = np.empty((height, width, 3), dtype=np.float32)
    fill[:] = base
    period = max(float(period), 2.0)
    ys = np.arange(origin[0], origin[0] + height, dtype=np.float32)[:, None]
    xs = np.arange(origin[1], origin[1] + width, dtype=np.float32)[None, :]
    if pattern == "plain":
        return fill
    if pattern == "stripes":
        second_mask = np.broadcast_to((ys % period) < period / 2, (height, width))
    elif pattern == "checks":
        second_mask = ((ys // (period / 2)) + (xs // (period / 2))) % 2 == 1
    elif pattern == "dots":
        dy = (ys % period) - period / 2
        dx = (xs % period) - period / 2
        second_mask = dy**2 + dx**2 < (period / 4) ** 2
    else:
        raise ValueError(f"Unknown pattern '{pattern}': expected plain, stripes, checks or dots.")
    fill[second_mask] = second
    return fill


def cylinder_shading(width, centre_x, half_width, strength=0.25):
    """float32 [width] brightness factors: 1 at `centre_x`, 1 - strength at +-half_width and beyond."""
    xs = np.arange(width, dtype=np.float32)
    distance = np.clip(np.abs(xs - centre_x) / max(half_width, 1.0), 0.0, 1.0)
    return 1.0 - strength * distance**2
