"""The counting of benchmarks/laid_pseudo_label_quality.py and laid_caim_vs_greedy.py on hand-built cases:
pseudo-label quality against true people (ps_plugin.evaluation.pseudo_labels), identity switches and merges,
CAIM's replay where greedy matching hands a person's track to their neighbour and JV does not, and the
run-directory plumbing (stage-1 state per checkpoint, one row per epoch), and laid_synthps_runs.py's targets
and table."""
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from common import REPO_ROOT
from ps_plugin.config import get_ps_cfg
from ps_plugin.evaluation.pseudo_labels import ImagePseudoLabels, identity_changes, pseudo_label_quality, true_people
from ps_plugin.modeling.laid.pseudo_labels import ImageDetections

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # the benchmark scripts import each other by name
import laid_caim_vs_greedy  # noqa: E402
import laid_pseudo_label_quality  # noqa: E402
import laid_synthps_runs  # noqa: E402


def box(x1, x2, y1=0.0, y2=20.0):
    return [x1, y1, x2, y2]


# ---- pseudo-label quality ----------------------------------------------------------------------------
def hand_case():
    """Image 0: people with ids 1, 2, none, 3; image 1: id 1 and one without id. Pseudo labels 5-8."""
    first = ImagePseudoLabels(
        boxes=np.array([box(0, 10), box(21, 31), box(60, 70), box(40, 50)]),
        labels=np.array([5, 6, 7, 5]),
        gt_boxes=np.array([box(0, 10), box(20, 30), box(40, 50), box(80, 90)]),
        gt_pids=np.array([1, 2, -1, 3]),
    )
    second = ImagePseudoLabels(
        boxes=np.array([box(0, 10), box(20, 30), box(2, 12)]),
        labels=np.array([5, 6, 8]),
        gt_boxes=np.array([box(0, 10), box(20, 30)]),
        gt_pids=np.array([1, -1]),
    )
    return [first, second]


def test_true_people_are_mutual_best_matches_at_iou_one_half():
    first, second = hand_case()
    # (21, 31) covers (20, 30) at IoU 9/11; (60, 70) covers nobody; the person at (80, 90) is missed
    assert true_people(first.boxes, first.gt_boxes).tolist() == [0, 1, -1, 2]
    # (2, 12) overlaps (0, 10) at IoU 8/12 >= 0.5, but that person's best box is (0, 10)
    assert true_people(second.boxes, second.gt_boxes).tolist() == [0, 1, -1]
    assert true_people(first.boxes, np.zeros((0, 4))).tolist() == [-1] * 4


def test_pseudo_label_quality_counts_and_scores_by_hand():
    quality = pseudo_label_quality(hand_case())
    # covered boxes (pseudo, truth): (5, id 1), (6, id 2), (5, unlabelled u), (5, id 1), (6, unlabelled v)
    assert (quality["pseudo_boxes"], quality["covered"], quality["gt_boxes"]) == (7, 5, 6)
    assert quality["precision"] == pytest.approx(5 / 7) and quality["recall"] == pytest.approx(5 / 6)
    # label sizes 5: 3, 6: 2, 7: 1, 8: 1
    assert (quality["identities"], quality["clusters"], quality["outliers"], quality["clustered_instances"]) == (4, 2, 2, 5)
    assert (quality["true_identities"], quality["gt_identities"]) == (2, 3)
    assert (quality["gt_with_identity"], quality["gt_unlabelled"]) == (4, 2)
    # ARI: same-pair counts: contingency 1, truth {1: 2, 2, u, v} 1, pseudo {5: 3, 6: 2} 3 + 1 = 4, of C(5, 2) = 10
    expected = 4 / 10
    assert quality["ari"] == pytest.approx((1 - expected) / ((1 + 4) / 2 - expected))  # = 2/7
    # every true identity lies in one pseudo label: I = H(pseudo); NMI = 2 H(pseudo) / (H(truth) + H(pseudo))
    h_truth = -(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2))
    h_pseudo = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    assert quality["nmi"] == pytest.approx(2 * h_pseudo / (h_truth + h_pseudo))


def test_pseudo_label_quality_of_no_covered_box():
    only_missed = [ImagePseudoLabels(np.array([box(60, 70)]), np.array([0]), np.array([box(0, 10)]), np.array([4]))]
    quality = pseudo_label_quality(only_missed)
    assert quality["covered"] == 0 and quality["outliers"] == 1 and math.isnan(quality["ari"])


# ---- identity switches ---------------------------------------------------------------------------------
def test_identity_changes_count_switches_and_merges_by_hand():
    previous = [0, 1, -1, 2]
    # track 0 -> person 0 (kept), track 1 -> persons 2 and 1 (a switch and a merge), track 2 (nobody) -> 0,
    # track 3 -> person 2 and a track covering nobody (neither)
    rows, current = [0, 1, 1, 2, 3, 3], [0, 2, 1, 0, 2, -1]
    assert identity_changes(previous, rows, current) == (1, 1)
    assert identity_changes(previous, [], []) == (0, 0)


# Two people side by side; epoch 0's box of A (h_a) is off, epoch 1's box of A (d_a) overlaps B's track
# (h_b) more than A's own: IoU(d_a, h_a) 0.740, IoU(d_a, h_b) 0.793, IoU(d_b, h_b) 0.864, IoU(d_b, h_a) 0.584
# (h_b is contested: two candidates above the 0.7 gate).
PEOPLE = np.array([[0.0, 0, 10, 30], [4, 0, 14, 30]])
EPOCH_0 = torch.tensor([[1.0, 2, 11, 27], [2, -1, 13, 31]])  # h_a, h_b
EPOCH_1 = torch.tensor([[2.0, 0, 11, 31], [2, 1, 14, 31]])  # d_a, d_b


def detections(boxes):
    return [ImageDetections(boxes, torch.tensor([0.99, 0.99]), torch.eye(2, 4))]


def test_greedy_hands_a_person_to_the_neighbours_track_and_jv_does_not():
    cfg = get_ps_cfg()
    cfg.PS.LAID.CAIM.MOMENTUM = 0.2
    passes = [(149, detections(EPOCH_0)), (299, detections(EPOCH_1))]
    rows = {r["setting"]: r for r in laid_caim_vs_greedy.comparison_rows(cfg, passes, [PEOPLE])}
    for setting in ("jv + loose", "jv strict"):
        # d_b's only valid history box is h_b, so the one-to-one match keeps d_a on h_a
        assert rows[setting]["per_pass"] == [
            {"tracks": 2, "covering": 2, "contested": 0, "continued": 0, "switches": 0, "merges": 0},
            {"tracks": 2, "covering": 2, "contested": 1, "continued": 2, "switches": 0, "merges": 0},
        ]
    for setting in ("greedy + loose", "greedy strict"):
        # d_a and d_b both take h_b: B's track now also covers A (a switch), one track for two people (a merge)
        assert rows[setting]["per_pass"][1] == {"tracks": 2, "covering": 2, "contested": 1, "continued": 2, "switches": 1,
                                                "merges": 1}
        assert (rows[setting]["switches"], rows[setting]["merges"]) == (1, 1)
    table = laid_caim_vs_greedy.table(list(rows.values()))
    assert "| greedy + loose | 2 / 2 | 2 / 2 | 1 | 2 | 1 | 1 | 1 | 1 |" in table


def test_the_passes_stage_one_used_and_the_runs_own_tracks():
    """Checkpoints every 150 iterations, 2 of 300 target images a batch: the models of iterations 150, 300,
    ... detected in stage 1 from TARGET_REID_START; replaying them must give the tracks saved last."""
    hook = SimpleNamespace(target_per_batch=2, target_index=range(300), start_epoch=2)
    passes = [(p, None) for p in (99, 149, 299, 449, 599)]
    assert [p for p, _ in laid_caim_vs_greedy.stage_one_passes(hook, passes)] == [299, 449, 599]
    cfg = get_ps_cfg()
    cfg.PS.LAID.CAIM.MOMENTUM = 0.2
    # epochs of 4 iterations: the checkpoints of iterations 3 and 7 fed stage 1 at 4 and 8
    saved = {"caches": [{"boxes": 0.2 * EPOCH_0 + 0.8 * EPOCH_1, "track_ids": torch.tensor([0, 1])}]}
    run = [(3, None, None), (7, None, None), (11, "model_final.pth", {"trainer": {"hooks": {"TargetPseudoLabelHook": saved}}})]
    passes = [(3, detections(EPOCH_0)), (7, detections(EPOCH_1)), (11, detections(EPOCH_0))]
    for matching, identical in (("jv", True), ("greedy", False)):
        hook = SimpleNamespace(target_per_batch=1, target_index=range(4), start_epoch=1)
        caim = laid_caim_vs_greedy.caim_of(cfg, matching, True)
        assert laid_caim_vs_greedy.reproduces_run(hook, caim, passes, run) == (2, identical)


# ---- a run directory ------------------------------------------------------------------------------------
def test_quality_rows_take_one_checkpoint_per_stage_one_epoch(tmp_path):
    name = "laid_benchmark_truth"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [
            {"file_name": f"{i}.jpg", "image_id": i,
             "annotations": [{"bbox": a, "bbox_mode": 0, "category_id": 0, "person_id": p}
                             for a, p in zip(image.gt_boxes.tolist(), image.gt_pids.tolist())]}
            for i, image in enumerate(hand_case())
        ])
    labelled = [[{"bbox": b, "person_id": int(p)} for b, p in zip(image.boxes.tolist(), image.labels)] for image in hand_case()]
    states = {3: (-1, [[], []]), 7: (0, labelled), 11: (0, labelled)}
    for iteration, (epoch, annotations) in states.items():
        hooks = {"TargetPseudoLabelHook": {"epoch": epoch, "caches": [], "annotations": annotations}}
        torch.save({"iteration": iteration, "trainer": {"hooks": hooks}}, tmp_path / f"model_{iteration:07d}.pth")
    torch.save({"iteration": 11, "trainer": {"hooks": hooks}}, tmp_path / "model_final.pth")
    rows = laid_pseudo_label_quality.quality_rows(tmp_path, name)
    assert [(r["epoch"], r["checkpoint"], r["iteration"]) for r in rows] == [(0, "model_0000007.pth", 7)]
    assert rows[0]["ari"] == pytest.approx(2 / 7)
    torch.save({"iteration": 1, "trainer": {"hooks": {}}}, tmp_path / "model_0000001.pth")
    with pytest.raises(KeyError, match="model_0000001.pth.*TargetPseudoLabelHook"):
        laid_pseudo_label_quality.quality_rows(tmp_path, name)


# ---- laid_synthps_runs.py ----------------------------------------------------------------------------
def test_each_run_target_names_a_config_whose_test_set_is_its_query_set():
    for target, (config, gallery, query) in laid_synthps_runs.TARGETS.items():
        cfg = get_ps_cfg()
        cfg.merge_from_file(str(REPO_ROOT / "configs" / "quick_schedules" / config))
        assert cfg.DATASETS.TEST == (query,), target
        assert cfg.DATASETS.TRAIN[0] == "synthps_train" and gallery.endswith("_gallery")


def test_runs_table_reads_each_record_at_its_targets_query_set():
    def record(target, query, m_ap):
        metrics = {f"{query}/mAP": m_ap, f"{query}/top1": 0.5, f"{query}/gt_mAP": 0.6, "det/AP": 0.7,
                   "det/recall": 0.8}
        return {"variant": "laid", "opts": ["PS.LAID.TSA.MODE", "off"], "seed": 2, "metrics": metrics,
                "seconds": 120, **({"target": target} if target else {})}

    rows = laid_synthps_runs.table([record(None, "synthps_b_query", 0.25),
                                    record("realmini", "realmini_query", 0.75)]).splitlines()[2:]
    assert rows == ["| laid | PS.LAID.TSA.MODE off | 2 | 25.0 | 50.0 | 60.0 | 70.0 | 80.0 | 2 |",
                    "| laid | PS.LAID.TSA.MODE off | 2 | 75.0 | 50.0 | 60.0 | 70.0 | 80.0 | 2 |"]
