"""PSDiff box losses (eq. 13) on imperfect boxes against hand-worked L1 and GIoU values.

As in DiffusionDet / Sparse R-CNN (the paper's [16], [57]): L1 on XYXY divided by each image's
(w, h, w, h), GIoU loss 1 − GIoU, both summed over the matched pairs of the batch and divided by the
number of GT boxes of the batch.
"""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ps_plugin.modeling.psdiff.losses import PSDiffCriterion
from ps_plugin.modeling.psdiff.matcher import PSDiffMatcher

from common import free_port

WEIGHTS = {"cls": 2.0, "l1": 5.0, "giou": 2.0, "reid": 5.0}
JUNK = [90.0, 40.0, 95.0, 45.0]


def _batch():
    """Two images (100 x 80 and 200 x 50), three GT boxes, three predictions per image (one or two junk).

    Image 0: GT a = (0, 0, 20, 20), prediction (10, 10, 30, 30); GT b = (50, 0, 60, 40), prediction
    (70, 0, 80, 40) (disjoint). Image 1: GT c = (0, 0, 40, 40), prediction (20, 10, 60, 50).
    """
    gt_boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [50.0, 0.0, 60.0, 40.0]]), torch.tensor([[0.0, 0.0, 40.0, 40.0]])]
    predictions = [
        [[10.0, 10.0, 30.0, 30.0], [70.0, 0.0, 80.0, 40.0], JUNK],
        [JUNK, [20.0, 10.0, 60.0, 50.0], JUNK],
    ]
    embeddings = torch.eye(4)
    targets = [
        {"boxes": gt_boxes[0], "embeddings": embeddings[:2], "whwh": torch.tensor([100.0, 80.0, 100.0, 80.0])},
        {"boxes": gt_boxes[1], "embeddings": embeddings[2:3], "whwh": torch.tensor([200.0, 50.0, 200.0, 50.0])},
    ]
    pred_embeddings = -torch.ones(2, 3, 4) / 2
    pred_embeddings[0, :2], pred_embeddings[1, 1] = embeddings[:2], embeddings[2]
    logits = torch.tensor([[4.0, 4.0, -4.0], [-4.0, 4.0, -4.0]])[..., None]
    outputs = {"pred_logits": logits, "pred_boxes": torch.tensor(predictions), "pred_embeddings": pred_embeddings}
    return outputs, targets


# L1 (|Δx1|/w + |Δy1|/h + |Δx2|/w + |Δy2|/h):
#   a: 10/100 + 10/80 + 10/100 + 10/80 = 0.45;  b: 20/100 + 0 + 20/100 + 0 = 0.4;
#   c: 20/200 + 10/50 + 20/200 + 10/50 = 0.6;   (0.45 + 0.4 + 0.6) / 3 GT boxes = 0.483333.
L1 = (0.45 + 0.4 + 0.6) / 3
# GIoU = IoU − (|C| − |A ∪ B|) / |C| with C the enclosing box; loss 1 − GIoU:
#   a: I = 10·10 = 100, U = 400 + 400 − 100 = 700, C = 30·30 = 900: 1/7 − 200/900 = −5/63, loss 68/63;
#   b: I = 0, U = 800, C = 30·40 = 1200: 0 − 400/1200 = −1/3, loss 4/3;
#   c: I = 20·30 = 600, U = 1600 + 1600 − 600 = 2600, C = 60·50 = 3000: 3/13 − 400/3000 = 19/195, loss 176/195;
#   (68/63 + 4/3 + 176/195) / 3 = 1.105087.
GIOU = (68 / 63 + 4 / 3 + 176 / 195) / 3


def test_matcher_pairs_each_gt_with_its_offset_prediction():
    outputs, targets = _batch()
    matches = PSDiffMatcher()(outputs, targets)
    assert [dict(zip(cols.tolist(), rows.tolist())) for rows, cols in matches] == [{0: 0, 1: 1}, {0: 1}]


def test_l1_and_giou_losses_match_hand_computation():
    outputs, targets = _batch()
    criterion = PSDiffCriterion(PSDiffMatcher(), WEIGHTS)
    losses = criterion.stage_losses(outputs, targets)
    assert losses["l1"].item() == pytest.approx(L1, abs=1e-6)
    assert losses["giou"].item() == pytest.approx(GIOU, abs=1e-6)
    assert losses["reid"].item() == pytest.approx(0.0, abs=1e-6)
    weighted = criterion([outputs], targets)
    assert weighted["loss_l1"].item() == pytest.approx(5.0 * L1, abs=1e-5)
    assert weighted["loss_giou"].item() == pytest.approx(2.0 * GIOU, abs=1e-5)


def test_box_losses_are_divided_by_the_gt_count_of_the_batch():
    """An image without GT boxes adds no pair and no GT: the losses stay the same."""
    outputs, targets = _batch()
    empty = {"boxes": torch.zeros(0, 4), "embeddings": torch.zeros(0, 4), "whwh": targets[0]["whwh"]}
    outputs = {k: torch.cat([v, v[:1]]) for k, v in outputs.items()}
    losses = PSDiffCriterion(PSDiffMatcher(), WEIGHTS).stage_losses(outputs, targets + [empty])
    assert losses["l1"].item() == pytest.approx(L1, abs=1e-6)
    assert losses["giou"].item() == pytest.approx(GIOU, abs=1e-6)


def _rank_losses(rank, port, out_dir):
    """Rank r of 2 takes image r of _batch() (2 GT boxes on rank 0, 1 on rank 1)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    outputs, targets = _batch()
    outputs = {k: v[rank : rank + 1] for k, v in outputs.items()}
    torch.save(PSDiffCriterion(PSDiffMatcher(), WEIGHTS).stage_losses(outputs, targets[rank : rank + 1]), f"{out_dir}/rank{rank}.pth")
    dist.destroy_process_group()


@pytest.mark.slow
def test_gt_count_normaliser_is_all_reduced_over_ranks(tmp_path):
    """Each rank divides by the mean GT count per rank (1.5), so the DDP average of the two ranks'
    losses is the one-process loss over the whole batch (3 GT boxes); a per-rank count (2 and 1)
    would give (0.85 / 2 + 0.6) / 2 = 0.5125 for L1 instead of 1.45 / 3 = 0.4833."""
    mp.spawn(_rank_losses, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pth") for r in range(2)]
    outputs, targets = _batch()
    single = PSDiffCriterion(PSDiffMatcher(), WEIGHTS).stage_losses(outputs, targets)
    assert single["l1"].item() == pytest.approx(L1, abs=1e-6)
    for name, value in single.items():
        assert ((ranks[0][name] + ranks[1][name]) / 2).item() == pytest.approx(value.item(), rel=1e-5), name
