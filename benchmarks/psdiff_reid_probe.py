#!/usr/bin/env python
"""How fast does PSDiff's embedding path learn appearance? A distillation probe on fixed RoI features.

    python benchmarks/psdiff_reid_probe.py [--iters 400] [--eval-period 100] [--heads cdl,mlp] [KEY VALUE ...]

The config (default configs/quick_schedules/psdiff_tiny_synthps.yaml, plus KEY VALUE overrides) gives the backbone,
the CDL and the loss. The backbone is fixed: at its initial weights (ImageNet MobileNetV2 + an
untrained FPN), or those of a trained PSDiff checkpoint given as MODEL.WEIGHTS. Once,
the script caches the RoIAlign features of every GT box of the SynthPS training images (one pass
of the training mapper) and of the first --test-images gallery images, with the teacher's e0.
Then it trains only an embedding path on them with PS.PSDIFF.REID_LOSS, batches of 4 images:

  - `cdl`: one CDL stage as training sees it, on exact GT boxes: t ~ U{0..T-1} per image and
    F_r = Norm(clamp(e_t)) with e_t from eq. 10 (the copy path from e0 is open at small t);
  - `mlp`: a plain head on the same RoIs (Flatten -> Linear -> LayerNorm -> ReLU -> Linear), the
    distillation baseline without diffusion.

Every --eval-period iterations it embeds the test GT boxes as a 1-step query is embedded
(t = T-1, F_r pure noise) and scores GT-to-GT retrieval: every labelled box queries all other
labelled test boxes (mAP and top-1 with ps_plugin.evaluation.search_metrics). The teacher's own
embeddings give the reference row. Prints the curve as it goes and a markdown table at the end.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from torch import nn

from ps_plugin.config import get_ps_cfg, load_teacher_cfg
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.evaluation.search_metrics import ranking_metrics, summarize
from ps_plugin.modeling.psdiff.signal_coding import signal_to_embeddings
from ps_plugin.modeling.psdiff.teacher import build_psdiff_teacher

ROOT = Path(__file__).resolve().parents[1]
BATCH_IMAGES = 4


@torch.no_grad()
def cache_rois(model, teacher, dataset, is_train, cfg, limit=None):
    """[(rois [M, C, S, S], GT boxes [M, 4], e0 [M, D], pids [M])] for the images of `dataset` with persons;
    e0 from `teacher` (a PSDiffTeacher)."""
    mapper = PersonSearchDatasetMapper(cfg, is_train=is_train)
    pooler = model.denoiser.stages[0].pooler
    cached = []
    for record in DatasetCatalog.get(dataset)[:limit]:
        x = mapper(dict(record))
        instances = x["instances"]
        if len(instances) == 0:
            continue
        _, features = model.condition([x])
        e0 = teacher([x], [instances.gt_boxes.tensor])[0]
        cached.append((pooler(features, [instances.gt_boxes]), instances.gt_boxes.tensor, e0, instances.gt_pids))
    return cached


def gt_retrieval(embeddings, pids):
    """GT-to-GT retrieval among labelled boxes: embeddings [M, D], pids [M] -> {"mAP", "top1", ...}."""
    labelled = pids >= 0
    embeddings, pids = F.normalize(embeddings[labelled], dim=-1), pids[labelled]
    scores = (embeddings @ embeddings.t()).double().numpy()
    np.fill_diagonal(scores, -np.inf)
    positive = (pids[:, None] == pids[None, :]).numpy()
    np.fill_diagonal(positive, False)
    has_match = positive.any(axis=1)
    ap, hit_rank = ranking_metrics(scores[has_match], positive[has_match], positive[has_match].sum(axis=1))
    return summarize(ap, hit_rank)


class CDLEmbedding(nn.Module):
    """ê0 of one fresh CDL stage (the config's) on cached RoIs of one image."""

    def __init__(self, model):
        super().__init__()
        self.time_embedding = model.denoiser.time_embedding
        self.stage = model.denoiser.stages[0]
        self.schedule, self.embed_scale = model.schedule, model.noise_generator.embed_scale
        self.embed_dim = model.embed_dim

    def forward(self, rois, boxes, e0=None, t=None):
        """e0 given: F_r from eq. 10 at t; else F_r from pure noise (t = T-1 unless given)."""
        t = self.schedule.num_timesteps - 1 if t is None else t
        noise = torch.randn(len(boxes), self.embed_dim, device=rois.device)
        signal = noise
        if e0 is not None:
            alpha_bar = self.schedule.alpha_bar(t)
            signal = self.embed_scale * alpha_bar.sqrt() * e0 + (1 - alpha_bar).sqrt() * noise
        time_embedding = self.time_embedding(torch.tensor([t], device=rois.device))
        reid = signal_to_embeddings(signal, self.embed_scale)[None]
        return self.stage.denoise_rois(rois, boxes[None], reid, time_embedding)["pred_embeddings"][0]


class MLPEmbedding(nn.Module):
    """Distillation baseline: RoIs [M, C, S, S] -> Flatten -> Linear -> LN -> ReLU -> Linear -> [M, D]."""

    def __init__(self, channels, resolution, hidden, embed_dim):
        super().__init__()
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * resolution**2, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, embed_dim)
        )

    def forward(self, rois, boxes, e0=None, t=None):
        return self.head(rois)


def reid_distance(predicted, e0, reid_loss):
    """Per-box L_reid (eq. 14) for PS.PSDIFF.REID_LOSS: ‖Norm(e0) − ê0‖ or ‖Norm(e0) − Norm(ê0)‖."""
    if reid_loss == "normalized_l2":
        predicted = F.normalize(predicted, dim=-1)
    return (predicted - e0).norm(dim=-1)


def train_head(name, head, train, test, cfg, args):
    """Train `head` on the cached training RoIs -> list of (iteration, retrieval summary, seconds)."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(args.seed)
    num_timesteps = cfg.PS.PSDIFF.TIMESTEPS
    curve, start = [(0, evaluate_head(head, test), 0.0)], time.perf_counter()
    for iteration in range(1, args.iters + 1):
        distances = []
        for i in torch.randint(len(train), (BATCH_IMAGES,), generator=generator).tolist():
            rois, boxes, e0, _ = train[i]
            t = int(torch.randint(num_timesteps, (1,), generator=generator))
            distances.append(reid_distance(head(rois, boxes, e0, t), e0, cfg.PS.PSDIFF.REID_LOSS))
        loss = torch.cat(distances).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % args.eval_period == 0 or iteration == args.iters:
            summary = evaluate_head(head, test)
            curve.append((iteration, summary, time.perf_counter() - start))
            print(f"{name} iter {iteration}: L_reid {loss.item():.3f}, GT mAP {100 * summary['mAP']:.1f}, "
                  f"top-1 {100 * summary['top1']:.1f}", flush=True)
    return curve


@torch.no_grad()
def evaluate_head(head, test):
    head.eval()
    torch.manual_seed(0)
    embeddings = torch.cat([head(rois, boxes) for rois, boxes, _, _ in test])
    head.train()
    return gt_retrieval(embeddings, torch.cat([pids for *_, pids in test]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(ROOT / "configs" / "quick_schedules" / "psdiff_tiny_synthps.yaml"))
    parser.add_argument("--heads", default="cdl,mlp", help="comma-separated: cdl, mlp or both")
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--eval-period", type=int, default=100)
    parser.add_argument("--test-images", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE overrides")
    args = parser.parse_args()
    names = args.heads.split(",")
    if not set(names) <= {"cdl", "mlp"}:
        raise SystemExit(f"--heads {args.heads}: use cdl, mlp or cdl,mlp")
    cfg = get_ps_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    torch.manual_seed(args.seed)
    model = PersonSearchTrainer.build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    teacher_model = build_psdiff_teacher(cfg, load_teacher_cfg(cfg))
    train = cache_rois(model, teacher_model, cfg.DATASETS.TRAIN[0], True, cfg)
    test = cache_rois(model, teacher_model, "synthps_gallery", False, cfg, args.test_images)
    teacher = gt_retrieval(torch.cat([e0 for *_, e0, _ in test]), torch.cat([pids for *_, pids in test]))
    p = cfg.PS.PSDIFF
    heads = {
        "cdl": lambda: CDLEmbedding(PersonSearchTrainer.build_model(cfg)),
        "mlp": lambda: MLPEmbedding(p.HIDDEN_DIM, p.POOLER_RESOLUTION, p.HIDDEN_DIM, model.embed_dim),
    }
    curves = {name: train_head(name, heads[name](), train, test, cfg, args) for name in names}
    print(f"\n{len(train)} training / {len(test)} test images; REID_LOSS {p.REID_LOSS}; overrides {' '.join(args.opts) or '-'}")
    print("| head | iteration | GT mAP (%) | top-1 (%) | s |\n|---|---:|---:|---:|---:|")
    print(f"| teacher | – | {100 * teacher['mAP']:.1f} | {100 * teacher['top1']:.1f} | – |")
    for name, curve in curves.items():
        for iteration, summary, seconds in curve:
            print(f"| {name} | {iteration} | {100 * summary['mAP']:.1f} | {100 * summary['top1']:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
