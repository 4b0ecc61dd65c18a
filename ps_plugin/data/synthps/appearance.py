"""The attribute set that fixes how one person looks, and how to draw one or a look-alike.

An `Appearance` is what an identity keeps in every scene: clothing colours and patterns, head
(skin tone, hair colour, hat), accessory and body shape. Look-alikes copy every colour of a
reference appearance and change a pattern or the accessory, so colour alone cannot tell them apart.
"""
from dataclasses import asdict, dataclass, replace

from .palette import CLOTHING_COLOURS, HAIR_COLOURS, PATTERN_COLOURS, SHOE_COLOURS, SKIN_TONES

PATTERNS = ("plain", "stripes", "checks", "dots")
LOWER_STYLES = ("trousers", "shorts", "skirt")
HATS = ("none", "cap", "beanie")
ACCESSORIES = ("none", "bag", "backpack", "scarf")
BODY_WIDTH_RANGE = (0.8, 1.25)


@dataclass(frozen=True)
class Appearance:
    """Names of colours (see palette.py) and categorical attributes of one person.

    `body_width` scales every body width (shoulders, hips, limbs) at a fixed height: the body
    shape's width/height ratio relative to an average build.
    """

    upper_colour: str
    upper_pattern: str
    upper_pattern_colour: str
    lower_colour: str
    lower_pattern: str
    lower_pattern_colour: str
    lower_style: str
    skin: str
    hair: str
    hat: str
    hat_colour: str
    accessory: str
    accessory_colour: str
    shoes: str
    body_width: float

    def to_dict(self):
        """Plain dict in field order (json-ready)."""
        return asdict(self)

    def colours(self):
        """The clothing colour names a colour-only matcher would see: (upper, lower)."""
        return self.upper_colour, self.lower_colour


def _pick(rng, options, p=None):
    """One element of a tuple, drawn with the numpy Generator `rng`."""
    return options[int(rng.choice(len(options), p=p))]


def _pattern_colour(rng, base):
    """A pattern colour that differs from the base colour."""
    return _pick(rng, tuple(c for c in PATTERN_COLOURS if c != base))


def sample_appearance(rng):
    """A random `Appearance` (identities and unlabeled bystanders alike)."""
    colours = tuple(CLOTHING_COLOURS)
    upper, lower = _pick(rng, colours), _pick(rng, colours)
    return Appearance(
        upper_colour=upper,
        upper_pattern=_pick(rng, PATTERNS, p=(0.4, 0.25, 0.2, 0.15)),
        upper_pattern_colour=_pattern_colour(rng, upper),
        lower_colour=lower,
        lower_pattern=_pick(rng, PATTERNS, p=(0.7, 0.1, 0.1, 0.1)),
        lower_pattern_colour=_pattern_colour(rng, lower),
        lower_style=_pick(rng, LOWER_STYLES, p=(0.65, 0.2, 0.15)),
        skin=_pick(rng, tuple(SKIN_TONES)),
        hair=_pick(rng, tuple(HAIR_COLOURS)),
        hat=_pick(rng, HATS, p=(0.6, 0.25, 0.15)),
        hat_colour=_pick(rng, colours),
        accessory=_pick(rng, ACCESSORIES, p=(0.4, 0.2, 0.25, 0.15)),
        accessory_colour=_pick(rng, colours),
        shoes=_pick(rng, tuple(SHOE_COLOURS)),
        body_width=round(float(rng.uniform(*BODY_WIDTH_RANGE)), 2),
    )


def make_look_alike(rng, reference):
    """An appearance with every colour of `reference` but another upper pattern, lower pattern or
    accessory (at least one differs); head and body are redrawn."""
    fresh = sample_appearance(rng)
    look_alike = replace(
        reference, skin=fresh.skin, hair=fresh.hair, hat=fresh.hat, body_width=fresh.body_width
    )
    changed = _pick(rng, ("upper_pattern", "lower_pattern", "accessory"))
    options = ACCESSORIES if changed == "accessory" else PATTERNS
    new_value = _pick(rng, tuple(o for o in options if o != getattr(reference, changed)))
    return replace(look_alike, **{changed: new_value})
