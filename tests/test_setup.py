"""Package-level contracts: configs, registration without disk or network, clear setup errors."""
import subprocess
import sys
import textwrap

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

import ps_plugin
from ps_plugin.config import add_ps_config, setup_cfg

from common import CONFIGS, REPO_ROOT


def _all_keys(node, prefix=""):
    keys = set()
    for k, v in node.items():
        name = f"{prefix}{k}"
        keys.add(name)
        if hasattr(v, "items"):
            keys |= _all_keys(v, name + ".")
    return keys


def test_add_ps_config_only_adds_ps_node():
    plain = get_cfg()
    cfg = get_cfg()
    add_ps_config(cfg)
    added = _all_keys(cfg) - _all_keys(plain)
    assert added and all(k == "PS" or k.startswith("PS.") for k in added)
    assert cfg.dump().replace(cfg.PS.dump(), "") != ""  # Detectron2 nodes still present
    for key in _all_keys(plain):
        node_plain, node = plain, cfg
        for part in key.split("."):
            node_plain, node = node_plain[part], node[part]
        if not hasattr(node, "items"):
            assert node == node_plain, key


@pytest.mark.parametrize("config_file", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_config_merges(config_file):
    cfg = setup_cfg(config_file=str(config_file), opts=["MODEL.WEIGHTS", ""])
    assert cfg.PS is not None


def test_configs_folder_has_base_and_quickstart():
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    assert {"Base-PersonSearch.yaml", "quickstart.yaml"} <= names


def test_builtin_datasets_registered_with_metadata():
    names = set(DatasetCatalog.list())
    expected = {
        "cuhk_sysu_train", "cuhk_sysu_gallery", "cuhk_sysu_query_G100", "cuhk_sysu_query_full",
        "prw_train", "prw_gallery", "prw_query", "coco_persons_train", "realmini_train",
        "realmini_gallery", "realmini_query", "synthps_train", "synthps_gallery", "synthps_query",
    }
    assert expected <= names, expected - names
    for name in expected:
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["person"]
        assert meta.evaluator_type == "person_search"
    assert MetadataCatalog.get("prw_query").gallery_dataset == "prw_gallery"
    assert "cuhk_sysu_query_G100" in MetadataCatalog.get("cuhk_sysu_gallery").query_datasets


@pytest.mark.slow
def test_import_reads_no_file_and_opens_no_socket(tmp_path):
    """Importing ps_plugin (after its dependencies) opens no data file and no connection."""
    script = textwrap.dedent(
        """
        import os, sys
        import detectron2.data, detectron2.modeling, detectron2.engine, detectron2.evaluation
        import scipy.io, scipy.optimize, sklearn.metrics, cv2, pycocotools.coco, timm, matplotlib
        events = []
        def hook(event, args):
            if event == "open" and args and isinstance(args[0], str):
                path = args[0]
                if not path.endswith((".py", ".pyc", ".so")) and (os.path.exists(path) or "nothing-here" in path):
                    events.append(path)
            if event in ("socket.connect", "urllib.Request"):
                events.append(event)
        sys.addaudithook(hook)
        import ps_plugin
        print("EVENTS", events)
        """
    )
    env = {"DETECTRON2_DATASETS": str(tmp_path / "nothing-here"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if l.startswith("EVENTS")][0]
    assert line == "EVENTS []", line


def test_missing_weights_path_is_named():
    with pytest.raises(FileNotFoundError, match="/no/such/weights.pth"):
        setup_cfg(opts=["MODEL.WEIGHTS", "/no/such/weights.pth"])


def test_config_needing_compiled_op_fails_clearly():
    from ps_plugin.utils.compiled_ops import has_compiled_op

    if has_compiled_op("deform_conv_forward"):
        pytest.skip("an official detectron2 build with compiled ops is installed")
    with pytest.raises(RuntimeError, match="DEFORM_ON_PER_STAGE needs the compiled op"):
        setup_cfg(opts=["MODEL.RESNETS.DEFORM_ON_PER_STAGE", "[False, True, True, True]"])


def test_version():
    assert ps_plugin.__version__
