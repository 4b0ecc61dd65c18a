"""`PSDiff` meta-architecture: person search as dual denoising of boxes and re-id embeddings."""
from functools import partial

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from torch import nn

from ps_plugin.modeling.common import PersonSearchMetaArch

from .denoiser import PSDiffDenoiser
from .detections import detections_from_steps
from .losses import PSDiffCriterion
from .noise_generator import DualNoiseGenerator
from .sampler import DDIMSampler, DPMSolverPlusPlusSampler
from .schedule import DiffusionSchedule
from .signal_coding import (
    embedding_signal_scale,
    gt_boxes_normalized,
    image_whwh,
    signal_to_boxes,
    signal_to_embeddings,
)
from .teacher import PSDiffTeacher, build_psdiff_teacher, channels_differ, check_teacher_embed_dim

__all__ = ["PSDiff"]


@META_ARCH_REGISTRY.register()
class PSDiff(PersonSearchMetaArch):
    """PSDiff (Jia et al.): FPN condition c, dual noise generator, CDL denoiser, DDIM refinement.

    Training input: list of {"image": [C, H, W] in INPUT.FORMAT, "instances": Instances(gt_boxes,
    gt_classes, gt_pids)} -> losses "loss_cls", "loss_l1", "loss_giou", "loss_reid" (+ "_stage{k}" for
    earlier stages). e0 comes from the frozen teacher (teacher.py): its config, passed at build
    (PersonSearchTrainer.build_model), is checked then; its weights load on the first training step.

    Inference: the contract of ps_plugin.structures (PersonSearchMetaArch). Gallery detections carry
    the ê0 denoised jointly with their boxes as pred_embeddings. Given boxes (query boxes, GT boxes
    for GT mAP) are embedded alike (`embed_boxes`): the sampler runs with the box channel fixed to
    them (every step RoI-pools exactly those boxes) and refines only the embeddings from seeded
    noise; the result is the last step's ê0, L2-normalised, one row per box in order.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone,
        in_features,
        denoiser,
        schedule,
        noise_generator,
        criterion,
        sampler,
        pixel_mean,
        pixel_std,
        num_proposals_test=300,
        embed_dim=256,
        nms_thresh=0.5,
        max_detections=100,
        query_seed=0,
        sample_seed=0,
        teacher=None,
        teacher_builder=None,
    ):
        """
        Args:
            teacher: a callable (batched_inputs, gt_boxes list) -> list of e0 [M_i, D], or a ps_plugin
                model answering QUERY_BOXES (wrapped in PSDiffTeacher, kept out of the parameters),
                or None to call `teacher_builder()` on the first training step.
            teacher_builder: () -> teacher (a clear error when built without a teacher config).
        """
        super().__init__()
        self.backbone = backbone
        self.in_features = tuple(in_features)
        self.denoiser = denoiser
        self.schedule = schedule
        self.noise_generator = noise_generator
        self.criterion = criterion
        self.sampler = sampler
        self.num_proposals_test = num_proposals_test
        self.embed_dim = embed_dim
        self.nms_thresh = nms_thresh
        self.max_detections = max_detections
        self.query_seed = query_seed
        self.sample_seed = sample_seed
        self.teacher = PSDiffTeacher(teacher, embed_dim) if isinstance(teacher, nn.Module) else teacher
        self.teacher_builder = teacher_builder
        self.register_pixel_statistics(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg, teacher_cfg=None):
        """teacher_cfg: the teacher's config (ps_plugin.config.load_teacher_cfg), checked against
        PS.REID.EMBED_DIM and INPUT.FORMAT here; None: no teacher (inference, or one set later)."""
        p = cfg.PS.PSDIFF
        if teacher_cfg is not None:
            check_teacher_embed_dim(cfg.PS.REID.EMBED_DIM, teacher_cfg, p.TEACHER.CONFIG_FILE)
            channels_differ(cfg.INPUT.FORMAT, teacher_cfg.INPUT.FORMAT, p.TEACHER.CONFIG_FILE)  # raises on a misfit
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        missing = [f for f in p.IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(
                f"PS.PSDIFF.IN_FEATURES {missing} not produced by MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME} "
                f"(it gives {sorted(shapes)}); use an FPN backbone or change PS.PSDIFF.IN_FEATURES."
            )
        schedule = DiffusionSchedule(p.TIMESTEPS, p.COSINE_S, p.MAX_BETA)
        return {
            "backbone": backbone,
            "in_features": p.IN_FEATURES,
            "denoiser": PSDiffDenoiser(cfg, shapes),
            "schedule": schedule,
            "noise_generator": DualNoiseGenerator(
                schedule, p.NUM_PROPOSALS_TRAIN, p.BOX_SCALE, embed_signal_scale(cfg), p.GT_FILL
            ),
            "criterion": PSDiffCriterion.from_config(cfg),
            "sampler": build_sampler(cfg, schedule),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "num_proposals_test": p.NUM_PROPOSALS_TEST,
            "embed_dim": cfg.PS.REID.EMBED_DIM,
            "nms_thresh": p.NMS_THRESH,
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
            "query_seed": p.QUERY_SEED,
            "sample_seed": p.SAMPLE_SEED,
            "teacher_builder": partial(build_psdiff_teacher, cfg, teacher_cfg),
        }

    def condition(self, batched_inputs):
        """Eq. 9: c = f_θ1(S) -> (ImageList, list of FPN maps in IN_FEATURES order)."""
        images = self.preprocess_image(batched_inputs)
        return images, self._fpn_maps(self.backbone(images.tensor))

    def losses(self, batched_inputs):
        """Training forward (class docstring): dual noise on GT boxes and teacher e0, CDL denoising."""
        images, features = self.condition(batched_inputs)
        instances = [x["instances"].to(self.device) for x in batched_inputs]
        gt_boxes = [inst.gt_boxes.tensor for inst in instances]
        e0 = self._teacher()(batched_inputs, gt_boxes)
        noisy = self.noise_generator([gt_boxes_normalized(inst) for inst in instances], e0)
        whwh = image_whwh(images.image_sizes, self.device)
        stage_outputs = self.denoiser(
            features,
            signal_to_boxes(noisy["boxes"], whwh, self.noise_generator.box_scale),
            signal_to_embeddings(noisy["embeddings"], self.noise_generator.embed_scale),
            noisy["timesteps"],
        )
        targets = [
            {"boxes": boxes, "embeddings": F.normalize(e, dim=-1), "whwh": whwh[i]}
            for i, (boxes, e) in enumerate(zip(gt_boxes, e0))
        ]
        return self.criterion(stage_outputs, targets)

    def _teacher(self):
        if self.teacher is None:
            self.teacher = self.teacher_builder()
        return self.teacher

    def _denoise_fn(self, features):
        """The sampler's view of the denoiser: last stage's outputs on fixed features."""
        return lambda boxes, reid, t: self.denoiser(features, boxes, reid, t)[-1]

    def _generator(self, seed):
        return torch.Generator(device=self.device).manual_seed(seed)

    def _fpn_maps(self, features, image_index=None):
        """Backbone output {name: [B, C, H_l, W_l]} -> the IN_FEATURES maps, in order (image
        `image_index` alone, batch 1, when given)."""
        if image_index is None:
            return [features[f] for f in self.in_features]
        return [features[f][image_index : image_index + 1] for f in self.in_features]

    def detect(self, images, features, inputs):
        """Algorithm 2 from N_test Gaussian boxes/embeddings -> Instances (with pred_embeddings ê0)
        in input-image coordinates; the noise is seeded with PS.PSDIFF.SAMPLE_SEED (unless < 0)."""
        whwh = image_whwh(images.image_sizes, self.device)
        generator = None if self.sample_seed < 0 else self._generator(self.sample_seed)
        step_outputs = self.sampler.sample(
            self._denoise_fn(self._fpn_maps(features)), whwh, self.num_proposals_test, self.embed_dim, generator
        )
        return detections_from_steps(step_outputs, images.image_sizes, self.nms_thresh, self.max_detections)

    @torch.no_grad()
    def embed_boxes(self, features, boxes):
        """Embeddings of given boxes, one image at a time.

        Args:
            features: backbone maps {name: [B, C, H_l, W_l]}.
            boxes: B tensors [K_i, 4], XYXY in the input image.
        Returns:
            B tensors [K_i, D]: L2-normalised ê0, row k for box k; the sampler runs with the box
            channel fixed to the boxes and noise seeded with PS.PSDIFF.QUERY_SEED for each image.
        """
        return [
            self._embed_image_boxes(self._fpn_maps(features, i), image_boxes) for i, image_boxes in enumerate(boxes)
        ]

    def _embed_image_boxes(self, maps, boxes):
        """IN_FEATURES maps [1, C, H_l, W_l] of one image, boxes [K, 4] -> ê0 [K, D] L2-normalised."""
        if len(boxes) == 0:
            return torch.zeros(0, self.embed_dim, device=self.device)
        generator = self._generator(self.query_seed)
        embeddings = self.sampler.sample_embeddings(self._denoise_fn(maps), boxes[None], self.embed_dim, generator)
        return F.normalize(embeddings[0], dim=-1)


def embed_signal_scale(cfg):
    """s of the embedding signal s·Norm(e) for cfg.PS.PSDIFF.EMBED_SCALE / EMBED_SIGNAL and PS.REID.EMBED_DIM."""
    p = cfg.PS.PSDIFF
    return embedding_signal_scale(p.EMBED_SCALE, cfg.PS.REID.EMBED_DIM, p.EMBED_SIGNAL)


def build_sampler(cfg, schedule):
    """The fast sampler of cfg.PS.PSDIFF.SAMPLER: "ddim" (paper default) or "dpm_solver++" (Table V)."""
    p = cfg.PS.PSDIFF
    common = {
        "num_steps": p.SAMPLE_STEPS,
        "box_scale": p.BOX_SCALE,
        "embed_scale": embed_signal_scale(cfg),
        "box_renewal": p.BOX_RENEWAL,
        "renewal_thresh": p.RENEWAL_THRESH,
        "ensemble": p.ENSEMBLE_STEPS,
    }
    if p.SAMPLER == "ddim":
        return DDIMSampler(schedule, eta=p.DDIM_ETA, **common)
    if p.SAMPLER == "dpm_solver++":
        return DPMSolverPlusPlusSampler(schedule, **common)
    raise ValueError(f"cfg.PS.PSDIFF.SAMPLER={p.SAMPLER!r}: use 'ddim' (paper default) or 'dpm_solver++'")
