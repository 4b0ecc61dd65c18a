"""`PSDiff` meta-architecture: person search as dual denoising of boxes and re-id embeddings."""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import ImageList
from torch import nn

from ps_plugin.structures import GT_BOXES_FOR_REID, GT_EMBEDDINGS, QUERY_BOXES, QUERY_EMBEDDINGS

from .denoiser import PSDiffDenoiser
from .detections import detections_from_steps
from .losses import PSDiffCriterion
from .noise_generator import DualNoiseGenerator
from .sampler import DDIMSampler, DPMSolverPlusPlusSampler
from .schedule import DiffusionSchedule
from .signal_coding import gt_boxes_normalized, image_whwh, signal_to_boxes, signal_to_embeddings
from .teacher import PSDiffTeacher, build_psdiff_teacher

__all__ = ["PSDiff"]


@META_ARCH_REGISTRY.register()
class PSDiff(nn.Module):
    """PSDiff (Jia et al.): FPN condition c, dual noise generator, CDL denoiser, DDIM refinement.

    Training input: list of {"image": [C, H, W] in INPUT.FORMAT, "instances": Instances(gt_boxes,
    gt_classes, gt_pids)} -> losses "loss_cls", "loss_l1", "loss_giou", "loss_reid" (+ "_stage{k}" for
    earlier stages). e0 comes from the frozen teacher (teacher.py), loaded on the first training step.

    Inference input, per image (keys: ps_plugin.structures):
      - gallery (no QUERY_BOXES): -> {"instances": Instances(pred_boxes, scores, pred_classes,
        pred_embeddings [n, D] L2-normalised)} in the original size ("height"/"width"); with
        GT_BOXES_FOR_REID [M, 4] (input-image coordinates) also GT_EMBEDDINGS [M, D] (GT mAP);
      - query (QUERY_BOXES [K, 4], input-image coordinates) -> {QUERY_EMBEDDINGS: [K, D]}.
    Given boxes (query boxes, GT boxes for GT mAP) are embedded alike: the sampler runs with the box
    channel fixed to them (every step RoI-pools exactly those boxes) and refines only the embeddings
    from seeded noise; the result is the last step's ê0, L2-normalised, one row per box in order.
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
        teacher=None,
        teacher_builder=None,
    ):
        """
        Args:
            teacher: a callable (batched_inputs, gt_boxes list) -> list of e0 [M_i, D], or a ps_plugin
                model answering QUERY_BOXES (wrapped in PSDiffTeacher, kept out of the parameters),
                or None to call `teacher_builder()` on the first training step.
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
        self.teacher = PSDiffTeacher(teacher, embed_dim) if isinstance(teacher, nn.Module) else teacher
        self.teacher_builder = teacher_builder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        p = cfg.PS.PSDIFF
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
                schedule, p.NUM_PROPOSALS_TRAIN, p.BOX_SCALE, p.EMBED_SCALE, p.GT_FILL
            ),
            "criterion": PSDiffCriterion.from_config(cfg),
            "sampler": build_sampler(cfg, schedule),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "num_proposals_test": p.NUM_PROPOSALS_TEST,
            "embed_dim": p.EMBED_DIM,
            "nms_thresh": p.NMS_THRESH,
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
            "query_seed": p.QUERY_SEED,
            "teacher_builder": lambda: build_psdiff_teacher(cfg),
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs):
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def condition(self, batched_inputs):
        """Eq. 9: c = f_θ1(S) -> (ImageList, list of FPN maps in IN_FEATURES order)."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        return images, [features[f] for f in self.in_features]

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
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

    def inference(self, batched_inputs, do_postprocess=True):
        """Gallery and query inputs may be mixed in one batch; outputs keep the input order."""
        assert not self.training
        outputs = [{} for _ in batched_inputs]
        for i, x in enumerate(batched_inputs):
            if QUERY_BOXES in x:
                outputs[i][QUERY_EMBEDDINGS] = self.embed_queries(x)
        gallery = [i for i, x in enumerate(batched_inputs) if QUERY_BOXES not in x]
        if gallery:
            self._search_gallery([batched_inputs[i] for i in gallery], [outputs[i] for i in gallery], do_postprocess)
        return outputs

    def _search_gallery(self, inputs, outputs, do_postprocess):
        """Detections of every gallery input, plus GT_EMBEDDINGS where GT_BOXES_FOR_REID is given."""
        images, features = self.condition(inputs)
        for k, (x, det) in enumerate(zip(inputs, self._detect(images, features))):
            if GT_BOXES_FOR_REID in x:
                outputs[k][GT_EMBEDDINGS] = self._embed_boxes([f[k : k + 1] for f in features], x[GT_BOXES_FOR_REID])
            if do_postprocess:
                det = detector_postprocess(det, x.get("height", det.image_size[0]), x.get("width", det.image_size[1]))
            outputs[k]["instances"] = det

    def _denoise_fn(self, features):
        """The sampler's view of the denoiser: last stage's outputs on fixed features."""
        return lambda boxes, reid, t: self.denoiser(features, boxes, reid, t)[-1]

    @torch.no_grad()
    def detect(self, batched_inputs):
        """Algorithm 2 from N_test Gaussian boxes/embeddings -> Instances in input-image coordinates."""
        return self._detect(*self.condition(batched_inputs))

    def _detect(self, images, features):
        whwh = image_whwh(images.image_sizes, self.device)
        step_outputs = self.sampler.sample(self._denoise_fn(features), whwh, self.num_proposals_test, self.embed_dim)
        return detections_from_steps(step_outputs, images.image_sizes, self.nms_thresh, self.max_detections)

    @torch.no_grad()
    def embed_queries(self, query_input):
        """{"image", QUERY_BOXES: [K, 4]} -> L2-normalised ê0 [K, D] for the given boxes (seeded noise)."""
        _, features = self.condition([query_input])
        return self._embed_boxes(features, query_input[QUERY_BOXES])

    @torch.no_grad()
    def _embed_boxes(self, features, boxes):
        """Embeddings of given boxes on one image's FPN maps (batch 1).

        Args:
            features: list of FPN maps [1, C, H_l, W_l].
            boxes: [K, 4] XYXY in the input image.
        Returns:
            L2-normalised ê0 [K, D], row k for box k; the noise is seeded with PS.PSDIFF.QUERY_SEED.
        """
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=self.device).reshape(1, -1, 4)
        if boxes.shape[1] == 0:
            return torch.zeros(0, self.embed_dim, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.query_seed)
        embeddings = self.sampler.sample_embeddings(self._denoise_fn(features), boxes, self.embed_dim, generator)
        return F.normalize(embeddings[0], dim=-1)


def build_sampler(cfg, schedule):
    """The fast sampler of cfg.PS.PSDIFF.SAMPLER: "ddim" (paper default) or "dpm_solver++" (Table V)."""
    p = cfg.PS.PSDIFF
    common = {
        "num_steps": p.SAMPLE_STEPS,
        "box_scale": p.BOX_SCALE,
        "embed_scale": p.EMBED_SCALE,
        "box_renewal": p.BOX_RENEWAL,
        "renewal_thresh": p.RENEWAL_THRESH,
        "ensemble": p.ENSEMBLE_STEPS,
    }
    if p.SAMPLER == "ddim":
        return DDIMSampler(schedule, eta=p.DDIM_ETA, **common)
    if p.SAMPLER == "dpm_solver++":
        return DPMSolverPlusPlusSampler(schedule, **common)
    raise ValueError(f"cfg.PS.PSDIFF.SAMPLER={p.SAMPLER!r}: use 'ddim' (paper default) or 'dpm_solver++'")
