"""How big SynthPS is: `SynthPSSize` and the named sizes the CLI offers (`SIZES`)."""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SynthPSSize:
    """Every count and range the generator draws from.

    Identities appear `appearances_*` times (inclusive ranges); the number of identities is derived
    so that the appearances fill `num_*_images` scenes of `persons_per_image` people, of whom about
    `unlabeled_fraction` are unlabeled bystanders (person_id -1).
    """

    num_train_images: int = 300
    num_gallery_images: int = 100
    # Images in each query's explicit gallery (positives + distractor images), CUHK-SYSU style.
    gallery_size: int = 30
    num_cameras: int = 6
    persons_per_image: tuple = (2, 6)
    unlabeled_fraction: float = 0.25
    train_appearances: tuple = (3, 6)
    test_appearances: tuple = (2, 5)
    # Share of identities created as look-alikes (same colours, other pattern or accessory).
    look_alike_fraction: float = 0.35
    # Full person box height in pixels (inclusive range), log-uniform.
    person_height: tuple = (40, 300)
    # Camera resolutions (width, height) to draw from.
    image_sizes: tuple = ((640, 480), (560, 420), (480, 360))
    # Probability that a scene holds an occluding object in front of a person.
    occluder_probability: float = 0.5
    jpeg_quality: int = 90

    def scaled(self, **changes):
        """A copy with some fields changed (e.g. a tiny size for tests)."""
        return replace(self, **changes)


SIZES = {
    "default": SynthPSSize(),
    "large": SynthPSSize(num_train_images=1500, num_gallery_images=500, gallery_size=100, num_cameras=8),
}


def resolve_size(size):
    """A `SynthPSSize` from itself or from a name in `SIZES`; ValueError lists the names."""
    if isinstance(size, SynthPSSize):
        return size
    if size not in SIZES:
        raise ValueError(f"Unknown SynthPS size '{size}'. Choose one of {sorted(SIZES)} or pass a SynthPSSize.")
    return SIZES[size]
