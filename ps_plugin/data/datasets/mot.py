"""MOT-format sequences as person-search data, and the `realmini` benchmark built from two of them.

A MOT sequence folder:
    <seq>/img1/000001.jpg ...   (or <seq>/img/frame_0001.jpg ...; the frame number is the last
                                 group of digits in the file name)
    <seq>/gt.txt                rows `frame,id,x,y,w,h[,flag,...]`, boxes xywh in pixels
    <seq>/seqinfo.ini           optional; imWidth / imHeight, else the first image's header is read
A row whose 7th field (flag) is 0 is ignored; any other flag (MOT15 uses -1) is kept. The identity
is the track id. Every image gives one record, with empty annotations when gt.txt has no row for
it. Records carry "frame" (int) and "sequence" (str); image_id is "<sequence>/<image file name>".

realmini (/work/shared/data/README.md): `pets09_s3mf1` (107 frames) and `tud_campus` (71 frames).
Root, resolved when a realmini dataset is first loaded: $PS_REALMINI_ROOT, else
$DETECTRON2_DATASETS/realmini, else <repo>/../shared/data/realmini.
Split, per sequence (camera_id = sequence index in REALMINI_SEQUENCES):
- `realmini_train`: the first floor(60%) of the frames.
- `realmini_gallery`: the remaining 40% (test frames).
- `realmini_query`: per identity of the sequence, one query from the earliest test frame where it
  has a box at least 50 px high. Its explicit gallery is the sequence's test frames at least 30
  frames away from the query frame; queries whose gallery never shows the person are skipped.
  With 29 test frames, tud_campus yields no query at the default gap of 30 (its test frames
  remain in realmini_gallery for detection metrics).
Person ids are unique across sequences and contiguous in train: (sequence, track id) pairs seen in
train are numbered 0..K-1 in sequence then track order, identities seen only in test follow.
"""
import configparser
import os
import re
from pathlib import Path

import numpy as np

from .common import datasets_root, make_record, read_image_size, register_person_search, require_path, xywh_to_xyxy

IMAGE_DIRS = ("img1", "img")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
REALMINI_SEQUENCES = ("pets09_s3mf1", "tud_campus")


def find_image_dir(seq_dir):
    """The sequence's image folder (`img1/` or `img/`); FileNotFoundError naming both otherwise."""
    for name in IMAGE_DIRS:
        path = os.path.join(seq_dir, name)
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"MOT sequence '{seq_dir}' has no image folder: expected one of {IMAGE_DIRS}.")


def frame_number(file_name):
    """Frame number of an image file: the last group of digits in its stem (`frame_0012.jpg` -> 12)."""
    digits = re.findall(r"\d+", Path(file_name).stem)
    if not digits:
        raise ValueError(f"MOT image '{file_name}' has no frame number in its name; name frames like 000001.jpg.")
    return int(digits[-1])


def read_mot_gt(gt_file):
    """Kept rows of a MOT gt.txt: (frames int64 [N], track ids int64 [N], boxes xyxy float64 [N, 4]).

    Rows with flag (7th field) 0 are dropped; files without a flag column keep every row.
    """
    require_path(gt_file, "MOT ground truth", "Put the sequence's gt.txt (frame,id,x,y,w,h,flag,...) there.")
    try:
        rows = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    except ValueError as e:
        raise ValueError(f"{gt_file}: not a MOT gt file (comma-separated numbers frame,id,x,y,w,h,...): {e}") from e
    if rows.size == 0:
        rows = rows.reshape(0, 6)
    if rows.shape[1] < 6:
        raise ValueError(f"{gt_file}: rows have {rows.shape[1]} fields, MOT needs at least frame,id,x,y,w,h.")
    if rows.shape[1] >= 7:
        rows = rows[rows[:, 6] != 0]
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), xywh_to_xyxy(rows[:, 2:6])


def sequence_image_size(seq_dir, first_image):
    """(height, width) from seqinfo.ini when present, else from the first image's header."""
    ini_file = os.path.join(seq_dir, "seqinfo.ini")
    if os.path.isfile(ini_file):
        parser = configparser.ConfigParser()
        parser.read(ini_file)
        if parser.has_option("Sequence", "imHeight") and parser.has_option("Sequence", "imWidth"):
            return parser.getint("Sequence", "imHeight"), parser.getint("Sequence", "imWidth")
    return read_image_size(first_image)


def load_mot_sequence(seq_dir, sequence_name=None, camera_id=-1):
    """One record per image of a MOT sequence, in frame order; person_id = track id.

    Args:
        seq_dir: the sequence folder (image folder + gt.txt).
        sequence_name: prefix of image_id and value of "sequence"; default the folder name.
        camera_id: camera of every record.
    """
    seq_dir = str(seq_dir)
    sequence_name = sequence_name or os.path.basename(os.path.normpath(seq_dir))
    image_dir = find_image_dir(seq_dir)
    images = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise FileNotFoundError(f"MOT image folder '{image_dir}' holds no {IMAGE_EXTENSIONS} image.")
    frames_of_images = np.array([frame_number(f) for f in images])
    order = np.argsort(frames_of_images, kind="stable")
    frames, track_ids, boxes = read_mot_gt(os.path.join(seq_dir, "gt.txt"))
    missing = sorted(set(frames.tolist()) - set(frames_of_images.tolist()))
    if missing:
        raise ValueError(f"{seq_dir}/gt.txt has rows for frames without an image in {image_dir}: {missing[:10]}.")
    height, width = sequence_image_size(seq_dir, os.path.join(image_dir, images[0]))
    records = []
    for index in order:
        frame = int(frames_of_images[index])
        rows = frames == frame
        records.append(
            make_record(
                file_name=os.path.join(image_dir, images[index]),
                image_id=f"{sequence_name}/{images[index]}",
                height=height,
                width=width,
                boxes_xyxy=boxes[rows],
                person_ids=track_ids[rows],
                camera_id=camera_id,
                frame=frame,
                sequence=sequence_name,
            )
        )
    return records


def relabel_person_ids(sequences, first=()):
    """In place: (sequence index, track id) -> person id, unique across sequences.

    Args:
        sequences: list (one per sequence) of record lists; every record of sequence i is relabeled.
        first: list (one per sequence) of record lists whose identities get the lowest ids, so
            identities seen there are contiguous 0..K-1 (e.g. the training frames).
    """
    keys = {}
    for group in (first, sequences):
        for seq_index, records in enumerate(group):
            tracks = sorted({a["person_id"] for r in records for a in r["annotations"]})
            for track in tracks:
                keys.setdefault((seq_index, track), len(keys))
    for seq_index, records in enumerate(sequences):
        for record in records:
            for ann in record["annotations"]:
                ann["person_id"] = keys[(seq_index, ann["person_id"])]
    return sequences


def load_mot_sequences(seq_dirs):
    """Records of several sequences, camera_id = sequence index, person ids unique across sequences."""
    sequences = [load_mot_sequence(seq_dir, camera_id=i) for i, seq_dir in enumerate(seq_dirs)]
    relabel_person_ids(sequences)
    return [record for records in sequences for record in records]


def register_mot_sequences(name, seq_dirs, domain="source", **metadata):
    """Register every frame of `seq_dirs` (MOT folders) as one dataset; read at first load only."""
    register_person_search(name, lambda: load_mot_sequences(seq_dirs), domain=domain, **metadata)


def realmini_root(root=None):
    """`root` when given, else the first existing of $PS_REALMINI_ROOT, $DETECTRON2_DATASETS/realmini,
    <repo>/../shared/data/realmini. FileNotFoundError naming the candidates when none exists."""
    repo = Path(__file__).resolve().parents[3]
    candidates = [root] if root is not None else [
        os.getenv("PS_REALMINI_ROOT"),
        os.path.join(datasets_root(), "realmini"),
        str(repo.parent / "shared" / "data" / "realmini"),
    ]
    for path in candidates:
        if path and os.path.isdir(path):
            return path
    raise FileNotFoundError(
        f"realmini not found; looked in {[c for c in candidates if c]}. "
        f"Set PS_REALMINI_ROOT to the folder holding {REALMINI_SEQUENCES}."
    )


def split_frames(records, train_fraction):
    """(first floor(train_fraction * len) records, the rest) of one sequence in frame order."""
    n_train = int(train_fraction * len(records))
    return records[:n_train], records[n_train:]


def box_height(ann):
    return ann["bbox"][3] - ann["bbox"][1]


def query_gallery(test_records, query_frame, person_id, min_frame_gap):
    """Compact explicit gallery: test frames >= min_frame_gap from the query frame.

    Returns {"image_ids": list[str] (G), "boxes": float32 [G, 4] xyxy, NaN row where the person is absent}.
    """
    gallery = [r for r in test_records if abs(r["frame"] - query_frame) >= min_frame_gap]
    boxes = np.full((len(gallery), 4), np.nan, dtype=np.float32)
    for row, record in enumerate(gallery):
        for ann in record["annotations"]:
            if ann["person_id"] == person_id:
                boxes[row] = ann["bbox"]
    return {"image_ids": [r["image_id"] for r in gallery], "boxes": boxes}


def sequence_queries(test_records, min_frame_gap, min_query_height):
    """Queries of one sequence: per identity, its first box >= min_query_height px high in test frames.

    Queries whose gallery holds no box of the person are skipped. Order: first appearance (frame, then gt row).
    """
    queries, seen = [], set()
    for record in test_records:
        for ann in record["annotations"]:
            if ann["person_id"] in seen or box_height(ann) < min_query_height:
                continue
            seen.add(ann["person_id"])
            gallery = query_gallery(test_records, record["frame"], ann["person_id"], min_frame_gap)
            if not np.isnan(gallery["boxes"][:, 0]).all():
                queries.append(dict(record, annotations=[dict(ann)], gallery=gallery))
    return queries


def load_realmini_split(root=None, train_fraction=0.6, min_frame_gap=30, min_query_height=50):
    """{"train", "gallery", "query"}: record lists of the realmini split (see the module docstring)."""
    root = realmini_root(root)
    sequences = [load_mot_sequence(os.path.join(root, s), camera_id=i) for i, s in enumerate(REALMINI_SEQUENCES)]
    splits = [split_frames(records, train_fraction) for records in sequences]
    relabel_person_ids(sequences, first=[train for train, _ in splits])
    queries = [q for _, test in splits for q in sequence_queries(test, min_frame_gap, min_query_height)]
    for index, query in enumerate(queries):
        query["query_index"] = index
    return {
        "train": [r for train, _ in splits for r in train],
        "gallery": [r for _, test in splits for r in test],
        "query": queries,
    }


def register_realmini(root=None, train_fraction=0.6, min_frame_gap=30, min_query_height=50):
    """Register realmini_{train,gallery,query}; the root is resolved when one is first loaded."""

    def loader(part):
        return lambda: load_realmini_split(root, train_fraction, min_frame_gap, min_query_height)[part]

    register_person_search("realmini_train", loader("train"))
    register_person_search("realmini_gallery", loader("gallery"), query_datasets=["realmini_query"])
    register_person_search(
        "realmini_query", loader("query"), gallery_dataset="realmini_gallery", protocol="generic"
    )
