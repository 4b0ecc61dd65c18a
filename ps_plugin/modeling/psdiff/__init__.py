"""PSDiff: diffusion-based person search (Jia et al.). Importing registers the `PSDiff` meta-architecture."""
from .config import add_psdiff_config
from .meta_arch import PSDiff  # noqa: F401  (registers META_ARCH "PSDiff")
from .sampler import DDIMSampler, DPMSolverPlusPlusSampler, ddim_step, dpm_solver_pp_step, sampling_timesteps
from .schedule import DiffusionSchedule, cosine_alphas_cumprod

__all__ = [
    "DDIMSampler",
    "DPMSolverPlusPlusSampler",
    "DiffusionSchedule",
    "PSDiff",
    "add_psdiff_config",
    "cosine_alphas_cumprod",
    "ddim_step",
    "dpm_solver_pp_step",
    "sampling_timesteps",
]
