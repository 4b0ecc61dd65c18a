"""`PersonSearchDatasetMapper`: a person-search dataset dict -> the model's input dict."""
import copy
import logging

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from ps_plugin.structures import GT_BOXES_FOR_REID, IGNORE_BOXES, QUERY_BOXES, VIEWS

from .datasets.record_fields import IGNORE_REGIONS
from .transforms import build_person_search_augmentation

__all__ = ["PersonSearchDatasetMapper"]

logger = logging.getLogger(__name__)


class PersonSearchDatasetMapper:
    """Read the image of a record (docs/DATA_RECORDS.md), augment it and build its ground truth.

    Output (one view; every key of the record is carried through, e.g. "file_name", "image_id",
    "height", "width" (original size), "camera_id", "dataset_name", "domain", "query_index"):

    - "image": uint8 tensor [C, H, W] in cfg.INPUT.FORMAT, after augmentation.
    - "instances": Instances of image size (H, W) with
        gt_boxes (Boxes [N, 4], XYXY in the augmented image), gt_classes (int64 [N], all 0),
        gt_pids (int64 [N], -1 = unlabeled person),
        gt_box_ids (int64 [N], index of the box in the record's "annotations": the same id in two
        views of one image is the same physical box; set in every mode for uniformity).
      Boxes less visible than `min_box_visibility` after a crop, and empty boxes, are dropped
      together with their pid and id. An image without people gives N = 0.
    - training: "annotations" is removed (the instances replace it). A record with "ignore_regions"
      (float32 [M, 4] XYXY_ABS, CrowdHuman) also gives IGNORE_BOXES: float32 [M', 4], the regions in the
      augmented image, clipped to it, empty ones dropped (off with `ignore_regions=False`,
      cfg.PS.DATA.IGNORE_REGIONS).
    - test: "annotations" is kept untouched (original frame) and "instances" holds the
      transformed ground truth, which gallery GT-box embeddings (GT mAP, QC pass 1) need.
      Query records (with "query_index") also get QUERY_BOXES: float32 [K, 4], the query
      box(es) in the augmented image. Gallery records get GT_BOXES_FOR_REID: float32 [M, 4],
      every annotation's box in the augmented image, in annotation order (no box is dropped:
      a box made degenerate by the transform keeps its row), from which the model returns the
      GT_EMBEDDINGS of GT mAP; off with `gt_map=False` (cfg.PS.EVAL.GT_MAP). The upper-case names
      are the key constants of ps_plugin.structures.

    With `num_views` = k > 1 (training only) the output is the record's keys (less
    "annotations") plus VIEWS: a list of k independently augmented single-view dicts of the
    same image, as above. Detectron2's trivial batch collator (a list of dicts) serves both modes.
    """

    @configurable
    def __init__(
        self, is_train, *, augmentations, image_format, num_views=1, min_box_visibility=0.0, gt_map=True,
        ignore_regions=True,
    ):
        """
        Args:
            is_train: training (drop "annotations", allow k views) or test mode.
            augmentations (list[Augmentation or Transform]): applied in order to AugInput(image, boxes).
            image_format: cfg.INPUT.FORMAT, e.g. "BGR".
            num_views: k augmented views per image; must be 1 in test mode.
            min_box_visibility: drop boxes keeping less than this fraction of their area.
            gt_map: test mode, gallery records: add GT_BOXES_FOR_REID (GT mAP input).
            ignore_regions: training mode, records with "ignore_regions": add IGNORE_BOXES.
        """
        if num_views < 1 or (num_views > 1 and not is_train):
            raise ValueError(
                f"PersonSearchDatasetMapper: num_views={num_views} is invalid; use 1, or k > 1 for training only "
                "(cfg.PS.INPUT.NUM_VIEWS)."
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_views = num_views
        self.min_box_visibility = min_box_visibility
        self.gt_map = gt_map
        self.ignore_regions = ignore_regions
        mode = "training" if is_train else "inference"
        logger.info(f"[PersonSearchDatasetMapper] {mode} augmentations, {num_views} view(s): {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train=True):
        return {
            "is_train": is_train,
            "augmentations": build_person_search_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "num_views": cfg.PS.INPUT.NUM_VIEWS if is_train else 1,
            "min_box_visibility": cfg.PS.INPUT.MIN_BOX_VISIBILITY,
            "gt_map": cfg.PS.EVAL.GT_MAP,
            "ignore_regions": cfg.PS.DATA.IGNORE_REGIONS,
        }

    def __call__(self, dataset_dict):
        """dataset_dict (not modified) -> one view dict, or {..., VIEWS: [k view dicts]}."""
        record = copy.deepcopy(dataset_dict)
        image = self._read_image(record)
        if self.num_views == 1:
            return self._make_view(record, image)
        multi_view = {k: v for k, v in record.items() if k != "annotations"}
        multi_view[VIEWS] = [self._make_view(record, image) for _ in range(self.num_views)]
        return multi_view

    def _read_image(self, record):
        """Image [H, W, C] uint8; fills a missing height/width and checks a given one."""
        file_name = record["file_name"]
        try:
            image = utils.read_image(file_name, format=self.image_format)
        except (OSError, ValueError, SyntaxError) as e:
            raise OSError(
                f"Cannot read image '{file_name}' (image_id={record.get('image_id')!r}, dataset="
                f"{record.get('dataset_name')!r}): {type(e).__name__}: {e}. The file is missing or corrupt: "
                "re-download or re-extract it, or remove this image from the dataset."
            ) from e
        for key, size in (("height", image.shape[0]), ("width", image.shape[1])):
            if record.get(key) is None:
                record[key] = size
        utils.check_image_size(record, image)
        return image

    def _make_view(self, record, image):
        """One augmented view of `record` (left unmodified) and its image [H, W, C]."""
        annotations = copy.deepcopy(record.get("annotations", []))
        boxes = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations], dtype=np.float32
        ).reshape(-1, 4)
        aug_input = T.AugInput(image, boxes=boxes)
        transforms = self.augmentations(aug_input)
        view_image = aug_input.image
        image_hw = view_image.shape[:2]

        view = {k: v for k, v in record.items() if k != "annotations" or not self.is_train}
        view["image"] = torch.as_tensor(np.ascontiguousarray(view_image.transpose(2, 0, 1)))
        view["instances"] = self._instances(annotations, transforms, image_hw, aug_input.boxes)
        if self.is_train:
            if self.ignore_regions and IGNORE_REGIONS in record:
                view[IGNORE_BOXES] = _transformed_regions(record[IGNORE_REGIONS], transforms, image_hw)
            return view
        transformed_boxes = torch.as_tensor(np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4))
        if "query_index" in record:
            view[QUERY_BOXES] = transformed_boxes
        elif self.gt_map and "annotations" in record:
            view[GT_BOXES_FOR_REID] = transformed_boxes
        return view

    def _instances(self, annotations, transforms, image_hw, unclipped_boxes):
        """Instances of the transformed `annotations` (modified in place: clipped XYXY boxes).

        unclipped_boxes: [N, 4] the boxes transformed without clipping, for the visibility test.
        """
        for annotation in annotations:
            utils.transform_instance_annotations(annotation, transforms, image_hw)
        instances = utils.annotations_to_instances(annotations, image_hw)
        instances.gt_pids = torch.tensor([int(a["person_id"]) for a in annotations], dtype=torch.int64)
        instances.gt_box_ids = torch.arange(len(annotations), dtype=torch.int64)
        full_area = torch.as_tensor(_box_area(unclipped_boxes), dtype=torch.float32)
        visible = instances.gt_boxes.area() >= self.min_box_visibility * full_area
        return utils.filter_empty_instances(instances[visible])


def _transformed_regions(regions, transforms, image_hw):
    """regions [M, 4] XYXY_ABS of the original image -> float32 tensor [M', 4]: through `transforms`,
    clipped to the image (H, W), zero-area ones dropped."""
    boxes = transforms.apply_box(np.asarray(regions, dtype=np.float32).reshape(-1, 4))
    boxes = np.clip(boxes, 0, [image_hw[1], image_hw[0], image_hw[1], image_hw[0]]).astype(np.float32)
    return torch.as_tensor(boxes[_box_area(boxes) > 0])


def _box_area(boxes):
    """Areas [N] of XYXY boxes [N, 4] (may lie partly outside the image)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
