"""Package-level contracts: configs, registration without disk or network, clear setup errors."""
import ast
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

import ps_plugin
from ps_plugin.config import add_ps_config, get_ps_cfg, setup_cfg

from common import CONFIGS, REPO_ROOT

ALL_CONFIGS = sorted(CONFIGS.rglob("*.yaml"))


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


def _plain(value):
    """A config value as yacs stores it, tuples as lists: strings that are Python literals decoded."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _plain(value)


def yaml_values(path):
    """{"KEY.PATH": value} for every leaf a config file sets, its _BASE_ chain first (later files win)."""
    data = yaml.safe_load(path.read_text())
    values = yaml_values(path.parent / data.pop("_BASE_")) if "_BASE_" in data else {}
    values.update(_leaves(data))
    return values


def _lookup(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return _plain(cfg)


@pytest.mark.parametrize("config_file", ALL_CONFIGS, ids=lambda p: p.name)
def test_every_config_merges(config_file):
    """Every value the file and its _BASE_ chain set (read here with plain yaml) is in the merged
    config, and at least one differs from the default, so a dropped or overridden file shows."""
    cfg = setup_cfg(config_file=str(config_file), opts=["MODEL.WEIGHTS", ""])
    values = yaml_values(config_file)
    values.pop("MODEL.WEIGHTS", None)
    assert cfg.MODEL.WEIGHTS == ""
    for key, value in values.items():
        assert _lookup(cfg, key) == value, key
    default = get_ps_cfg()
    assert any(_lookup(default, key) != value for key, value in values.items())


RGB_IMAGENET = ("RGB", [123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
CAFFE_BGR = ("BGR", [103.53, 116.28, 123.675], [1.0, 1.0, 1.0])


def weight_convention(cfg):
    """The input the config's pretrained backbone expects -> (format, mean, std, ResNet STRIDE_IN_1X1):
    MSRA `.pkl` ResNets read caffe BGR with the stride in the 1x1 conv; every other source the project
    can convert (torchvision ResNets, timm models, the deep-sort MobileNetV2) reads RGB ImageNet
    statistics, ResNets with the stride in the 3x3 conv."""
    if cfg.MODEL.WEIGHTS.endswith(".pkl"):
        return CAFFE_BGR + (True,)
    return RGB_IMAGENET + (False,)


@pytest.mark.parametrize("config_file", sorted(f for f in CONFIGS.rglob("*.yaml") if not f.name.startswith("Base")),
                         ids=lambda p: p.name)
def test_input_normalisation_matches_the_backbone_weights(config_file):
    cfg = get_ps_cfg()
    cfg.merge_from_file(str(config_file))
    input_format, mean, std, stride_in_1x1 = weight_convention(cfg)
    assert (cfg.INPUT.FORMAT, list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)) == (input_format, mean, std)
    if "resnet" in cfg.MODEL.BACKBONE.NAME:
        assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 == stride_in_1x1


def test_input_convention_of_an_msra_resnet():
    cfg = get_ps_cfg()
    cfg.MODEL.WEIGHTS = "weights/R-50.pkl"
    assert weight_convention(cfg) == CAFFE_BGR + (True,)


def _base_chain(config_file):
    """[config_file, its _BASE_, that file's _BASE_, ...] up to the file with no _BASE_."""
    chain = [config_file]
    while "_BASE_" in (data := yaml.safe_load(chain[-1].read_text()) or {}):
        chain.append((chain[-1].parent / data["_BASE_"]).resolve())
    return chain



def test_config_tree_layout():
    """Bases in configs/, published settings beside them, CPU and instant-test settings in quick_schedules/."""
    bases = {p.name for p in CONFIGS.glob("Base-*.yaml")}
    assert {"Base-PersonSearch.yaml", "Base-PersonSearchRCNN.yaml", "Base-SPNet.yaml", "Base-PSDiff.yaml"} <= bases
    for config_file in ALL_CONFIGS:
        cfg = get_ps_cfg()
        cfg.merge_from_file(str(config_file))
        on_cpu = cfg.MODEL.DEVICE == "cpu"
        assert on_cpu == (config_file.parent.name == "quick_schedules"), config_file.name


@pytest.mark.parametrize("config_file", ALL_CONFIGS, ids=lambda p: p.name)
def test_config_reaches_the_shared_base_through_one_method_base(config_file):
    """Every chain ends in Base-PersonSearch.yaml; a file sits at most 2 `_BASE_` levels below the
    first Base-<method>.yaml of its chain."""
    chain = _base_chain(config_file.resolve())
    assert chain[-1].name == "Base-PersonSearch.yaml"
    if config_file.name != "Base-PersonSearch.yaml":
        method_base = next(i for i, path in enumerate(chain) if path.name.startswith("Base-"))
        assert method_base <= 2, [path.name for path in chain]


@pytest.mark.parametrize("config_file", ALL_CONFIGS, ids=lambda p: p.name)
def test_no_config_restates_what_it_inherits(config_file):
    """A key a file sets differs from the value its _BASE_ chain (or the defaults) already gives
    (VERSION, the file format of Base-PersonSearch.yaml, aside)."""
    data = yaml.safe_load(config_file.read_text())
    data.pop("VERSION", None)
    inherited = get_ps_cfg()
    if "_BASE_" in data:
        inherited.merge_from_file(str(config_file.parent / data.pop("_BASE_")))
    restated = [key for key, value in _leaves(data) if _lookup(inherited, key) == value]
    assert restated == []


def test_shared_base_holds_no_method_keys():
    """Base-PersonSearch.yaml: no meta-architecture and no method node (PS.<METHOD>, Faster R-CNN heads)."""
    keys = {key for key, _ in _leaves(yaml.safe_load((CONFIGS / "Base-PersonSearch.yaml").read_text()))}
    method_nodes = ("MODEL.META_ARCHITECTURE", "MODEL.RPN.", "MODEL.ROI_", "MODEL.ANCHOR_GENERATOR.",
                    "PS.SPNET.", "PS.PSDIFF.")
    assert [key for key in keys if key.startswith(method_nodes)] == []


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


def _imported_modules(path):
    """Absolute names of the modules a .py file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_modeling_never_imports_ps_plugin_config():
    """The dependency runs config -> modeling (add_ps_config calls the methods' add_*_config); a model
    takes its values through from_config, and anything needing a whole config gets it from the caller."""
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in sorted((REPO_ROOT / "ps_plugin" / "modeling").rglob("*.py"))
        for name in _imported_modules(path)
        if name == "ps_plugin.config" or name.startswith("ps_plugin.config.")
    ]
    assert offenders == []


@pytest.mark.slow
def test_import_reads_no_file_and_opens_no_socket(tmp_path):
    """Importing ps_plugin (after its dependencies) opens no data file and no connection."""
    script = textwrap.dedent(
        """
        import os, sys
        import detectron2.data, detectron2.modeling, detectron2.engine, detectron2.evaluation
        import scipy.io, scipy.optimize, sklearn.metrics, cv2, pycocotools.coco, timm, matplotlib, h5py
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


def test_version_is_pep440_and_matches_setup_py():
    from packaging.version import Version

    setup_version = re.search(r'version="([^"]+)"', (REPO_ROOT / "setup.py").read_text()).group(1)
    assert ps_plugin.__version__ == setup_version
    assert str(Version(ps_plugin.__version__)) == ps_plugin.__version__
