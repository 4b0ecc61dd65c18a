"""Composing one scene: background, people placed on the camera's ground plane back to front,
an occluding object, then the camera's lighting. Boxes are tight full-person boxes (occluded
parts included, as in CUHK-SYSU); `visibility` says how much of the person is unoccluded."""
import math
from dataclasses import dataclass

import numpy as np

from .background import draw_occluder, render_background
from .cameras import apply_camera
from .person import render_person, sample_pose

# A sprite pixel belongs to the person's box (and mask) from this coverage on.
MASK_ALPHA = 0.3
# A new person may cover at most this fraction of an already placed box, and vice versa.
MAX_BOX_COVER = 0.45
PLACEMENT_TRIES = 15


@dataclass(frozen=True)
class PersonInstance:
    """One person in a scene: `box` (x1, y1, x2, y2) in integer pixels, exclusive right/bottom."""

    person_id: int
    appearance: object
    box: tuple
    visibility: float


@dataclass(frozen=True)
class RenderedScene:
    """A written scene: image name, camera, image size and its people."""

    file_name: str
    camera_id: int
    width: int
    height: int
    instances: tuple


@dataclass
class _Placement:
    person_id: int
    appearance: object
    sprite: object
    left: int
    top: int

    @property
    def box(self):
        """Tight (x1, y1, x2, y2) of the sprite pixels with coverage >= MASK_ALPHA, in the image."""
        rows = np.flatnonzero(self.sprite.alpha.max(axis=1) >= MASK_ALPHA)
        cols = np.flatnonzero(self.sprite.alpha.max(axis=0) >= MASK_ALPHA)
        x1, y1 = self.left + int(cols[0]), self.top + int(rows[0])
        return (x1, y1, self.left + int(cols[-1]) + 1, self.top + int(rows[-1]) + 1)

def _area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


def _cover(a, b):
    """Largest fraction of either box that their intersection covers."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min(_area(a), _area(b))


def sample_height(rng, height_range, image_height):
    """Log-uniform person height in `height_range`, capped at the image height."""
    low, high = height_range
    return min(int(round(math.exp(rng.uniform(math.log(low), math.log(high))))), image_height)


def _place(rng, camera, person_id, appearance, height_range, placed, must_place):
    """Put a person on the ground plane without hiding others (box cover <= MAX_BOX_COVER).

    After PLACEMENT_TRIES misses the person shrinks by 20%; a `must_place` person gets three rounds
    and then takes the last spot tried, others are dropped (None).
    """
    height = sample_height(rng, height_range, camera.height)
    pose = sample_pose(rng)
    for round_index in range(3 if must_place else 1):
        if round_index:
            height = max(int(height * 0.8), height_range[0])
        sprite = render_person(appearance, pose, height)
        sprite_h, sprite_w = sprite.alpha.shape
        for _ in range(PLACEMENT_TRIES):
            foot = camera.foot_row(height) + rng.uniform(-0.08, 0.08) * height
            top = int(np.clip(round(foot) - sprite_h, 0, camera.height - sprite_h))
            left = int(rng.integers(0, camera.width - sprite_w + 1))
            candidate = _Placement(person_id, appearance, sprite, left, top)
            if all(_cover(candidate.box, other.box) <= MAX_BOX_COVER for other in placed):
                return candidate
    return candidate if must_place else None


def _composite(image, owner, placements):
    """Alpha-blend sprites back to front (feet higher in the image = farther) and mark owners."""
    order = sorted(range(len(placements)), key=lambda i: placements[i].box[3])
    for index in order:
        p = placements[index]
        h, w = p.sprite.alpha.shape
        region = image[p.top : p.top + h, p.left : p.left + w]
        alpha = p.sprite.alpha[..., None]
        region[:] = region * (1 - alpha) + p.sprite.rgb * alpha
        owner[p.top : p.top + h, p.left : p.left + w][p.sprite.alpha >= MASK_ALPHA] = index


def _visibility(owner, placement, index):
    h, w = placement.sprite.alpha.shape
    mask = placement.sprite.alpha >= MASK_ALPHA
    visible = owner[placement.top : placement.top + h, placement.left : placement.left + w][mask] == index
    return round(float(visible.mean()), 3)


def compose_scene(rng, camera, cast, size):
    """Render one image of `camera` holding the `cast`.

    Args:
        cast: list of (person_id, Appearance); labeled people (person_id >= 0) are placed first
            and always (shrunk if needed), unlabeled ones (-1) are dropped when no spot is free.
        size: `SynthPSSize` (person height range, occluder probability).
    Returns:
        (uint8 [H, W, 3] RGB image, list of `PersonInstance` in cast order minus dropped people)
    """
    image = render_background(camera, rng)
    placements = []
    for person_id, appearance in cast:
        placement = _place(rng, camera, person_id, appearance, size.person_height, placements, person_id >= 0)
        if placement is not None:
            placements.append(placement)
    owner = np.full((camera.height, camera.width), -1, dtype=np.int32)
    _composite(image, owner, placements)
    if placements and rng.random() < size.occluder_probability:
        draw_occluder(image, owner, placements[int(rng.integers(len(placements)))].box, rng)
    instances = [
        PersonInstance(p.person_id, p.appearance, p.box, _visibility(owner, p, i)) for i, p in enumerate(placements)
    ]
    return apply_camera(image, camera, rng), instances
