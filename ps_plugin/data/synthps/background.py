"""Scene backgrounds: wall and floor of the camera, clutter shapes (some in clothing colours,
some person-like upright blobs), and occluding objects drawn in front of people.

Wall kinds: plain (style a), sky (a vertical gradient), facade (a grid of windows). Floor kinds:
plain, tiles, planks (style a), asphalt (noisy, a dashed lane line), grass (green speckle),
paving (brick courses)."""
import cv2
import numpy as np

from .palette import CLOTHING_COLOURS
from .textures import pattern_fill

_CLOTHING_RGB = tuple(CLOTHING_COLOURS.values())


def _jitter(rgb, rng, amount=25):
    return tuple(float(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _clutter_colour(rng):
    """Half of the clutter takes a clothing colour, so colour alone does not mark a person."""
    if rng.random() < 0.5:
        return _CLOTHING_RGB[int(rng.integers(len(_CLOTHING_RGB)))]
    return tuple(float(v) for v in rng.integers(30, 230, size=3))


def _draw_wall(image, camera, rng):
    wall = image[: camera.horizon]
    wall[:] = _jitter(camera.wall_rgb, rng)
    rows = wall.shape[0]
    if camera.wall_style == "sky" and rows > 0:
        wall *= np.linspace(1.25, 0.85, rows, dtype=np.float32)[:, None, None]
    elif camera.wall_style == "facade":
        window = tuple(0.45 * c for c in camera.wall_rgb)
        step = max(camera.width // 12, 8)
        for y in range(step // 3, rows - step // 2, step):
            for x in range(step // 4, camera.width - step // 2, step):
                cv2.rectangle(wall, (x, y), (x + step // 2, y + step // 2), window, -1)


def _draw_floor(image, camera, rng):
    floor = image[camera.horizon :]
    floor[:] = _jitter(camera.floor_rgb, rng)
    rows = floor.shape[0]
    if camera.floor_style == "tiles":
        darker = tuple(0.8 * c for c in camera.floor_rgb)
        for k in range(1, 12):
            y = int(rows * (k / 12) ** 1.6)
            cv2.line(floor, (0, y), (camera.width, y), darker, 1)
        for x in np.linspace(-camera.width, 2 * camera.width, 15):
            cv2.line(floor, (int(camera.width / 2 + (x - camera.width / 2) * 0.15), 0), (int(x), rows), darker, 1)
    elif camera.floor_style == "planks":
        floor *= 0.9 + 0.1 * np.sin(np.arange(camera.width, dtype=np.float32) / 9.0)[None, :, None]
    elif camera.floor_style == "asphalt":
        floor *= rng.uniform(0.8, 1.2, size=floor.shape[:2] + (1,)).astype(np.float32)
        lane_x = int(camera.width * rng.uniform(0.3, 0.7))
        for y in range(0, rows, 24):
            cv2.line(floor, (lane_x, y), (lane_x, y + 12), (225.0, 215.0, 170.0), max(rows // 60, 2))
    elif camera.floor_style == "grass":
        floor *= np.asarray((0.55, 1.1, 0.45), dtype=np.float32)
        floor *= rng.uniform(0.75, 1.25, size=floor.shape[:2] + (1,)).astype(np.float32)
    elif camera.floor_style == "paving":
        darker = tuple(0.7 * c for c in camera.floor_rgb)
        for k, y in enumerate(range(0, rows, 10)):
            cv2.line(floor, (0, y), (camera.width, y), darker, 1)
            for x in range(10 * (k % 2), camera.width, 20):
                cv2.line(floor, (x, y), (x, y + 10), darker, 1)


def _draw_clutter(image, camera, rng):
    """Shapes on the wall and floor: rectangles, circles, textured panels, upright blobs."""
    for _ in range(int(rng.integers(6, 16))):
        kind = int(rng.integers(4))
        x, y = int(rng.integers(camera.width)), int(rng.integers(camera.height))
        size = int(rng.integers(10, max(camera.height // 4, 12)))
        colour = _clutter_colour(rng)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 1.5))), colour, -1)
        elif kind == 1:
            cv2.circle(image, (x, y), size // 2, colour, -1)
        elif kind == 2:
            _paste_panel(image, x, y, size, colour, rng)
        else:
            cv2.ellipse(image, (x, y), (max(size // 6, 2), size // 2), 0, 0, 360, colour, -1)


def _paste_panel(image, x, y, size, colour, rng):
    """A textured rectangle (stripes / checks / dots) clipped to the image."""
    height, width = image.shape[:2]
    x1, y1 = min(x + size, width), min(y + size, height)
    if x1 <= x or y1 <= y:
        return
    pattern = ("stripes", "checks", "dots")[int(rng.integers(3))]
    second = _clutter_colour(rng)
    image[y:y1, x:x1] = pattern_fill(y1 - y, x1 - x, pattern, colour, second, rng.uniform(6, 20))


def render_background(camera, rng):
    """float32 [H, W, 3] background of one shot of `camera`."""
    image = np.empty((camera.height, camera.width, 3), dtype=np.float32)
    _draw_wall(image, camera, rng)
    _draw_floor(image, camera, rng)
    _draw_clutter(image, camera, rng)
    return image


def draw_occluder(image, owner, box, rng):
    """Draw an object (crate, bin, bench) in front of the lower part of `box` (x1, y1, x2, y2).

    It covers 20-45% of the box height and 40-100% of its width; `owner` pixels under it are set
    to -2 (object). Returns nothing; edits `image` and `owner` in place.
    """
    x1, y1, x2, y2 = box
    box_width, box_height = x2 - x1, y2 - y1
    cover_w = int(box_width * rng.uniform(0.4, 1.0))
    cover_h = int(box_height * rng.uniform(0.2, 0.45))
    left = int(x1 + rng.uniform(-0.3, 1.0) * (box_width - cover_w))
    bottom = int(min(y2 + rng.integers(0, 4), image.shape[0]))
    top = bottom - cover_h
    left, right = max(left, 0), min(left + cover_w, image.shape[1])
    if right <= left or cover_h <= 0:
        return
    colour = _clutter_colour(rng)
    image[top:bottom, left:right] = colour
    image[top : top + max(cover_h // 8, 1), left:right] *= 0.7
    owner[top:bottom, left:right] = -2
