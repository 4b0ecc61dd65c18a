"""PersonSearchTrainer and tools/train_net.py on a tiny SynthPS: the NaN guard, images and batches
without (labeled) people, a wrong MODEL.WEIGHTS path, and --eval-only on a saved checkpoint."""
import logging
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.engine import default_argument_parser

from common import QUICK_SCHEDULES, load_tool
from ps_plugin.data.datasets.common import register_person_search
from ps_plugin.engine import PersonSearchTrainer
from ps_plugin.engine.finite_loss import NonFiniteLossError
from train_fixtures import build_trainer, final_state, register_tiny, tiny_synthps, tiny_train_cfg, unwrap


@pytest.fixture(scope="module")
def synthps_root(tmp_path_factory):
    return tiny_synthps(tmp_path_factory.mktemp("synthps"))


def load_train_net():
    return load_tool("train_net")


def nan_at_iteration(model, bad_iter, term):
    """Make `model` return loss `term` = NaN on its `bad_iter`-th training call (0-based)."""
    forward = model.forward
    calls = []

    def forward_with_nan(batched_inputs):
        losses = forward(batched_inputs)
        if len(calls) == bad_iter:
            losses[term] = losses[term] * float("nan")
        calls.append(len(calls))
        return losses

    model.forward = forward_with_nan


@pytest.mark.slow
def test_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(synthps_root, tmp_path):
    cfg = tiny_train_cfg(synthps_root, "nan", tmp_path, MAX_ITER=6, CHECKPOINT_PERIOD=2)
    trainer = build_trainer(cfg)
    nan_at_iteration(unwrap(trainer.model), bad_iter=3, term="loss_box_reg")
    with pytest.raises(NonFiniteLossError, match=r"iteration 3: loss_box_reg=nan"):
        trainer.train()
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000001.pth"]
    checkpoint = torch.load(tmp_path / "model_0000001.pth", weights_only=True)
    assert checkpoint["iteration"] == 1
    state = final_state(trainer)
    assert int(state["queue_pointer"]) > 0
    # iteration 2 trained after the checkpoint; iteration 3 computed its (bad) gradients only
    changed = [k for k, v in state["model"].items() if not torch.equal(checkpoint["model"][k], v)]
    assert "roi_heads.box_predictor.bbox_pred.weight" in changed

    resumed = build_trainer(cfg, resume=True)
    assert resumed.start_iter == 2
    for name, value in final_state(resumed)["model"].items():
        assert torch.equal(value, checkpoint["model"][name]), name


def register_without_labeled_persons(root, name, keep_persons):
    """Tiny SynthPS training scenes with every person unlabeled (keep_persons) or no person at all."""
    register_tiny(root, "nolabel")

    def load():
        records = [dict(r) for r in DatasetCatalog.get("nolabel_train")]
        for record in records:
            record["annotations"] = [dict(a, person_id=-1) for a in record["annotations"]] if keep_persons else []
        return records

    if name not in DatasetCatalog.list():
        register_person_search(name, load)


@pytest.mark.parametrize("keep_persons", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["no_person", "unlabeled_only"])
def test_batches_without_labeled_persons_train(synthps_root, tmp_path, keep_persons):
    name = f"nolabel_{'unlabeled' if keep_persons else 'empty'}_train"
    register_without_labeled_persons(synthps_root, name, keep_persons)
    cfg = tiny_train_cfg(synthps_root, "nolabel", tmp_path, MAX_ITER=2)
    cfg.DATASETS.TRAIN = (name,)
    cfg.PS.REID.NUM_PIDS = 4
    trainer = build_trainer(cfg)
    trainer.train()
    state = final_state(trainer)
    assert state["iter"] == 2
    history = trainer.storage.histories()
    assert history["loss_oim"].values()[-1][0] == 0.0
    for term in ("loss_cls", "loss_rpn_cls", "loss_oim"):
        assert all(torch.isfinite(torch.tensor(v)) for v, _ in history[term].values()), term
    assert torch.count_nonzero(state["lut"]) == 0
    # every foreground proposal of an unlabeled person enters the queue; no person, no entry
    assert (int(state["queue_pointer"]) > 0) == keep_persons


def test_wrong_model_weights_path_is_named_by_train_net_setup(tmp_path):
    train_net = load_train_net()
    missing = tmp_path / "no_such_model.pth"
    args = default_argument_parser().parse_args(
        ["--config-file", str(QUICK_SCHEDULES / "quickstart.yaml"), "MODEL.WEIGHTS", str(missing), "OUTPUT_DIR", str(tmp_path)]
    )
    with pytest.raises(FileNotFoundError, match=str(missing)):
        train_net.setup(args)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        train_net.main(args)


@pytest.mark.slow
def test_train_net_eval_only_evaluates_the_saved_checkpoint(synthps_root, tmp_path):
    cfg = tiny_train_cfg(synthps_root, "evalonly", tmp_path)
    cfg.DATASETS.TEST = ("evalonly_query",)
    model = build_trainer(cfg).model
    fresh = PersonSearchTrainer.test(cfg, model)["evalonly_gallery"]["person_search"]
    with torch.no_grad():  # weights no fresh build reproduces
        projection = model.roi_heads.reid_branch.head.projection.weight
        projection.copy_(torch.randn(projection.shape, generator=torch.Generator().manual_seed(123)))
    DetectionCheckpointer(model, str(tmp_path)).save("model_tiny")
    expected = PersonSearchTrainer.test(cfg, model)["evalonly_gallery"]["person_search"]

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(cfg.dump())
    opts = ["MODEL.WEIGHTS", str(tmp_path / "model_tiny.pth")]
    args = default_argument_parser().parse_args(["--config-file", str(config_file), "--eval-only"] + opts)
    results = load_train_net().main(args)
    metrics = results["evalonly_gallery"]["person_search"]
    assert metrics == pytest.approx(expected)
    # Random weights detect nobody, so only GT mAP depends on them: it must tell the saved
    # weights from the fresh build's for the equality above to pin the checkpoint.
    assert metrics["evalonly_query/gt_mAP"] != pytest.approx(fresh["evalonly_query/gt_mAP"])


@pytest.mark.slow
def test_short_synthps_training_lowers_the_loss(synthps_root, tmp_path):
    """40 iterations on the tiny SynthPS (repeated scenes): the summed loss of the last 8 steps
    is well below that of the first 8."""
    cfg = tiny_train_cfg(synthps_root, "tiny_loss", tmp_path, MAX_ITER=40)
    cfg.PS.SOLVER.OPTIMIZER = "AdamW"
    cfg.SOLVER.BASE_LR = 1e-3
    trainer = build_trainer(cfg)
    model = unwrap(trainer.model)
    forward, totals = model.forward, []

    def recording_forward(batched_inputs):
        losses = forward(batched_inputs)
        totals.append(float(sum(losses.values())))
        return losses

    model.forward = recording_forward
    trainer.train()
    assert len(totals) == 40
    first, last = sum(totals[:8]) / 8, sum(totals[-8:]) / 8
    assert last < 0.7 * first, (first, last)


def test_an_amp_config_trains_in_float32_on_cpu_after_one_warning(synthps_root, tmp_path, caplog):
    cfg = tiny_train_cfg(synthps_root, "tiny_amp", tmp_path, MAX_ITER=2)
    cfg.SOLVER.AMP.ENABLED = True  # as in Base-SPNet.yaml (GPU recipe)
    with caplog.at_level(logging.WARNING, logger="ps_plugin.engine.trainer"):
        trainer = build_trainer(cfg)
        trainer.train()
    assert trainer.iter == 2 and type(trainer._trainer).__name__ == "FiniteLossTrainer"
    warnings = [r.getMessage() for r in caplog.records if "SOLVER.AMP.ENABLED" in r.getMessage()]
    assert len(warnings) == 1 and "float32" in warnings[0]
