"""The CUHK-SYSU-style query protocol: one query per test identity, each with an explicit gallery
of image names holding every other image of that person plus distractor images."""
from .identities import look_alike_groups

# Queries are drawn from appearances at least this visible when the identity has one.
QUERY_MIN_VISIBILITY = 0.7


def _occurrences(scenes):
    """person_id -> list of (scene, instance) for labeled people, in scene order."""
    occurrences = {}
    for scene in scenes:
        for instance in scene.instances:
            if instance.person_id >= 0:
                occurrences.setdefault(instance.person_id, []).append((scene, instance))
    return occurrences


def _pick_query(rng, occurrences):
    visible = [o for o in occurrences if o[1].visibility >= QUERY_MIN_VISIBILITY]
    if not visible:
        visible = [max(occurrences, key=lambda o: o[1].visibility)]
    return visible[int(rng.integers(len(visible)))]


def _distractor_images(rng, scenes, person_id, look_alikes, count):
    """`count` names of scenes without `person_id`; scenes with a look-alike take up to half."""
    without = [s for s in scenes if all(i.person_id != person_id for i in s.instances)]
    hard = [s.file_name for s in without if any(i.person_id in look_alikes for i in s.instances)]
    hard = [hard[i] for i in rng.permutation(len(hard))[: count // 2]]
    taken = set(hard)
    easy = [s.file_name for s in without if s.file_name not in taken]
    easy = [easy[i] for i in rng.permutation(len(easy))[: count - len(hard)]]
    return hard + easy


def build_queries(rng, gallery_scenes, test_identities, gallery_size):
    """Queries in person-id order, for every test identity seen in at least two gallery scenes.

    Returns:
        list of {"query_index": int, "image": str, "person_id": int, "box": (x1, y1, x2, y2),
        "gallery": sorted list of `gallery_size` image names (fewer when the gallery set is
        smaller)}. The gallery holds every other scene of the person and never the query's own.
    """
    occurrences = _occurrences(gallery_scenes)
    groups = look_alike_groups(test_identities)
    queries = []
    for identity in test_identities:
        seen = occurrences.get(identity.person_id, [])
        if len(seen) < 2:
            continue
        query_scene, query_instance = _pick_query(rng, seen)
        positives = [scene.file_name for scene, _ in seen if scene is not query_scene]
        negatives = _distractor_images(
            rng, gallery_scenes, identity.person_id, groups[identity.person_id], max(gallery_size - len(positives), 0)
        )
        queries.append(
            {
                "query_index": len(queries),
                "image": query_scene.file_name,
                "person_id": identity.person_id,
                "box": query_instance.box,
                "gallery": sorted(positives + negatives),
            }
        )
    return queries

