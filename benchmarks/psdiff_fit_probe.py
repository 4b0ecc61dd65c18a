#!/usr/bin/env python
"""Can PSDiff fit a handful of training images? An overfitting probe for the tiny SynthPS model.

    python benchmarks/psdiff_fit_probe.py [--probe model|head] [--images 4] [--iters 150]
        [--embedding-input noisy|noise] [--max-timestep T] [KEY VALUE ...]

`--probe model` trains the whole model (configs/quick_schedules/psdiff_tiny_synthps.yaml plus KEY VALUE overrides)
on the first --images images of its training set, fixed, through the training mapper, then
evaluates on the same images:
  - detection recall: GT boxes matched at IoU >= 0.5 by a detection scoring above PS.EVAL.DET_THRESH
    (the sampler of the config, from Gaussian noise);
  - re-id on the GT boxes, embedded as queries are (fixed boxes, embeddings denoised from noise):
    mean cos(ê0, e0) with the teacher's e0, nearest-teacher accuracy (is each ê0 closest to its own
    person's e0 among all GT boxes?) and the mean pairwise cosine of the ê0 (1 = all collapsed to one
    vector; the teacher's own is printed next to it).
`--embedding-input noise` replaces the noisy teacher embeddings e_t fed to the CDL in training by
pure Gaussian noise, so ê0 can only come from the RoI features; `--max-timestep T` draws the training
t from {0..T-1} only (noisy boxes stay near their GT box).
`--probe head` isolates the denoiser: backbone features computed once, the input boxes are the GT
boxes themselves, F_r is Gaussian noise, t = 0, and only the re-id loss ‖Norm(e0) − ê0‖ is trained.
Prints the losses as training goes and a markdown table row at the end.
"""
import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from ps_plugin.config import get_ps_cfg, load_teacher_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.modeling.psdiff import PSDiff
from ps_plugin.modeling.psdiff.teacher import build_psdiff_teacher
from ps_plugin.structures import QUERY_BOXES, QUERY_EMBEDDINGS

ROOT = Path(__file__).resolve().parents[1]


class ProbeNoiseGenerator:
    """The model's dual noise generator with the embedding channel replaced by N(0, I) and/or t < max_timestep."""

    def __init__(self, generator, embedding_noise, max_timestep):
        self.generator = generator
        self.box_scale, self.embed_scale = generator.box_scale, generator.embed_scale
        self.embedding_noise, self.max_timestep = embedding_noise, max_timestep

    def __call__(self, gt_boxes, gt_embeddings):
        timesteps = None
        if self.max_timestep:
            timesteps = torch.randint(0, self.max_timestep, (len(gt_boxes),), device=gt_embeddings[0].device)
        out = self.generator(gt_boxes, gt_embeddings, timesteps=timesteps)
        if self.embedding_noise:
            out["embeddings"] = torch.randn_like(out["embeddings"])
        return out


def embedding_quality(embeddings, teacher):
    """[M, D] ê0 and [M, D] e0 (L2-normalised) -> (mean cos, nearest-teacher accuracy, mean pairwise cos of ê0)."""
    embeddings = F.normalize(embeddings, dim=-1)
    nearest = (embeddings @ teacher.t()).argmax(dim=1) == torch.arange(len(teacher))
    cos = (embeddings * teacher).sum(dim=-1).mean()
    return float(cos), float(nearest.float().mean()), float((embeddings @ embeddings.t()).mean())


def probe_model(cfg, dicts, args):
    parts = PSDiff.from_config(cfg)  # PSDiff's @configurable arguments, with the probe's noise generator
    embedding_noise = args.embedding_input == "noise"
    parts["noise_generator"] = ProbeNoiseGenerator(parts["noise_generator"], embedding_noise, args.max_timestep)
    model = PSDiff(**parts).to(cfg.MODEL.DEVICE)
    optimizer = PersonSearchTrainer.build_optimizer(cfg, model)
    train_mapper = PersonSearchDatasetMapper(cfg, is_train=True)
    start = time.perf_counter()
    for iteration in range(args.iters):
        losses = model([train_mapper(copy.deepcopy(d)) for d in dicts])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE)
        optimizer.step()
        if iteration % 25 == 0 or iteration == args.iters - 1:
            shown = {k: round(float(v), 3) for k, v in losses.items() if "stage" not in k}
            print(f"iter {iteration} ({time.perf_counter() - start:.0f} s): {shown}", flush=True)
    return evaluate_model(cfg, model.eval(), model.teacher or build_psdiff_teacher(cfg, load_teacher_cfg(cfg)), dicts)


@torch.no_grad()
def evaluate_model(cfg, model, teacher, dicts):
    """-> detection recall, ê0 [M, D] of the GT boxes of `dicts`, their e0 [M, D] from `teacher`."""
    test_mapper = PersonSearchDatasetMapper(cfg, is_train=False)
    found, total, embeddings, teacher_embeddings = 0, 0, [], []
    for d in dicts:
        x = test_mapper(copy.deepcopy(d))
        detections = model([x])[0]["instances"]
        detections = detections[detections.scores > cfg.PS.EVAL.DET_THRESH]
        original = torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]], dtype=torch.float32
        )
        if len(detections):
            found += int((pairwise_iou(Boxes(original), detections.pred_boxes).max(dim=1).values >= 0.5).sum())
        total += len(original)
        image_h, image_w = x["image"].shape[1:]
        scale = torch.tensor([image_w / d["width"], image_h / d["height"]] * 2)
        boxes = original * scale
        embeddings.append(model([{"image": x["image"], QUERY_BOXES: boxes}])[0][QUERY_EMBEDDINGS])
        teacher_embeddings.append(teacher([x], [boxes])[0])
    return found / max(total, 1), torch.cat(embeddings), torch.cat(teacher_embeddings)


def probe_head(cfg, dicts, args):
    model = PersonSearchTrainer.build_model(cfg)
    mapper = PersonSearchDatasetMapper(cfg, is_train=True)
    batch = [mapper(copy.deepcopy(d)) for d in dicts]
    with torch.no_grad():
        _, features = model.condition(batch)
        gt_boxes = [x["instances"].gt_boxes.tensor for x in batch]
        teacher = build_psdiff_teacher(cfg, load_teacher_cfg(cfg))(batch, gt_boxes)
    per_image = min(len(b) for b in gt_boxes)
    boxes = torch.stack([b[:per_image] for b in gt_boxes])
    target = torch.stack([e[:per_image] for e in teacher])
    optimizer = torch.optim.AdamW(model.denoiser.parameters(), lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    timesteps = torch.zeros(len(batch), dtype=torch.long)
    for iteration in range(args.iters):
        noise = F.normalize(torch.randn(*boxes.shape[:2], model.embed_dim), dim=-1)
        predicted = model.denoiser(features, boxes, noise, timesteps)[-1]["pred_embeddings"]
        loss = (predicted - target).norm(dim=-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % 25 == 0 or iteration == args.iters - 1:
            print(f"iter {iteration}: ‖Norm(e0) − ê0‖ {loss.item():.3f}", flush=True)
    return None, predicted.detach().flatten(0, 1), target.flatten(0, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(ROOT / "configs" / "quick_schedules" / "psdiff_tiny_synthps.yaml"))
    parser.add_argument("--probe", choices=("model", "head"), default="model")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--embedding-input", choices=("noisy", "noise"), default="noisy")
    parser.add_argument("--max-timestep", type=int, default=0, help="0: t ~ U{0..T-1} as in training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE overrides")
    args = parser.parse_args()
    cfg = get_ps_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    torch.manual_seed(args.seed)
    dicts = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[: args.images]
    recall, embeddings, teacher = (probe_head if args.probe == "head" else probe_model)(cfg, dicts, args)
    cos, nearest, pairwise = embedding_quality(embeddings, teacher)
    teacher_pairwise = float((teacher @ teacher.t()).mean())
    print("| probe | embedding input | max t | det recall | cos(ê0, e0) | nearest-teacher acc. | pairwise cos ê0 (e0) |")
    print("|---|---|---|---:|---:|---:|---:|")
    if args.probe == "head":
        setting = ("noise", "t = 0", "–")
    else:
        setting = (args.embedding_input, args.max_timestep or "T", f"{100 * recall:.0f} %")
    print(f"| {args.probe} | {' | '.join(map(str, setting))} | {cos:.2f} | "
          f"{100 * nearest:.0f} % of {len(teacher)} | {pairwise:.2f} ({teacher_pairwise:.2f}) |")


if __name__ == "__main__":
    main()
