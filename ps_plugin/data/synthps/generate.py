"""`generate_synthps`: the whole dataset from one seed, written as JPEGs plus COCO json.

Every random draw comes from a numpy Generator seeded by (seed, style tag, stream[, image index]),
so each image depends only on the seed, the style and its index: the output is byte-identical for
a seed and style, whatever the number of worker processes. Style "a" has an empty tag.
"""
import os
import time
from dataclasses import asdict
from multiprocessing import get_context

import numpy as np
from PIL import Image

from .cameras import sample_cameras
from .casting import cast_scenes, identity_count
from .coco_json import queries_to_coco, scenes_to_coco, write_json
from .config import resolve_size
from .identities import sample_identities
from .protocol import build_queries
from .scene import RenderedScene, compose_scene
from .style import resolve_style

FORMAT_VERSION = 1
DESCRIPTION = "SynthPS synthetic person search"
IMAGE_DIR = "images"
IDENTITY_STREAM, CAMERA_STREAM, TRAIN_CAST_STREAM, TEST_CAST_STREAM, IMAGE_STREAM, QUERY_STREAM = range(6)


def _stream(seed, style, *keys):
    return np.random.default_rng([int(seed), *style.stream_tag, *keys])


def _render_and_write(task):
    """Render scene `index` and save it; returns its `RenderedScene`. Runs in worker processes."""
    seed, style, index, camera, cast, size, image_dir = task
    image, instances = compose_scene(_stream(seed, style, IMAGE_STREAM, index), camera, cast.people, size)
    file_name = f"s{index:05d}.jpg"
    Image.fromarray(image).save(os.path.join(image_dir, file_name), "JPEG", quality=size.jpeg_quality, subsampling=2)
    return RenderedScene(file_name, camera.camera_id, camera.width, camera.height, tuple(instances))


def _render_all(seed, style, casts, cameras, size, image_dir, workers):
    tasks = [(seed, style, i, cameras[c.camera_index], c, size, image_dir) for i, c in enumerate(casts)]
    if workers <= 1:
        return [_render_and_write(task) for task in tasks]
    with get_context("fork").Pool(workers) as pool:
        return pool.map(_render_and_write, tasks, chunksize=8)


def _summary(output_dir, seed, style, train_ids, test_ids, train_scenes, gallery_scenes, queries, seconds):
    instances = [i for s in train_scenes + gallery_scenes for i in s.instances]
    heights = [i.box[3] - i.box[1] for i in instances]
    return {
        "output_dir": output_dir,
        "seed": seed,
        "style": style,
        "train_images": len(train_scenes),
        "gallery_images": len(gallery_scenes),
        "queries": len(queries),
        "train_identities": len(train_ids),
        "test_identities": len(test_ids),
        "persons": len(instances),
        "unlabeled_persons": sum(i.person_id < 0 for i in instances),
        "occluded_persons": sum(i.visibility < 0.9 for i in instances),
        "person_height_range": (min(heights), max(heights)),
        "mean_gallery_size": float(np.mean([len(q["gallery"]) for q in queries])) if queries else 0.0,
        "seconds": round(seconds, 2),
    }


def generate_synthps(output_dir, seed=0, size="default", workers=None, style="a"):
    """Write SynthPS to `output_dir` and return a summary dict (counts and generation seconds).

    Args:
        output_dir: created if missing; holds images/, train.json, gallery.json, query.json,
            identities.json.
        seed: int; the same seed writes byte-identical files.
        size: a name in `config.SIZES` ("default", "large") or a `SynthPSSize`.
        workers: rendering processes (default: the CPU count, at most 4).
        style: a name in `style.STYLES` ("a", "b") or a `SynthPSStyle`; it scales the size's
            person heights and draws its own cameras, backgrounds and identities.
    """
    start = time.perf_counter()
    style = resolve_style(style)
    size = style.scale_size(resolve_size(size))
    workers = min(os.cpu_count() or 1, 4) if workers is None else workers
    image_dir = os.path.join(output_dir, IMAGE_DIR)
    os.makedirs(image_dir, exist_ok=True)

    identity_rng = _stream(seed, style, IDENTITY_STREAM)
    num_train_ids = identity_count(size.num_train_images, size.train_appearances, size)
    num_test_ids = identity_count(size.num_gallery_images, size.test_appearances, size)
    look_alikes = size.look_alike_fraction
    train_ids = sample_identities(identity_rng, 0, num_train_ids, size.train_appearances, look_alikes)
    test_ids = sample_identities(identity_rng, num_train_ids, num_test_ids, size.test_appearances, look_alikes)
    camera_rng = _stream(seed, style, CAMERA_STREAM)
    cameras = sample_cameras(camera_rng, size.num_cameras, size.image_sizes, size.person_height[1], style)

    casts = cast_scenes(_stream(seed, style, TRAIN_CAST_STREAM), train_ids, size.num_train_images, size)
    casts += cast_scenes(_stream(seed, style, TEST_CAST_STREAM), test_ids, size.num_gallery_images, size)
    scenes = _render_all(seed, style, casts, cameras, size, image_dir, workers)
    train_scenes, gallery_scenes = scenes[: size.num_train_images], scenes[size.num_train_images :]
    queries = build_queries(_stream(seed, style, QUERY_STREAM), gallery_scenes, test_ids, size.gallery_size)

    info = {
        "description": DESCRIPTION,
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "style": style.name,
        "size": asdict(size),
    }
    write_json(scenes_to_coco(train_scenes, info), os.path.join(output_dir, "train.json"))
    write_json(scenes_to_coco(gallery_scenes, info), os.path.join(output_dir, "gallery.json"))
    scenes_by_name = {s.file_name: s for s in gallery_scenes}
    write_json(queries_to_coco(queries, scenes_by_name, info), os.path.join(output_dir, "query.json"))
    identities = {"info": info, "train": [i.to_dict() for i in train_ids], "test": [i.to_dict() for i in test_ids]}
    write_json(identities, os.path.join(output_dir, "identities.json"))
    seconds = time.perf_counter() - start
    return _summary(output_dir, seed, style.name, train_ids, test_ids, train_scenes, gallery_scenes, queries, seconds)
