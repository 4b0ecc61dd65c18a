"""End to end: HybridPretrain trains through PersonSearchTrainer on a detection-only SynthPS view mixed
with crops cut from its frames (two datasets, IAMs on), resumes exactly, and its export initialises the
quickstart model."""
import pytest
import torch
from detectron2.data import DatasetCatalog

from common import CONFIGS, tiny_cfg
from ps_plugin.data.datasets.common import register_person_search
from ps_plugin.data.datasets.detection_only import load_detection_only
from ps_plugin.data.datasets.scene_crops import register_scene_crops
from ps_plugin.modeling.pretrain.export import save_export
from test_resume import M, assert_states_equal, train_interrupted
from train_fixtures import build_trainer, final_state, register_tiny, run_training, tiny_synthps, tiny_train_cfg

PREFIX = "pretrain_tiny"


def register_pretrain_views(prefix):
    """`<prefix>_det` (detection-only view) and `<prefix>_crops` (crops cut from its frames) of the tiny
    SynthPS `<prefix>_train`."""
    if f"{prefix}_det" not in DatasetCatalog.list():
        register_person_search(f"{prefix}_det", lambda: load_detection_only(f"{prefix}_train"))
        register_scene_crops(f"{prefix}_crops", f"{prefix}_train")


def pretrain_train_cfg(root, output_dir, prefix=PREFIX, **solver):
    cfg = tiny_train_cfg(root, prefix, output_dir, **solver)
    register_pretrain_views(prefix)
    pretrain = tiny_cfg(CONFIGS / "Base-Pretrain.yaml")
    cfg.MODEL.META_ARCHITECTURE = pretrain.MODEL.META_ARCHITECTURE
    cfg.PS.INPUT.NUM_VIEWS = pretrain.PS.INPUT.NUM_VIEWS
    cfg.DATASETS.TRAIN = (f"{prefix}_det", f"{prefix}_crops")
    cfg.PS.DATA.TRAIN_RATIOS = (1, 1)
    cfg.PS.PRETRAIN.update(CANVAS_SIZE=(96, 112), IAM_HIDDEN_DIM=8, PREDICTOR_HIDDEN_DIM=4)
    return cfg


@pytest.fixture(scope="module")
def synthps_root(tmp_path_factory):
    root = tiny_synthps(tmp_path_factory.mktemp("synthps"))
    register_tiny(root, PREFIX)
    return root


@pytest.mark.slow
def test_pretraining_runs_resumes_exactly_and_exports_into_the_quickstart(synthps_root, tmp_path):
    full = run_training(pretrain_train_cfg(synthps_root, tmp_path / "full", MAX_ITER=2 * M, CHECKPOINT_PERIOD=M))
    split = pretrain_train_cfg(synthps_root, tmp_path / "split", MAX_ITER=2 * M, CHECKPOINT_PERIOD=M)
    train_interrupted(split)
    resumed = build_trainer(split, resume=True)
    resumed.train()
    assert_states_equal(final_state(resumed), full)

    metrics = [line for line in (tmp_path / "full" / "metrics.json").read_text().splitlines() if "loss_con" in line]
    assert metrics and "loss_adv_reid_ins" in metrics[-1] and "pretrain/embedding_spread" in metrics[-1]

    exported = tmp_path / "hybrid.pth"
    save_export(full["model"], "backbone", str(exported))
    cfg = tiny_train_cfg(synthps_root, PREFIX, tmp_path / "finetune")
    cfg.MODEL.WEIGHTS = str(exported)
    trainer = build_trainer(cfg)
    loaded = trainer.model.state_dict()
    backbone = [k for k in loaded if k.startswith("backbone.")]
    assert backbone and all(torch.equal(loaded[k], full["model"][k]) for k in backbone)
