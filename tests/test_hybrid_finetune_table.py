"""benchmarks/hybrid_finetune.py's bookkeeping on hand-made rows: one table line per (init, setting, iterations)
with mean and spread over seeds, the image share of a setting, and the Fig. 5 plot."""
import sys

from common import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import hybrid_finetune  # noqa: E402


def row(init, setting, seed, mAP, iters=150):
    return {"init": init, "setting": setting, "iters": iters, "seed": seed,
            "search mAP": mAP, "top-1": 2 * mAP, "GT mAP": 40.0, "det AP": 50.0}


ROWS = [row("imagenet", "", 0, 10.0), row("imagenet", "", 1, 14.0), row("hybrid", "60%", 0, 20.0),
        row("imagenet", "", 0, 30.0, iters=400), row("imagenet", "20%", 0, 5.0)]


def test_table_groups_by_init_setting_and_iterations_with_mean_and_spread():
    lines = hybrid_finetune.table(ROWS).splitlines()
    assert len(lines) == 2 + 4
    assert lines[2] == "| imagenet |  | 150 | 0, 1 | 12.0 (4.0) | 24.0 (8.0) | 40.0 (0.0) | 50.0 (0.0) |"
    assert lines[3].startswith("| hybrid | 60% | 150 | 0 | 20.0 |")
    assert lines[4].startswith("| imagenet |  | 400 | 0 | 30.0 |")


def test_image_share_of_a_setting():
    assert [hybrid_finetune.image_share(s) for s in ("", "60%", "20%", "noIAM", "x%")] == [100, 60, 20, None, None]


def test_fig5_plot_is_written(tmp_path):
    path = tmp_path / "fig5.png"
    hybrid_finetune.plot_fig5(ROWS, 150, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
