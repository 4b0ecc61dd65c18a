"""Person crops as records (hybrid pre-training's re-id data, Tian et al. 2024, Fig. 3b).

A crop record is an ordinary record (docs/DATA_RECORDS.md) whose image is a person crop, plus
"crop_box": [x1, y1, x2, y2], the crop in the file's pixels (the whole file for a crop folder; a
person box of a scene for crops cut from a person-search or MOT set, which writes no file). It
holds exactly one annotation: that box, with the crop's person id. The pre-training mapper
(`ps_plugin.data.unification`) cuts "crop_box" out of the image and puts it on a canvas.

Identities (Fig. 3b): labelled crops keep their identity, renumbered 0..K-1 in sorted order;
unlabelled crops and detection boxes get one identity each. Records whose ids are one per
instance carry "instance_ids": True, which tells the pre-training losses that their boxes have no
shared identity (SimSiam's self-supervised term applies to them, Eq. 5-6).
"""
import os

from .common import make_record, read_image_size, register_person_search

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
INSTANCE_IDS = "instance_ids"
CROP_BOX = "crop_box"


def list_images(folder):
    """Image files under `folder` (recursively), sorted; FileNotFoundError naming the folder if none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Crop folder not found: expected '{folder}'. See datasets/README.md for the layout.")
    files = sorted(
        os.path.join(directory, name)
        for directory, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise FileNotFoundError(f"Crop folder '{folder}' holds no {IMAGE_EXTENSIONS} image.")
    return files


def make_crop_record(file_name, image_id, person_id, camera_id=-1, crop_box=None, height=None, width=None, **extra):
    """A crop record; `crop_box` None = the whole file (its size is read from the header)."""
    if crop_box is None:
        height, width = read_image_size(file_name)
        crop_box = [0.0, 0.0, float(width), float(height)]
    record = make_record(file_name, image_id, height, width, [crop_box], [person_id], camera_id, **extra)
    if not record["annotations"]:
        raise ValueError(f"{file_name}: the crop {list(crop_box)} is empty (zero-size) inside a {width} x {height} image.")
    record[CROP_BOX] = record["annotations"][0]["bbox"]
    return record


def contiguous_ids(labels):
    """{label: 0..K-1} over the distinct labels, in sorted order."""
    return {label: index for index, label in enumerate(sorted(set(labels)))}


def load_labelled_crops(entries):
    """Crop records from (file_name, image_id, label, camera_id) tuples; labels renumbered 0..K-1."""
    ids = contiguous_ids(label for _, _, label, _ in entries)
    return [make_crop_record(f, image_id, ids[label], camera) for f, image_id, label, camera in entries]


def load_unlabelled_crop_folder(folder):
    """Every image under `folder` (LUPerson-style, no labels) as a crop with its own identity 0..N-1."""
    return [
        make_crop_record(f, os.path.relpath(f, folder), index, **{INSTANCE_IDS: True})
        for index, f in enumerate(list_images(folder))
    ]


def register_crops(name, loader, **metadata):
    """Register a crop set lazily (`register_person_search`, domain "source")."""
    register_person_search(name, loader, domain="source", crops=True, **metadata)
