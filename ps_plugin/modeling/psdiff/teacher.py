"""Frozen re-id teacher giving the embedding ground truth e0 = Teacher(S, b0) (paper eq. 11).

Any trained ps_plugin model that answers the query contract (ps_plugin.structures) can be the teacher:
given inputs {"image", "height", "width", QUERY_BOXES: [K, 4]} in eval mode it returns
{QUERY_EMBEDDINGS: [K, D]}.
The paper uses a supervised HHCL re-id model; here the natural choice is the baseline:

    python tools/train_net.py --config-file configs/<baseline>.yaml OUTPUT_DIR output/teacher
    # then, in the PSDiff config:
    PS.PSDIFF.TEACHER.CONFIG_FILE  configs/<baseline>.yaml
    PS.PSDIFF.TEACHER.WEIGHTS      output/teacher/model_final.pth

The teacher is used only in training and is kept outside PSDiff's modules: it is neither trained
nor saved in PSDiff checkpoints, and inference never loads it.
"""
import logging
import os

import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ps_plugin.config import get_ps_cfg
from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS

logger = logging.getLogger(__name__)


def _require_file(path, key):
    if not path or not os.path.isfile(os.path.expanduser(path)):
        raise FileNotFoundError(
            f"{key}='{path}' is not a local file. PSDiff training needs a frozen re-id teacher (eq. 11): "
            "train a ps_plugin model (e.g. the baseline, tools/train_net.py) and set "
            "PS.PSDIFF.TEACHER.CONFIG_FILE to its yaml and PS.PSDIFF.TEACHER.WEIGHTS to its checkpoint."
        )


def load_teacher_model(config_file, weights, device):
    """Build the teacher from its yaml and load its local checkpoint -> (model in eval mode, its cfg)."""
    _require_file(config_file, "PS.PSDIFF.TEACHER.CONFIG_FILE")
    _require_file(weights, "PS.PSDIFF.TEACHER.WEIGHTS")
    cfg = get_ps_cfg()
    cfg.merge_from_file(config_file)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = str(device)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    logger.info(f"PSDiff teacher {cfg.MODEL.META_ARCHITECTURE} loaded from {weights}")
    return model.eval(), cfg


def channels_differ(student_format, teacher_format, teacher_config):
    """True when the teacher reads the other of RGB/BGR than PSDiff's INPUT.FORMAT (images are flipped for it)."""
    if student_format == teacher_format:
        return False
    if {student_format, teacher_format} == {"RGB", "BGR"}:
        return True
    raise ValueError(
        f"PSDiff INPUT.FORMAT={student_format!r} but the teacher {teacher_config} reads {teacher_format!r}: "
        "use the teacher's INPUT.FORMAT in the PSDiff config."
    )


class PSDiffTeacher:
    """Wraps a frozen model: (batched inputs, GT boxes per image) -> L2-normalised e0 per image."""

    def __init__(self, model, embed_dim, flip_channels=False):
        """
        Args:
            model: frozen teacher answering QUERY_BOXES with QUERY_EMBEDDINGS.
            embed_dim: D, the teacher's embedding size (= PS.PSDIFF.EMBED_DIM).
            flip_channels: reverse the channel axis of each image (PSDiff RGB, teacher BGR or vice versa).
        """
        self.model = model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.embed_dim = embed_dim
        self.flip_channels = flip_channels

    @torch.no_grad()
    def __call__(self, batched_inputs, gt_boxes):
        """
        Args:
            batched_inputs: the training dicts ("image", optional "height"/"width").
            gt_boxes: list (per image) of XYXY GT boxes [M_i, 4] in the input image.
        Returns:
            list of e0 [M_i, D], L2-normalised, on the boxes' device.
        """
        device = gt_boxes[0].device
        self.model.to(device).eval()
        with_boxes = [i for i, boxes in enumerate(gt_boxes) if len(boxes)]
        embeddings = [torch.zeros(0, self.embed_dim, device=device) for _ in gt_boxes]
        if not with_boxes:
            return embeddings
        queries = [self._query_input(batched_inputs[i], gt_boxes[i]) for i in with_boxes]
        for i, output in zip(with_boxes, self.model(queries)):
            embeddings[i] = self._checked(output, batched_inputs[i], len(gt_boxes[i])).to(device)
        return embeddings

    def _query_input(self, record, boxes):
        image = record["image"].flip(0) if self.flip_channels else record["image"]
        height, width = image.shape[-2:]
        return {"image": image, "height": height, "width": width, QUERY_BOXES: boxes.float()}

    def _checked(self, output, record, num_boxes):
        name = record.get("file_name", record.get("image_id", "<image>"))
        if QUERY_EMBEDDINGS not in output:
            raise KeyError(
                f"PSDiff teacher returned {sorted(output)} for '{name}' instead of '{QUERY_EMBEDDINGS}': the teacher "
                f"must be a ps_plugin model that embeds given '{QUERY_BOXES}' (PS.PSDIFF.TEACHER.CONFIG_FILE)."
            )
        embeddings = output[QUERY_EMBEDDINGS]
        if embeddings.shape != (num_boxes, self.embed_dim):
            raise ValueError(
                f"PSDiff teacher gave embeddings {tuple(embeddings.shape)} for '{name}', expected "
                f"({num_boxes}, {self.embed_dim}): set PS.PSDIFF.EMBED_DIM to the teacher's embedding size."
            )
        return F.normalize(embeddings.float(), dim=-1)


def build_psdiff_teacher(cfg):
    """PSDiffTeacher from PS.PSDIFF.TEACHER.{CONFIG_FILE, WEIGHTS} (raises a clear error when unset)."""
    config_file = cfg.PS.PSDIFF.TEACHER.CONFIG_FILE
    model, teacher_cfg = load_teacher_model(config_file, cfg.PS.PSDIFF.TEACHER.WEIGHTS, cfg.MODEL.DEVICE)
    flip = channels_differ(cfg.INPUT.FORMAT, teacher_cfg.INPUT.FORMAT, config_file)
    return PSDiffTeacher(model, cfg.PS.PSDIFF.EMBED_DIM, flip_channels=flip)
