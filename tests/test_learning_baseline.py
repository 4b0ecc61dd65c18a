"""The baseline (OIM Faster R-CNN, configs/quickstart.yaml) learns to detect and search on the
learning SynthPS, and its losses fall. Margins: docs/BENCHMARKS.md, "Learning tests"."""
import pytest

from learning_fixtures import QUERY_SET, logged

# Measured gains (seeds 0 / 1): det AP 77.7 / 83.5, mAP 34.1 / 34.6, GT mAP 24.4 / 28.6 points.
DET_AP_GAIN = 0.50  # trained - untrained detection AP@0.5
MAP_GAIN = 0.20  # trained - untrained search mAP
GT_MAP_GAIN = 0.10  # trained - untrained GT mAP


@pytest.mark.slow
def test_baseline_learns_to_detect_and_search(quickstart_run):
    untrained, trained = quickstart_run.untrained, quickstart_run.trained
    assert trained["det/AP"] > untrained["det/AP"] + DET_AP_GAIN, (untrained, trained)
    assert trained[f"{QUERY_SET}/mAP"] > untrained[f"{QUERY_SET}/mAP"] + MAP_GAIN, (untrained, trained)
    assert trained[f"{QUERY_SET}/gt_mAP"] > untrained[f"{QUERY_SET}/gt_mAP"] + GT_MAP_GAIN, (untrained, trained)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["loss_oim", "loss_cls", "loss_rpn_cls"])
def test_baseline_losses_fall(quickstart_run, name):
    losses = logged(quickstart_run.cfg.OUTPUT_DIR, name)
    assert len(losses) >= 5 and losses[-1] < 0.7 * losses[0], losses
