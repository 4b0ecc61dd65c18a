"""The identity roster of one split: person ids, their fixed appearance and look-alike links."""
from dataclasses import dataclass

from .appearance import Appearance, make_look_alike, sample_appearance

NOT_A_LOOK_ALIKE = -1


@dataclass(frozen=True)
class Identity:
    """One labeled person: `appearance` is used for every scene it appears in.

    `look_alike_of` is the person id whose colours it copies (-1 for an original identity);
    `num_appearances` is how many scenes it is cast into.
    """

    person_id: int
    appearance: Appearance
    look_alike_of: int
    num_appearances: int

    def to_dict(self):
        """json-ready dict: person_id, look_alike_of, num_appearances, appearance attributes."""
        return {
            "person_id": self.person_id,
            "look_alike_of": self.look_alike_of,
            "num_appearances": self.num_appearances,
            "appearance": self.appearance.to_dict(),
        }


def sample_identities(rng, first_person_id, count, appearances_range, look_alike_fraction):
    """`count` identities with consecutive person ids from `first_person_id`.

    Each identity is, with probability `look_alike_fraction`, a look-alike of an earlier original
    identity of the same roster (so look-alikes meet in the same split), else a fresh appearance.
    Appearance counts are uniform in the inclusive `appearances_range`.
    """
    identities = []
    originals = []
    for offset in range(count):
        person_id = first_person_id + offset
        num_appearances = int(rng.integers(appearances_range[0], appearances_range[1] + 1))
        if originals and rng.random() < look_alike_fraction:
            reference = originals[int(rng.integers(len(originals)))]
            appearance = make_look_alike(rng, reference.appearance)
            look_alike_of = reference.person_id
        else:
            appearance = sample_appearance(rng)
            look_alike_of = NOT_A_LOOK_ALIKE
        identity = Identity(person_id, appearance, look_alike_of, num_appearances)
        identities.append(identity)
        if look_alike_of == NOT_A_LOOK_ALIKE:
            originals.append(identity)
    return identities


def look_alike_groups(identities):
    """person_id -> frozenset of the other person ids that share its colours via look-alike links."""
    groups = {}
    for identity in identities:
        root = identity.person_id if identity.look_alike_of == NOT_A_LOOK_ALIKE else identity.look_alike_of
        groups.setdefault(root, set()).add(identity.person_id)
    return {pid: frozenset(members - {pid}) for members in groups.values() for pid in members}
