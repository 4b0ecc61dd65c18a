"""Casting: which identities and unlabeled bystanders appear in which scene, seen by which camera."""
from dataclasses import dataclass

import numpy as np

from .appearance import sample_appearance
from ..datasets.common import UNLABELED


@dataclass(frozen=True)
class SceneCast:
    """People of one scene: list of (person_id, Appearance), labeled first; bystanders have -1."""

    camera_index: int
    people: tuple


def mean_labeled_per_image(size):
    """Expected labeled people per scene under `size` (persons_per_image and unlabeled_fraction)."""
    low, high = size.persons_per_image
    return max((low + high) / 2 * (1 - size.unlabeled_fraction), 1.0)


def identity_count(num_images, appearances_range, size):
    """Number of identities whose appearances about fill `num_images` scenes."""
    mean_appearances = (appearances_range[0] + appearances_range[1]) / 2
    return max(int(round(num_images * mean_labeled_per_image(size) / mean_appearances)), 1)


def _choose_labeled(rng, identities, remaining, count):
    """`count` distinct identities drawn with probability proportional to their remaining appearances."""
    available = np.flatnonzero(remaining > 0)
    count = min(count, len(available))
    if count == 0:
        return []
    weights = remaining[available] / remaining[available].sum()
    chosen = rng.choice(available, size=count, replace=False, p=weights)
    remaining[chosen] -= 1
    return [identities[int(i)] for i in sorted(chosen)]


def cast_scenes(rng, identities, num_images, size):
    """`num_images` `SceneCast`s; each identity appears in at most `num_appearances` distinct scenes.

    A scene holds persons_per_image people (inclusive range); each is an unlabeled bystander with
    probability unlabeled_fraction, but every scene keeps at least one labeled person while
    identities have appearances left.
    """
    remaining = np.array([identity.num_appearances for identity in identities], dtype=np.int64)
    casts = []
    for _ in range(num_images):
        num_people = int(rng.integers(size.persons_per_image[0], size.persons_per_image[1] + 1))
        num_unlabeled = min(int(rng.binomial(num_people, size.unlabeled_fraction)), num_people - 1)
        labeled = _choose_labeled(rng, identities, remaining, num_people - num_unlabeled)
        people = [(identity.person_id, identity.appearance) for identity in labeled]
        people += [(UNLABELED, sample_appearance(rng)) for _ in range(num_people - len(people))]
        casts.append(SceneCast(camera_index=int(rng.integers(size.num_cameras)), people=tuple(people)))
    return casts
