"""CUHK-SYSU (Xiao et al., "Joint Detection and Identification Feature Learning for Person
Search", CVPR 2017): 18,184 scene images, 11,206 for training and a 6,978-image test pool,
2,900 test queries with gallery sizes 50 to 4,000.

Expected tree (datasets/README.md):
    <root>/cuhk_sysu/Image/SSM/*.jpg
    <root>/cuhk_sysu/annotation/Images.mat                     Img: (imname, nAppear, boxes xywh)
    <root>/cuhk_sysu/annotation/pool.mat                       pool: test image names
    <root>/cuhk_sysu/annotation/test/train_test/Train.mat      Train: per identity its scenes
    <root>/cuhk_sysu/annotation/test/train_test/TestG{N}.mat   TestG{N}: Query + N Gallery entries

Boxes are stored as uint16 (some as uint8): every reader casts to float64 before arithmetic,
because w * h overflows uint16 for 327 positive boxes of TestG100.

Identities: training ids are contiguous 0..5531 in Train.mat order; test identities keep their
CUHK-SYSU number (idname "p10581" -> person_id 10581), identical in the gallery and every
query set.
"""
import functools
import logging
import os

import numpy as np
from detectron2.data import MetadataCatalog
from scipy.io import loadmat

from .common import UNLABELED, datasets_root, make_record, read_image_size, register_person_search, require_path, xywh_to_xyxy
from .cuhk_sysu_protocol import FIX, cached_by_mtime, read_cuhk_sysu_protocol, xywh_array
from .matlab import mat_string, mat_strings

logger = logging.getLogger(__name__)

CUHK_SYSU_GALLERY_SIZES = (50, 100, 500, 1000, 2000, 4000)
CUHK_SYSU_QUERY_SETS = tuple(f"cuhk_sysu_query_G{n}" for n in CUHK_SYSU_GALLERY_SIZES) + ("cuhk_sysu_query_full",)


def _mat_variable(mat_file, key):
    """loadmat(mat_file)[key]; a ValueError names the file and the keys it has when `key` is absent."""
    content = loadmat(mat_file)
    if key not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"{mat_file}: expected a variable '{key}', found {keys}. {FIX}")
    return content[key]


@cached_by_mtime
def read_cuhk_sysu_images(images_mat):
    """Images.mat -> {imname: float64 [N, 4] boxes xywh}, in file order.

    Each `Img` entry is (imname, nAppear, boxes) where boxes is a 1xN struct array whose first
    field is the [1, 4] box (the real file: (idlocate, ishard)); a plain [N, 4] array is accepted.
    """
    images = {}
    for entry in _mat_variable(images_mat, "Img").ravel():
        boxes = entry[2]
        if boxes.dtype.names:
            boxes = [box[0] for box in boxes.ravel()]
        images[mat_string(entry[0])] = np.concatenate([xywh_array(b) for b in boxes]) if len(boxes) else np.zeros((0, 4))
    return images


@cached_by_mtime
def read_cuhk_sysu_pool(pool_mat):
    """pool.mat -> frozenset of the test image names."""
    return frozenset(mat_strings(_mat_variable(pool_mat, "pool")))


@cached_by_mtime
def read_cuhk_sysu_train_identities(train_mat):
    """Train.mat -> list of (idname, [(imname, float64 [4] box xywh), ...]), one per identity in file order."""
    identities = []
    for cell in _mat_variable(train_mat, "Train").ravel():
        identity = np.asarray(cell).ravel()[0]
        scenes = [(mat_string(scene[0]), xywh_array(scene[1])[0]) for scene in identity["scene"].ravel()]
        identities.append((mat_string(identity["idname"]), scenes))
    return identities


def _size_or_none(image_dir, imname):
    return read_image_size(os.path.join(image_dir, imname)) if image_dir is not None else (None, None)


def _clip_to_image(box_xyxy, size):
    """Clip one float [4] xyxy box to size (height, width) in place; (None, None) leaves it."""
    height, width = size
    if height is not None:
        box_xyxy[0::2] = np.clip(box_xyxy[0::2], 0, width)
        box_xyxy[1::2] = np.clip(box_xyxy[1::2], 0, height)


def _compact_gallery(query, image_dir):
    """{"image_ids": list[str] [N], "boxes": float32 [N, 4] xyxy, NaN rows where the person is absent}.
    Present boxes are clipped to their image when image_dir is given."""
    boxes = xywh_to_xyxy(query["gallery_xywh"])
    if image_dir is not None:
        for row in np.flatnonzero(~np.isnan(boxes[:, 0])):
            _clip_to_image(boxes[row], _size_or_none(image_dir, query["gallery_imnames"][row]))
    return {"image_ids": list(query["gallery_imnames"]), "boxes": boxes.astype(np.float32)}


def load_cuhk_sysu_protocol(mat_file, image_dir=None, with_gallery=True):
    """Query records of one CUHK-SYSU protocol file, in protocol order (docs/DATA_RECORDS.md).

    Args:
        mat_file: a TestG{N}.mat.
        image_dir: folder of the scene images (Image/SSM); None leaves file_name = image name and
            height/width None (the protocol alone, without images).
        with_gallery: add the compact "gallery" dict {"image_ids": [N], "boxes": float32 [N, 4]}.
    Returns:
        list of records with one annotation (the query box, person_id) and "query_index".
    """
    records = []
    for index, query in enumerate(read_cuhk_sysu_protocol(mat_file)):
        height, width = _size_or_none(image_dir, query["imname"])
        file_name = os.path.join(image_dir, query["imname"]) if image_dir is not None else query["imname"]
        extra = {"query_index": index}
        if with_gallery:
            extra["gallery"] = _compact_gallery(query, image_dir)
        record = make_record(
            file_name, query["imname"], height, width, xywh_to_xyxy(query["box_xywh"]), [query["person_id"]], **extra
        )
        if not record["annotations"]:
            raise ValueError(f"{mat_file}: query {index} box {query['box_xywh'].tolist()} lies outside {file_name}.")
        records.append(record)
    return records


def _scene_records(image_dir, image_boxes, person_ids, names):
    """Records of the images `names`: image_boxes {imname: xywh [N, 4]}, person_ids {imname: int [N]}."""
    records = []
    for imname in names:
        file_name = os.path.join(image_dir, imname)
        height, width = read_image_size(file_name)
        boxes = xywh_to_xyxy(image_boxes[imname])
        records.append(make_record(file_name, imname, height, width, boxes, person_ids[imname]))
    return records


def _label_boxes(image_boxes, labeled_boxes, source):
    """{imname: int [N]} person ids: each (imname, box_xywh [4], pid) of `labeled_boxes` labels the
    Images.mat box with equal coordinates; the rest stay UNLABELED. Unmatched boxes are logged."""
    pids = {name: np.full(len(boxes), UNLABELED, dtype=np.int64) for name, boxes in image_boxes.items()}
    unmatched = 0
    for imname, box, pid in labeled_boxes:
        boxes = image_boxes.get(imname, np.zeros((0, 4)))
        rows = np.flatnonzero((boxes == box).all(axis=1))
        if len(rows):
            pids[imname][rows[0]] = pid
        else:
            unmatched += 1
    if unmatched:
        logger.warning(f"{source}: {unmatched} labeled box(es) match no box of Images.mat; left out")
    return pids


class _CuhkSysuPaths:
    """The files of one CUHK-SYSU copy under `root`; each accessor raises FileNotFoundError if absent."""

    def __init__(self, root=None):
        self.base = os.path.join(root if root is not None else datasets_root(), "cuhk_sysu")

    def _require(self, *parts, what):
        return require_path(os.path.join(self.base, *parts), f"CUHK-SYSU {what}", FIX)

    def image_dir(self):
        return self._require("Image", "SSM", what="image folder")

    def images_mat(self):
        return self._require("annotation", "Images.mat", what="box annotation")

    def pool_mat(self):
        return self._require("annotation", "pool.mat", what="test pool list")

    def train_mat(self):
        return self._require("annotation", "test", "train_test", "Train.mat", what="training identities")

    def protocol_mat(self, gallery_size):
        name = f"TestG{gallery_size}.mat"
        return self._require("annotation", "test", "train_test", name, what=f"test protocol {name}")


def load_cuhk_sysu_train(root=None):
    """Training records: every Images.mat image outside pool.mat; Train.mat identities -> ids 0..K-1."""
    paths = _CuhkSysuPaths(root)
    image_boxes = read_cuhk_sysu_images(paths.images_mat())
    pool = read_cuhk_sysu_pool(paths.pool_mat())
    identities = read_cuhk_sysu_train_identities(paths.train_mat())
    labeled = [(imname, box, pid) for pid, (_, scenes) in enumerate(identities) for imname, box in scenes]
    pids = _label_boxes(image_boxes, labeled, paths.train_mat())
    names = [name for name in image_boxes if name not in pool]
    return _scene_records(paths.image_dir(), image_boxes, pids, names)


def load_cuhk_sysu_gallery(root=None):
    """Test pool records; query identities (TestG50 query and gallery boxes) carry their test id."""
    paths = _CuhkSysuPaths(root)
    image_boxes = read_cuhk_sysu_images(paths.images_mat())
    protocol_file = paths.protocol_mat(50)
    labeled = []
    for query in read_cuhk_sysu_protocol(protocol_file):
        labeled.append((query["imname"], query["box_xywh"], query["person_id"]))
        present = ~np.isnan(query["gallery_xywh"][:, 0])
        for row in np.flatnonzero(present):
            labeled.append((query["gallery_imnames"][row], query["gallery_xywh"][row], query["person_id"]))
    pids = _label_boxes(image_boxes, labeled, protocol_file)
    pool = read_cuhk_sysu_pool(paths.pool_mat())
    names = [name for name in image_boxes if name in pool]
    missing = sorted(pool.difference(image_boxes))
    if missing:
        raise ValueError(
            f"{paths.pool_mat()}: {len(missing)} pool image(s) absent from Images.mat, e.g. {missing[:3]}. {FIX}"
        )
    return _scene_records(paths.image_dir(), image_boxes, pids, names)


def load_cuhk_sysu_queries(root=None, gallery_size=50, query_set=None):
    """Query records of TestG{gallery_size}.mat; gallery_size None = the full-pool protocol
    (TestG50's queries without "gallery"). `query_set` names the set whose metadata gets
    `protocol_file` (the file read) on its first load."""
    paths = _CuhkSysuPaths(root)
    mat_file = paths.protocol_mat(gallery_size or 50)
    records = load_cuhk_sysu_protocol(mat_file, paths.image_dir(), with_gallery=gallery_size is not None)
    if query_set is not None and not hasattr(MetadataCatalog.get(query_set), "protocol_file"):
        MetadataCatalog.get(query_set).set(protocol_file=mat_file)
    return records


def register_all_cuhk_sysu(root=None):
    """Register cuhk_sysu_{train, gallery, query_G50..G4000, query_full}; nothing is read until loaded.

    root: datasets root; None resolves $DETECTRON2_DATASETS (default `datasets/`) at load time.
    """
    register_person_search("cuhk_sysu_train", lambda: load_cuhk_sysu_train(root))
    register_person_search(
        "cuhk_sysu_gallery", lambda: load_cuhk_sysu_gallery(root), query_datasets=list(CUHK_SYSU_QUERY_SETS)
    )
    for gallery_size in CUHK_SYSU_GALLERY_SIZES + (None,):
        name = f"cuhk_sysu_query_G{gallery_size}" if gallery_size else "cuhk_sysu_query_full"
        register_person_search(
            name,
            functools.partial(load_cuhk_sysu_queries, root, gallery_size, name),
            gallery_dataset="cuhk_sysu_gallery",
            protocol="cuhk_sysu",
            gallery_size=gallery_size or -1,
        )
