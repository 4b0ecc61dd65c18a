"""Shared test helpers: tiny CPU configs built without yaml or weights, and the shared data path."""
from pathlib import Path

import pytest

from ps_plugin.config import get_ps_cfg

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CONFIGS = REPO_ROOT / "configs"


def shared_data(*parts):
    """Path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data is optional)")
    return path


def tiny_cfg(config_file=None, **overrides):
    """A CPU config with every PS node and no pretrained weights; `overrides` are KEY=value pairs
    like MODEL__DEVICE='cpu'."""
    cfg = get_ps_cfg()
    if config_file:
        cfg.merge_from_file(str(config_file))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.PS.BACKBONE.WEIGHTS = ""
    opts = []
    for key, value in overrides.items():
        opts += [key.replace("__", "."), value]
    cfg.merge_from_list(opts)
    return cfg
