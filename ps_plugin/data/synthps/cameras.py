"""Cameras: each has its resolution, ground plane (horizon and perspective), background kinds and
colours, and its own lighting and colour cast, applied to every image it takes. The ranges they are
drawn from are the style's (style.py)."""
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Camera:
    """One fixed camera.

    A person whose feet are at image row y has height `pixels_per_row * (y - horizon)`: the ground
    plane's perspective. `gains` are RGB multipliers (colour cast), `brightness` a global factor,
    `blur_sigma` the optics' softness (0 = sharp), `noise` the sensor noise amplitude and
    `light_gradient` the strength of each shot's illumination gradient.
    """

    camera_id: int
    width: int
    height: int
    horizon: int
    pixels_per_row: float
    wall_rgb: tuple
    floor_rgb: tuple
    wall_style: str
    floor_style: str
    gains: tuple
    brightness: float
    blur_sigma: float
    noise: int
    light_gradient: float

    def foot_row(self, person_height):
        """Image row of the feet of a person `person_height` pixels tall on the ground plane."""
        return self.horizon + person_height / self.pixels_per_row


def _pick(rng, options):
    """One of `options`; a single option is taken without a draw (the stream stays as it was)."""
    return options[0] if len(options) == 1 else options[int(rng.integers(len(options)))]


def sample_cameras(rng, count, image_sizes, max_person_height, style):
    """`count` cameras of `style` (a `SynthPSStyle`); person heights up to `max_person_height` fit
    above each image's bottom row."""
    gains_low, gains_high = zip(*style.gains)
    cameras = []
    for camera_id in range(1, count + 1):
        width, height = image_sizes[int(rng.integers(len(image_sizes)))]
        horizon = int(height * rng.uniform(*style.horizon))
        cameras.append(
            Camera(
                camera_id=camera_id,
                width=int(width),
                height=int(height),
                horizon=horizon,
                pixels_per_row=max_person_height / (height - 2 - horizon),
                wall_rgb=tuple(int(v) for v in rng.integers(*style.wall_rgb, size=3)),
                floor_rgb=tuple(int(v) for v in rng.integers(*style.floor_rgb, size=3)),
                floor_style=_pick(rng, style.floor_styles),
                gains=tuple(round(float(g), 3) for g in rng.uniform(gains_low, gains_high)),
                brightness=round(float(rng.uniform(*style.brightness)), 3),
                blur_sigma=round(float(rng.choice(style.blur_sigmas)), 2),
                wall_style=_pick(rng, style.wall_styles),
                noise=style.noise,
                light_gradient=style.light_gradient,
            )
        )
    return cameras


def apply_camera(image, camera, rng):
    """Lighting of one shot: camera colour cast and brightness, a random illumination gradient,
    blur and sensor noise (uniform integers in [-noise, noise]). float32 [H, W, 3] in -> uint8 [H, W, 3] out."""
    height, width = image.shape[:2]
    direction = rng.uniform(-1, 1, size=2)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    gradient = 1.0 + camera.light_gradient * (direction[0] * xs + direction[1] * ys)
    exposure = camera.brightness * float(rng.uniform(0.9, 1.1))
    lit = image * (gradient * exposure)[..., None]
    lit *= np.asarray(camera.gains, dtype=np.float32)
    if camera.blur_sigma > 0:
        lit = cv2.GaussianBlur(lit, (0, 0), camera.blur_sigma)
    lit += rng.integers(-camera.noise, camera.noise + 1, size=lit.shape, dtype=np.int8)
    return np.clip(lit, 0, 255).astype(np.uint8)
