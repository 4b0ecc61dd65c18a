"""Shared test helpers: tiny CPU configs built without yaml or weights, and the shared data path."""
import importlib.util
import socket
from pathlib import Path

import pytest

from ps_plugin.config import get_ps_cfg

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CONFIGS = REPO_ROOT / "configs"
QUICK_SCHEDULES = CONFIGS / "quick_schedules"   # CPU and instant-test settings


def free_port():
    """A TCP port free on 127.0.0.1 now (MASTER_PORT of a multi-process gloo test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_data(*parts):
    """Path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data is optional)")
    return path


def load_tool(name):
    """The script tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def small_input_cfg(**input_keys):
    """RGB config with small resize / window / crop sizes so every augmentation recipe runs in
    milliseconds; `input_keys` set cfg.PS.INPUT keys."""
    cfg = get_ps_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (200,)
    cfg.INPUT.MAX_SIZE_TRAIN = 400
    cfg.INPUT.MIN_SIZE_TEST = 200
    cfg.INPUT.MAX_SIZE_TEST = 400
    cfg.PS.INPUT.WINDOW_MIN_SIZE = 300
    cfg.PS.INPUT.WINDOW_MAX_SIZE = 500
    cfg.PS.INPUT.CROP_SIZE = 128
    for key, value in input_keys.items():
        cfg.PS.INPUT[key] = value
    return cfg
