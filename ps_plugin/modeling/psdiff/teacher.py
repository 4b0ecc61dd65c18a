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
nor saved in PSDiff checkpoints, and inference never loads it. Its config comes from
ps_plugin.config.load_teacher_cfg (PersonSearchTrainer.build_model passes it to PSDiff), which lets
PSDiff check the teacher's embedding size when it is built.
"""
import logging
import os

import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS

logger = logging.getLogger(__name__)


def _require_file(path, key):
    if not path or not os.path.isfile(os.path.expanduser(path)):
        raise FileNotFoundError(
            f"{key}='{path}' is not a local file. PSDiff training needs a frozen re-id teacher (eq. 11): "
            "train a ps_plugin model (e.g. the baseline, tools/train_net.py) and set "
            "PS.PSDIFF.TEACHER.CONFIG_FILE to its yaml and PS.PSDIFF.TEACHER.WEIGHTS to its checkpoint."
        )


def _missing_teacher(cfg):
    """Raise for a PSDiff without a teacher config: FileNotFoundError naming PS.PSDIFF.TEACHER.CONFIG_FILE
    when it is unset or absent, else RuntimeError naming the builder that loads it."""
    config_file = cfg.PS.PSDIFF.TEACHER.CONFIG_FILE
    _require_file(config_file, "PS.PSDIFF.TEACHER.CONFIG_FILE")
    raise RuntimeError(
        f"PSDiff was built without its teacher's config ({config_file}): build it with "
        "PersonSearchTrainer.build_model(cfg) (it passes ps_plugin.config.load_teacher_cfg(cfg) as "
        "teacher_cfg), or set model.teacher."
    )


def check_teacher_embed_dim(embed_dim, teacher_cfg, config_file):
    """Raise when PSDiff's D = PS.REID.EMBED_DIM differs from the teacher's PS.REID.EMBED_DIM."""
    teacher_dim = teacher_cfg.PS.REID.EMBED_DIM
    if teacher_dim != embed_dim:
        raise ValueError(
            f"PSDiff PS.REID.EMBED_DIM={embed_dim} but its teacher {config_file} embeds into {teacher_dim} "
            f"dimensions: e0 = Teacher(S, b0) (eq. 11) is PSDiff's embedding target, set PS.REID.EMBED_DIM "
            f"{teacher_dim} in the PSDiff config."
        )


def load_teacher_model(teacher_cfg):
    """Build the teacher from its config (ps_plugin.config.load_teacher_cfg) and load its local
    checkpoint MODEL.WEIGHTS -> model in eval mode."""
    _require_file(teacher_cfg.MODEL.WEIGHTS, "PS.PSDIFF.TEACHER.WEIGHTS")
    model = build_model(teacher_cfg)
    DetectionCheckpointer(model).load(teacher_cfg.MODEL.WEIGHTS)
    logger.info(f"PSDiff teacher {teacher_cfg.MODEL.META_ARCHITECTURE} loaded from {teacher_cfg.MODEL.WEIGHTS}")
    return model.eval()


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
            embed_dim: D, the teacher's embedding size (= PS.REID.EMBED_DIM).
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
                f"({num_boxes}, {self.embed_dim}): set PS.REID.EMBED_DIM to the teacher's embedding size."
            )
        return F.normalize(embeddings.float(), dim=-1)


def build_psdiff_teacher(cfg, teacher_cfg):
    """PSDiffTeacher for the PSDiff `cfg` from `teacher_cfg` (ps_plugin.config.load_teacher_cfg(cfg));
    clear errors when that is None or the teacher's checkpoint is missing or its input format or
    embedding size do not fit."""
    if teacher_cfg is None:
        _missing_teacher(cfg)
    config_file = cfg.PS.PSDIFF.TEACHER.CONFIG_FILE
    check_teacher_embed_dim(cfg.PS.REID.EMBED_DIM, teacher_cfg, config_file)
    flip = channels_differ(cfg.INPUT.FORMAT, teacher_cfg.INPUT.FORMAT, config_file)
    return PSDiffTeacher(load_teacher_model(teacher_cfg), cfg.PS.REID.EMBED_DIM, flip_channels=flip)
