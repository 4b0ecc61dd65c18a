"""The baseline (OIM Faster R-CNN, configs/quick_schedules/quickstart.yaml) learns to detect and search on the
learning SynthPS, and its losses fall. Margins: docs/BENCHMARKS.md, "Learning tests"."""
import pytest

from learning_fixtures import QUERY_SET, assert_gains, assert_loss_falls

# Measured gains (seeds 0 / 1): det AP 77.7 / 83.5, mAP 34.1 / 34.6, GT mAP 24.4 / 28.6 points.
DET_AP_GAIN = 0.50  # trained - untrained detection AP@0.5
MAP_GAIN = 0.20  # trained - untrained search mAP
GT_MAP_GAIN = 0.10  # trained - untrained GT mAP


@pytest.mark.slow
def test_baseline_learns_to_detect_and_search(quickstart_run):
    assert_gains(quickstart_run, {"det/AP": DET_AP_GAIN, f"{QUERY_SET}/mAP": MAP_GAIN, f"{QUERY_SET}/gt_mAP": GT_MAP_GAIN})


@pytest.mark.slow
# The box-class loss is left out: it hovers as the proposals get harder (0.33 -> 0.25 of 10 records in a CI run).
@pytest.mark.parametrize("name", ["loss_oim", "loss_rpn_cls"])
def test_baseline_losses_fall(quickstart_run, name):
    assert_loss_falls(quickstart_run, name, 0.7, min_records=5)
