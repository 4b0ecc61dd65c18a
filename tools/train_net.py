#!/usr/bin/env python
"""Train or evaluate a person-search model: Detectron2's train_net shape (setup, main, launch).

    python tools/train_net.py --config-file configs/quick_schedules/quickstart.yaml
    python tools/train_net.py --config-file configs/quick_schedules/quickstart.yaml --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file configs/quick_schedules/quickstart.yaml --resume
    python tools/train_net.py --config-file configs/quick_schedules/quickstart.yaml --num-gpus 2   # 2 GPUs, or 2 CPU processes (gloo)
"""
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import ps_plugin  # noqa: F401  (registers datasets, meta-architectures, heads)
from ps_plugin.config import setup_cfg
from ps_plugin.engine import PersonSearchCheckpointer, PersonSearchTrainer, launch


def setup(args):
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ps_plugin")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = PersonSearchTrainer.build_model(cfg)
        PersonSearchCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return PersonSearchTrainer.test(cfg, model)
    trainer = PersonSearchTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
