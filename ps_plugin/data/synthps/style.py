"""Styles: the look of a SynthPS domain, separate from its size (`config.py`).

A style fixes the backgrounds (wall and floor kinds and colours), the lighting (brightness,
colour cast, illumination gradient, sensor noise, blur), the camera height (horizon row; a high
camera puts the horizon near the top and sees people smaller) and the person scale. Each style
draws its own identities: its random streams are tagged (`stream_tag`), so two styles generated
with the same seed share no person. Person ids start at 0 in every style, as in every dataset
(the OIM table of a training set is indexed by them).

Style "a" is the original SynthPS (indoor walls, mid-height cameras, people 40-300 px at the
default size). Style "b" is the domain-adaptation target: outdoor dusk scenes (sky or facade,
asphalt / grass / paving), darker and bluer light with more noise and always some blur, cameras
mounted high, people at 0.75 of the size's heights.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class SynthPSStyle:
    """Every parameter a style changes; ranges are (low, high), drawn uniformly per camera.

    wall_rgb, floor_rgb: integer ranges of each RGB channel of the camera's wall / floor colour.
    gains: one (low, high) range per RGB channel of the camera's colour cast.
    horizon: horizon row as a fraction of the image height.
    person_scale: factor on the size's `person_height` range.
    noise: sensor noise amplitude (uniform integers in [-noise, noise]).
    light_gradient: strength of the random illumination gradient across each shot.
    """

    name: str
    folder: str
    stream_tag: tuple
    wall_styles: tuple
    floor_styles: tuple
    wall_rgb: tuple
    floor_rgb: tuple
    horizon: tuple
    gains: tuple
    brightness: tuple
    blur_sigmas: tuple
    noise: int
    light_gradient: float
    person_scale: float

    def scale_size(self, size):
        """`size` (a `SynthPSSize`) with its person heights scaled by `person_scale`."""
        if self.person_scale == 1.0:
            return size
        low, high = (max(int(round(h * self.person_scale)), 8) for h in size.person_height)
        return size.scaled(person_height=(low, high))


STYLES = {
    "a": SynthPSStyle(
        name="a",
        folder="synthps",
        stream_tag=(),
        wall_styles=("plain",),
        floor_styles=("plain", "tiles", "planks"),
        wall_rgb=(60, 200),
        floor_rgb=(70, 180),
        horizon=(0.25, 0.4),
        gains=((0.78, 1.2),) * 3,
        brightness=(0.7, 1.15),
        blur_sigmas=(0.0, 0.0, 0.6, 0.9),
        noise=6,
        light_gradient=0.35,
        person_scale=1.0,
    ),
    "b": SynthPSStyle(
        name="b",
        folder="synthps_b",
        # A second entry of 1000 + index never occurs in style a's streams (stream ids are < 10).
        stream_tag=(1001,),
        wall_styles=("sky", "facade"),
        floor_styles=("asphalt", "grass", "paving"),
        wall_rgb=(110, 235),
        floor_rgb=(35, 120),
        horizon=(0.06, 0.16),
        gains=((0.6, 0.9), (0.8, 1.0), (1.05, 1.4)),
        brightness=(0.45, 0.7),
        blur_sigmas=(0.6, 0.9),
        noise=10,
        light_gradient=0.6,
        person_scale=0.75,
    ),
}


def resolve_style(style):
    """A `SynthPSStyle` from itself or from a name in `STYLES`; ValueError lists the names."""
    if isinstance(style, SynthPSStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"Unknown SynthPS style '{style}'. Choose one of {sorted(STYLES)} or pass a SynthPSStyle.")
    return STYLES[style]
