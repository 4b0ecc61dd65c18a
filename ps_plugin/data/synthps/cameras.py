"""Cameras: each has its resolution, ground plane (horizon and perspective), background colours,
and its own lighting and colour cast, applied to every image it takes."""
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Camera:
    """One fixed camera.

    A person whose feet are at image row y has height `pixels_per_row * (y - horizon)`: the ground
    plane's perspective. `gains` are RGB multipliers (colour cast), `brightness` a global factor,
    `blur_sigma` the optics' softness (0 = sharp).
    """

    camera_id: int
    width: int
    height: int
    horizon: int
    pixels_per_row: float
    wall_rgb: tuple
    floor_rgb: tuple
    floor_style: str
    gains: tuple
    brightness: float
    blur_sigma: float

    def foot_row(self, person_height):
        """Image row of the feet of a person `person_height` pixels tall on the ground plane."""
        return self.horizon + person_height / self.pixels_per_row


def sample_cameras(rng, count, image_sizes, max_person_height):
    """`count` cameras; person heights up to `max_person_height` fit above each image's bottom row."""
    cameras = []
    for camera_id in range(1, count + 1):
        width, height = image_sizes[int(rng.integers(len(image_sizes)))]
        horizon = int(height * rng.uniform(0.25, 0.4))
        cameras.append(
            Camera(
                camera_id=camera_id,
                width=int(width),
                height=int(height),
                horizon=horizon,
                pixels_per_row=max_person_height / (height - 2 - horizon),
                wall_rgb=tuple(int(v) for v in rng.integers(60, 200, size=3)),
                floor_rgb=tuple(int(v) for v in rng.integers(70, 180, size=3)),
                floor_style=("plain", "tiles", "planks")[int(rng.integers(3))],
                gains=tuple(round(float(g), 3) for g in rng.uniform(0.78, 1.2, size=3)),
                brightness=round(float(rng.uniform(0.7, 1.15)), 3),
                blur_sigma=round(float(rng.choice([0.0, 0.0, 0.6, 0.9])), 2),
            )
        )
    return cameras


def apply_camera(image, camera, rng):
    """Lighting of one shot: camera colour cast and brightness, a random illumination gradient,
    blur and sensor noise (uniform integers in [-6, 6]). float32 [H, W, 3] in -> uint8 [H, W, 3] out."""
    height, width = image.shape[:2]
    direction = rng.uniform(-1, 1, size=2)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    gradient = 1.0 + 0.35 * (direction[0] * xs + direction[1] * ys)
    exposure = camera.brightness * float(rng.uniform(0.9, 1.1))
    lit = image * (gradient * exposure)[..., None]
    lit *= np.asarray(camera.gains, dtype=np.float32)
    if camera.blur_sigma > 0:
        lit = cv2.GaussianBlur(lit, (0, 0), camera.blur_sigma)
    lit += rng.integers(-6, 7, size=lit.shape, dtype=np.int8)
    return np.clip(lit, 0, 255).astype(np.uint8)
