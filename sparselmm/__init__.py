"""sparselmm: linear mixed-effects models by lme4's method, in Python."""

from __future__ import annotations

from sparselmm import datasets, families
from sparselmm.errors import (
    ArgumentError,
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    FormulaError,
    ModelSpecError,
    RankDeficiencyWarning,
    ScaleWarning,
    SingularFitWarning,
    SparseLMMError,
    SparseLMMWarning,
)
from sparselmm.frame.modelframe import Design, design
from sparselmm.stats.emmeans import EMMeans, emmeans
from sparselmm.stats.ftests import contest, drop1
from sparselmm.stats.inference import anova
from sparselmm.stats.ranova import ranova_table as ranova
from sparselmm.api import fit_design, lmer
from sparselmm.fitting.control import FitControl
from sparselmm.model import LinearMixedModel
from sparselmm.glmm import GeneralizedLinearMixedModel, glmer
from sparselmm.persistence import load, save
from sparselmm.stats.rmanova import RMAnovaResult, rm_anova
from sparselmm.transforms import group_center

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "GeneralizedLinearMixedModel",
    "families",
    "anova",
    "contest",
    "drop1",
    "ranova",
    "emmeans",
    "EMMeans",
    "LinearMixedModel",
    "save",
    "load",
    "fit_design",
    "FitControl",
    "design",
    "Design",
    "datasets",
    "rm_anova",
    "group_center",
    "RMAnovaResult",
    "SparseLMMError",
    "FormulaError",
    "DataError",
    "ModelSpecError",
    "ConvergenceError",
    "ArgumentError",
    "SparseLMMWarning",
    "ConvergenceWarning",
    "RankDeficiencyWarning",
    "ScaleWarning",
    "SingularFitWarning",
]
