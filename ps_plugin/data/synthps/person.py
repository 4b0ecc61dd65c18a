"""Rendering one person as an articulated figure: head, hair/hat, torso, arms, legs, accessory.

The figure is drawn as a label map at twice the target size (one label per body part), coloured
from the `Appearance` (patterns on clothing, cylinder shading), then area-downsampled, which
anti-aliases the edges. All vertical positions are fractions of the full height: the head (or hat)
touches the top row and the soles the bottom row, so the sprite's height is the person's height.
"""
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .palette import CLOTHING_COLOURS, HAIR_COLOURS, SHOE_COLOURS, SKIN_TONES
from .textures import cylinder_shading, pattern_fill

SUPERSAMPLE = 2
SKIN, HAIR, UPPER, LOWER, SHOES, HAT, ACCESSORY = range(1, 8)
# Canvas width as a fraction of the height (room for swinging arms, stride and a bag).
CANVAS_WIDTH = 0.72
HIP_Y, ANKLE_Y, SHOULDER_Y = 0.52, 0.955, 0.17


@dataclass(frozen=True)
class Pose:
    """Per-appearance articulation (degrees from vertical, positive = outward) and facing."""

    left_leg: float
    right_leg: float
    left_arm: float
    right_arm: float
    left_elbow: float
    right_elbow: float
    mirrored: bool


@dataclass(frozen=True)
class Sprite:
    """A rendered person: `rgb` float32 [H, W, 3] in 0..255 and `alpha` float32 [H, W] in 0..1."""

    rgb: np.ndarray
    alpha: np.ndarray


def sample_pose(rng):
    """A standing or walking pose."""
    stride = float(rng.uniform(0.0, 14.0))
    return Pose(
        left_leg=stride + float(rng.uniform(-2, 2)),
        right_leg=stride + float(rng.uniform(-2, 2)),
        left_arm=float(rng.uniform(4, 24)),
        right_arm=float(rng.uniform(4, 24)),
        left_elbow=float(rng.uniform(-25, 12)),
        right_elbow=float(rng.uniform(-25, 12)),
        mirrored=bool(rng.random() < 0.5),
    )


class _Canvas:
    """Label map [S, W] uint8 with drawing in height-fraction coordinates around the body axis."""

    def __init__(self, size):
        self.size = size
        self.width = int(math.ceil(CANVAS_WIDTH * size)) | 1
        self.centre = self.width // 2
        self.labels = np.zeros((size, self.width), dtype=np.uint8)

    def point(self, fx, fy):
        return (int(round(self.centre + fx * self.size)), int(round(fy * (self.size - 1))))

    def length(self, fraction):
        return max(int(round(fraction * self.size)), 1)

    def polygon(self, points, label):
        cv2.fillPoly(self.labels, [np.array([self.point(x, y) for x, y in points], dtype=np.int32)], label)

    def ellipse(self, fx, fy, rx, ry, label, start=0, end=360):
        cv2.ellipse(self.labels, self.point(fx, fy), (self.length(rx), self.length(ry)), 0, start, end, label, -1)

    def limb(self, p0, p1, thickness, label):
        cv2.line(self.labels, self.point(*p0), self.point(*p1), label, self.length(thickness))

    def rectangle(self, x0, y0, x1, y1, label):
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], label)


def _end_point(start, length, degrees, side):
    """End of a segment from `start` hanging at `degrees` from vertical, outward on `side` (+-1)."""
    radians = math.radians(degrees)
    return (start[0] + side * length * math.sin(radians), start[1] + length * math.cos(radians))


def _draw_legs(canvas, appearance, pose, bw):
    hip_half = 0.05 * bw
    ankles = []
    for side, angle in ((-1, pose.left_leg), (1, pose.right_leg)):
        hip = (side * hip_half, HIP_Y)
        length = (ANKLE_Y - HIP_Y) / math.cos(math.radians(angle))
        ankle = _end_point(hip, length, angle, side)
        knee_of_clothing = {"trousers": 1.0, "shorts": 0.38, "skirt": 0.0}[appearance.lower_style]
        covered = (hip[0] + (ankle[0] - hip[0]) * knee_of_clothing, hip[1] + (ankle[1] - hip[1]) * knee_of_clothing)
        canvas.limb(hip, ankle, 0.06 * bw, SKIN)
        if knee_of_clothing > 0:
            canvas.limb(hip, covered, 0.068 * bw, LOWER)
        canvas.ellipse(ankle[0] + side * 0.012, 0.975, 0.034, 0.025, SHOES)
        ankles.append(ankle)
    outer = 0.095 * bw
    canvas.polygon([(-outer, HIP_Y - 0.03), (outer, HIP_Y - 0.03), (0.8 * outer, 0.6), (-0.8 * outer, 0.6)], LOWER)
    if appearance.lower_style == "skirt":
        skirt = [(-outer, HIP_Y - 0.03), (outer, HIP_Y - 0.03), (1.6 * outer, 0.73), (-1.6 * outer, 0.73)]
        canvas.polygon(skirt, LOWER)


def _draw_torso(canvas, bw):
    shoulder, hip = 0.115 * bw, 0.095 * bw
    canvas.polygon(
        [
            (-shoulder, 0.19),
            (-shoulder + 0.025, 0.15),
            (shoulder - 0.025, 0.15),
            (shoulder, 0.19),
            (hip, 0.53),
            (-hip, 0.53),
        ],
        UPPER,
    )


def _draw_arms(canvas, pose, bw):
    shoulder_x = 0.115 * bw - 0.022
    for side, angle, elbow_bend in ((-1, pose.left_arm, pose.left_elbow), (1, pose.right_arm, pose.right_elbow)):
        shoulder = (side * shoulder_x, SHOULDER_Y)
        elbow = _end_point(shoulder, 0.17, angle, side)
        hand = _end_point(elbow, 0.16, angle + elbow_bend, side)
        canvas.limb(shoulder, elbow, 0.048 * bw, UPPER)
        canvas.limb(elbow, hand, 0.042 * bw, UPPER)
        canvas.ellipse(hand[0], hand[1], 0.021, 0.024, SKIN)


def _draw_accessory_behind(canvas, appearance, bw):
    if appearance.accessory == "backpack":
        half = 0.115 * bw + 0.028
        canvas.rectangle(-half, 0.2, half, 0.47, ACCESSORY)


def _draw_accessory_front(canvas, appearance, bw):
    shoulder, hip = 0.115 * bw, 0.095 * bw
    if appearance.accessory == "backpack":
        for side in (-1, 1):
            canvas.limb((side * shoulder * 0.55, 0.155), (side * shoulder * 0.6, 0.4), 0.018, ACCESSORY)
    elif appearance.accessory == "bag":
        canvas.limb((-shoulder * 0.6, 0.155), (hip + 0.03, 0.47), 0.014, ACCESSORY)
        canvas.rectangle(hip + 0.005, 0.46, hip + 0.1, 0.6, ACCESSORY)
    elif appearance.accessory == "scarf":
        canvas.rectangle(-0.055, 0.135, 0.055, 0.185, ACCESSORY)
        canvas.rectangle(0.012, 0.17, 0.05, 0.33, ACCESSORY)


def _draw_head(canvas, appearance):
    canvas.rectangle(-0.02, 0.11, 0.02, 0.16, SKIN)
    canvas.ellipse(0.0, 0.062, 0.052, 0.062, HAIR)
    canvas.ellipse(0.0, 0.077, 0.045, 0.053, SKIN)
    if appearance.hat == "cap":
        canvas.ellipse(0.0, 0.052, 0.056, 0.052, HAT, start=180, end=360)
        canvas.rectangle(-0.02, 0.044, 0.088, 0.058, HAT)
    elif appearance.hat == "beanie":
        canvas.ellipse(0.0, 0.06, 0.058, 0.06, HAT, start=180, end=360)
        canvas.rectangle(-0.058, 0.05, 0.058, 0.072, HAT)


def draw_labels(appearance, pose, size):
    """uint8 label map [size, CANVAS_WIDTH * size] of the figure, back to front (0 = background)."""
    canvas = _Canvas(size)
    bw = appearance.body_width
    _draw_accessory_behind(canvas, appearance, bw)
    _draw_legs(canvas, appearance, pose, bw)
    _draw_torso(canvas, bw)
    _draw_arms(canvas, pose, bw)
    _draw_accessory_front(canvas, appearance, bw)
    _draw_head(canvas, appearance)
    labels = canvas.labels
    return labels[:, ::-1] if pose.mirrored else labels


def _paint_pattern(rgb, labels, label, colour, pattern, second, period):
    """Fill the pixels of `label` with a clothing pattern, computed only over their bounding box."""
    rows = np.flatnonzero((labels == label).any(axis=1))
    cols = np.flatnonzero((labels == label).any(axis=0))
    if rows.size == 0:
        return
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = labels[r0:r1, c0:c1] == label
    fill = pattern_fill(
        r1 - r0, c1 - c0, pattern, CLOTHING_COLOURS[colour], CLOTHING_COLOURS[second], period, origin=(r0, c0)
    )
    rgb[r0:r1, c0:c1][mask] = fill[mask]


def colour_labels(labels, appearance):
    """float32 [S, W, 3] RGB of a label map: plain parts from a lookup table, clothing patterns
    scaled to the figure (period 5% / 6% of the height), cylinder shading across the body."""
    size, width = labels.shape
    lookup = np.zeros((ACCESSORY + 1, 3), dtype=np.float32)
    lookup[SKIN] = SKIN_TONES[appearance.skin]
    lookup[HAIR] = HAIR_COLOURS[appearance.hair]
    lookup[SHOES] = SHOE_COLOURS[appearance.shoes]
    lookup[HAT] = CLOTHING_COLOURS[appearance.hat_colour]
    lookup[ACCESSORY] = CLOTHING_COLOURS[appearance.accessory_colour]
    lookup[UPPER] = CLOTHING_COLOURS[appearance.upper_colour]
    lookup[LOWER] = CLOTHING_COLOURS[appearance.lower_colour]
    rgb = lookup[labels]
    a = appearance
    if a.upper_pattern != "plain":
        _paint_pattern(rgb, labels, UPPER, a.upper_colour, a.upper_pattern, a.upper_pattern_colour, 0.05 * size)
    if a.lower_pattern != "plain":
        _paint_pattern(rgb, labels, LOWER, a.lower_colour, a.lower_pattern, a.lower_pattern_colour, 0.06 * size)
    shading = cylinder_shading(width, width / 2, 0.2 * size * appearance.body_width)
    rgb *= shading[None, :, None]
    return rgb


def render_person(appearance, pose, height):
    """`Sprite` of a person `height` pixels tall, cropped to its columns with any coverage."""
    size = SUPERSAMPLE * int(height)
    labels = draw_labels(appearance, pose, size)
    rgb = colour_labels(labels, appearance)
    target = (labels.shape[1] // SUPERSAMPLE, int(height))
    rgb_small = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize((labels > 0).astype(np.float32), target, interpolation=cv2.INTER_AREA)
    columns = np.flatnonzero(alpha.max(axis=0) > 0)
    return Sprite(rgb=rgb_small[:, columns[0] : columns[-1] + 1], alpha=alpha[:, columns[0] : columns[-1] + 1])
