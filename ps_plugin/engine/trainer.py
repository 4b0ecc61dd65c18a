"""`PersonSearchTrainer`: Detectron2's DefaultTrainer with the person-search data path, evaluator,
optimizer, CPU-capable DDP, a NaN guard and an exactly resumable training stream."""
import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ps_plugin.config import load_teacher_cfg
from ps_plugin.data.datasets.crops import CROP_BOX
from ps_plugin.data.identities import TARGET, load_training_records
from ps_plugin.data.mapper import PersonSearchDatasetMapper
from ps_plugin.data.samplers import (
    MixedStreamDataset,
    SeededMapper,
    ShuffledStreamDataset,
    domain_pair_stream,
    StreamPositionSampler,
    rng_state,
    set_rng_state,
    split_by_dataset,
)
from ps_plugin.data.unification import HybridDatasetMapper
from ps_plugin.engine.checkpointer import PersonSearchCheckpointer
from ps_plugin.engine.finite_loss import FiniteLossAMPTrainer, FiniteLossTrainer
from ps_plugin.engine.domain_adaptation import TargetPseudoLabelHook
from ps_plugin.engine.hooks import BroadcastBatchNormStatistics, EpochClusteringHook, GatherRNGStates, MemoryInitHook
from ps_plugin.engine.optimizer import build_person_search_optimizer
from ps_plugin.evaluation import (
    PersonSearchEvaluator,
    build_person_search_test_dicts,
    is_query_conditioned,
    query_centric_inference,
)
from ps_plugin.modeling.common import ClusterMemoryModel
from ps_plugin.modeling.common.num_pids import size_identity_tables
from ps_plugin.modeling.laid import LAID

logger = logging.getLogger(__name__)


def group_test_datasets(names):
    """DATASETS.TEST entries (query or gallery set names) -> {gallery name: [query names]}."""
    groups = OrderedDict()
    for name in names:
        meta = MetadataCatalog.get(name)
        if hasattr(meta, "gallery_dataset"):
            groups.setdefault(meta.gallery_dataset, [])
            if name not in groups[meta.gallery_dataset]:
                groups[meta.gallery_dataset].append(name)
        elif hasattr(meta, "query_datasets"):
            groups.setdefault(name, [])
            groups[name] += [q for q in meta.query_datasets if q not in groups[name]]
        else:
            raise ValueError(f"DATASETS.TEST entry '{name}' is neither a query nor a gallery set of a person-search dataset")
    return groups


def use_amp(cfg):
    """SOLVER.AMP.ENABLED on a CUDA device. Without CUDA (Detectron2's AMPTrainer needs it) training
    runs in float32 after one warning, so a GPU config also trains with MODEL.DEVICE cpu."""
    if not cfg.SOLVER.AMP.ENABLED:
        return False
    if cfg.MODEL.DEVICE.startswith("cuda") and torch.cuda.is_available():
        return True
    logger.warning(f"SOLVER.AMP.ENABLED needs CUDA; MODEL.DEVICE is {cfg.MODEL.DEVICE!r} "
                   f"(CUDA available: {torch.cuda.is_available()}): training in float32.")
    return False


def _stream_seed(cfg):
    if cfg.PS.SOLVER.STREAM_SEED >= 0:
        return cfg.PS.SOLVER.STREAM_SEED
    return max(cfg.SEED, 0)


def training_stream(records, cfg):
    """The position -> record map of the training stream: one shuffled stream over all records; with a
    "target" among PS.DATA.TRAIN_DOMAINS, the source and target images in PS.DATA.DOMAIN_RATIOS per
    batch (domain_pair_stream); or, with PS.DATA.TRAIN_RATIOS, the datasets of DATASETS.TRAIN mixed in
    those ratios. Both mixed streams tag each record with its "dataset_id" (the domain: 0 source,
    1 target; or the index in DATASETS.TRAIN)."""
    if TARGET in cfg.PS.DATA.TRAIN_DOMAINS:
        local_batch = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        return domain_pair_stream(records, cfg.PS.DATA.DOMAIN_RATIOS, local_batch, seed=_stream_seed(cfg))
    if not cfg.PS.DATA.TRAIN_RATIOS:
        return ShuffledStreamDataset(records, seed=_stream_seed(cfg))
    names = list(cfg.DATASETS.TRAIN)
    return MixedStreamDataset(split_by_dataset(records, names), cfg.PS.DATA.TRAIN_RATIOS, seed=_stream_seed(cfg), names=names)


def training_mapper(records, cfg):
    """HybridDatasetMapper (data unification) when a training record is a person crop, else the plain mapper."""
    mapper_cls = HybridDatasetMapper if any(CROP_BOX in r for r in records) else PersonSearchDatasetMapper
    return mapper_cls(cfg, is_train=True)


class PersonSearchTrainer(DefaultTrainer):
    """DefaultTrainer whose parts come from its public build_* classmethods (model, optimizer, train
    and test loaders, LR scheduler, hooks, evaluator) and `test`; only `__init__` and the resume of
    the training stream go beyond them (each says why)."""

    def __init__(self, cfg):
        # Detectron2 0.6's DefaultTrainer.__init__ fixes two things inline that no build_* method
        # reaches: the step loop (SimpleTrainer / AMPTrainer; we need finite_loss.py's NaN guard) and
        # create_ddp_model's default device_ids=[local rank], which DistributedDataParallel rejects for
        # a CPU model (launch.py's gloo runs). Calling it would fail on CPU DDP, and swapping the step
        # loop afterwards would start a second train-loader iterator (workers, and one more draw from
        # torch's RNG in every run). So this is its body with those two lines changed, plus the training
        # sets read once: their identities size the model's identity tables (ps_plugin.data.identities)
        # and the records are kept for the loader a resume rebuilds.
        super(DefaultTrainer, self).__init__()  # TrainerBase.__init__
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        self.train_records, self.identities = load_training_records(cfg)
        size_identity_tables(model, self.identities.num_rows, cfg.PS.REID.NUM_PIDS)
        data_loader = self.build_train_loader(cfg, records=self.train_records)
        device_ids = [comm.get_local_rank()] if cfg.MODEL.DEVICE.startswith("cuda") else None
        model = create_ddp_model(model, broadcast_buffers=False, device_ids=device_ids)
        trainer_cls = FiniteLossAMPTrainer if use_amp(cfg) else FiniteLossTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = PersonSearchCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
                                                     identities=self.identities)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.gathered_rng_states = []
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """Detectron2's hooks, after `GatherRNGStates` and `BroadcastBatchNormStatistics` (which must run
        before the checkpointer) and, for a model trained with pseudo labels (ClusterMemoryModel), the
        memory-init and epoch-clustering hooks, and for LAID its stage-1 hook (before the checkpointer and
        the evaluation)."""
        hooks = [GatherRNGStates(), BroadcastBatchNormStatistics()]
        if isinstance(getattr(self.model, "module", self.model), ClusterMemoryModel):
            records = self.train_records
            mapper = PersonSearchDatasetMapper(self.cfg, is_train=False)
            hooks += [
                MemoryInitHook(records, mapper, self.cfg.DATALOADER.NUM_WORKERS),
                EpochClusteringHook(len(records), self.cfg.SOLVER.IMS_PER_BATCH),
            ]
        if isinstance(getattr(self.model, "module", self.model), LAID):
            hooks.append(TargetPseudoLabelHook(self.cfg, self.train_records))
        return hooks + super().build_hooks()

    def train(self):
        """Train, then return the results of the evaluation run at the end of training (or None)."""
        super().train()
        return getattr(self, "_last_eval_results", None)

    @classmethod
    def build_model(cls, cfg):
        """Detectron2's build_model, plus the config of a PSDiff teacher (ps_plugin.config.load_teacher_cfg)
        as the model's `teacher_cfg`: modeling/ never builds a config itself, and PSDiff checks its
        teacher's embedding size here, when it is built, not at the first step."""
        teacher_cfg = load_teacher_cfg(cfg)
        extra = {} if teacher_cfg is None else {"teacher_cfg": teacher_cfg}
        model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg, **extra)
        model.to(torch.device(cfg.MODEL.DEVICE))
        logger.info(f"Model:\n{model}")
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_person_search_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg, start_iter=0, records=None):
        """The training stream from position `start_iter`; records: load_training_records(cfg)[0]
        (read when not given: person ids are identity-table rows either way)."""
        if records is None:
            records = load_training_records(cfg)[0]
        dataset = training_stream(records, cfg)
        return build_detection_train_loader(
            dataset,
            mapper=SeededMapper(training_mapper(records, cfg)),
            sampler=StreamPositionSampler(cfg.SOLVER.IMS_PER_BATCH, start_iter, cfg.DATALOADER.NUM_WORKERS),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    def resume_or_load(self, resume=True):
        """Detectron2's resume, then restart the training stream at the resumed iteration."""
        super().resume_or_load(resume=resume)
        if self.start_iter > 0:
            self.restart_train_stream(self.start_iter)

    def restart_train_stream(self, iteration):
        """Replace the training loader by a new one over `self.train_records` from stream position
        `iteration` (a resume; or LAID's pseudo-labelled target records, swapped in at an epoch start).

        Starting a DataLoader iterator draws from torch's global RNG (its base seed), so the RNG
        state is restored after the new iterator exists: the restart changes no random stream.
        """
        restored_rng = rng_state()
        loader = self.build_train_loader(self.cfg, start_iter=iteration, records=self.train_records)
        # SimpleTrainer has no public way to replace its loader in 0.6 (reset_data_loader came later,
        # and creates the iterator lazily, after the RNG restore below): set its iterator directly.
        self._trainer.data_loader = loader
        lazy_iterator = hasattr(self._trainer, "_data_loader_iter_obj")  # Detectron2 > 0.6
        setattr(self._trainer, "_data_loader_iter_obj" if lazy_iterator else "_data_loader_iter", iter(loader))
        set_rng_state(restored_rng)

    def state_dict(self):
        """Iteration and hooks (Detectron2), plus what 0.6 leaves out for an exact resume: the
        optimizer (and AMP grad scaler) state and every rank's RNG states."""
        state = super().state_dict()
        state["_trainer"] = self._trainer.state_dict()
        state["rng"] = [rng_state()] if comm.get_world_size() == 1 else self.gathered_rng_states
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        rng = state_dict.get("rng")
        if rng is not None and len(rng) == comm.get_world_size():
            set_rng_state(rng[comm.get_rank()])

    @classmethod
    def build_test_loader(cls, cfg, gallery_name, query_names=()):
        """One loader over the gallery images and the distinct queries of `query_names`, in any order."""
        dicts = build_person_search_test_dicts(gallery_name, list(query_names))
        return build_detection_test_loader(dicts, mapper=PersonSearchDatasetMapper(cfg, is_train=False),
                                           num_workers=cfg.DATALOADER.NUM_WORKERS)

    @classmethod
    def build_evaluator(cls, cfg, gallery_name, query_names=()):
        output_dir = os.path.join(cfg.OUTPUT_DIR, "inference", gallery_name)
        return PersonSearchEvaluator(cfg, gallery_name, list(query_names) or None, output_dir=output_dir)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate every gallery of DATASETS.TEST with its query sets; returns {gallery: metrics}.

        A query-conditioned model (SPNet in QC mode) is evaluated with a gallery pass per query
        (query_centric_inference); every other model with one gallery pass (inference_on_dataset).
        """
        results = OrderedDict()
        for gallery_name, query_names in group_test_datasets(cfg.DATASETS.TEST).items():
            loader = cls.build_test_loader(cfg, gallery_name, query_names)
            evaluator = cls.build_evaluator(cfg, gallery_name, query_names)
            if is_query_conditioned(model):
                results[gallery_name] = query_centric_inference(model, loader, evaluator)
            else:
                results[gallery_name] = inference_on_dataset(model, loader, evaluator)
            if comm.is_main_process():
                logger.info(f"Evaluation results for {gallery_name}:")
                print_csv_format(results[gallery_name])
        return results
