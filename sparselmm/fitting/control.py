"""The fit's settings as one frozen record, in the spirit of lme4's ``lmerControl``.

:class:`FitControl` holds the optimizer, its options (validated by name and value against
what that optimizer reads), the convergence check, the start and verbosity.  Every fitting
entry point (``lmer``, ``fit_design``, the Dask ``lmer_dask``) takes these settings
as keywords or as ``control=`` and turns them into a record through :meth:`FitControl.make`,
so the settings and their checks are written once; ``refit`` makes one from the fit's optimizer
and θ.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Mapping, Sequence, TypedDict

import numpy as np

from sparselmm import validate
from sparselmm.errors import ArgumentError
from sparselmm.fitting.optimize import OPTIMIZERS

__all__ = ["FitControl", "FitSettings"]


class FitSettings(TypedDict, total=False):
    """The keywords every fitting function accepts (the fields of :class:`FitControl`)."""

    optimizer: str
    options: "Mapping[str, Any] | None"
    check: "bool | str"
    start: Any
    verbose: bool
    progress: bool


@dataclass(frozen=True)
class FitControl:
    """How θ is searched for (lme4's ``lmerControl``); immutable.

    Attributes
    ----------
    optimizer : str
        ``"auto"`` (BOBYQA from :meth:`Design.moment_start`, finished by Newton steps; see
        ``docs/architecture.md``) or one of :data:`sparselmm.fitting.optimize.OPTIMIZERS`
        (``"bobyqa"``, ``"cobyqa"``, ``"nelder_mead"``, ``"lbfgsb"``: the analytic gradient
        where it is available).
    options : mapping
        The optimizer's options under their canonical names (lme4's ``optCtrl`` aliases
        accepted: ``maxfun``, ``rhobeg``, ...); an unknown name is an error that lists the
        valid ones.
    check : bool or "auto"
        Finite-difference convergence check at the optimum, whose derivatives also finish the
        search by Newton steps (``"auto"``: when θ has at most 20 entries).
    start : array-like or None
        Starting θ (default: the moment start with ``"auto"``, else lme4's); checked against
        the design's length and bounds when the fit starts (``validate.theta_start``).
    verbose : bool
        Log progress through :mod:`logging` at INFO level and print it.
    progress : bool
        Show the fit's long steps (its evaluations, and later the Satterthwaite and
        Kenward–Roger derivatives of the model) as a bar where tqdm is installed and the output
        is a terminal or notebook, else as lines (:mod:`sparselmm.progress`); ``verbose``
        implies it.
    """

    optimizer: str = "auto"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    check: bool | str = "auto"
    start: np.ndarray | None = None
    verbose: bool = False
    progress: bool = False

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle the fields, the options as a plain dict (a read-only mapping view cannot be pickled)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw["options"] = dict(self.options)
        return (_restore, (kw,))

    @classmethod
    def make(cls, control: "FitControl | None" = None, **settings: Any) -> "FitControl":
        """A checked record from ``control`` (default: lme4's defaults) with ``settings`` applied.

        Parameters
        ----------
        control : FitControl, optional
        **settings
            Any of the fields by name.

        Returns
        -------
        FitControl

        Raises
        ------
        ArgumentError
            For a setting that is not a field (the message lists them), a value of the wrong
            type, an unknown optimizer, an option the optimizer does not read, or a start that
            is not an array of real numbers.
        """
        return cls.from_settings(control, settings)

    @classmethod
    def from_settings(
        cls, control: "FitControl | None", settings: Mapping[str, Any], *, caller: str = "", own: Sequence[str] = ()
    ) -> "FitControl":
        """:meth:`make` for a fitting function that passes on its ``**settings``: an unknown
        keyword is reported as the function's (``caller``), with its own keywords (``own``).

        Returns
        -------
        FitControl
        """
        if control is not None and not isinstance(control, FitControl):
            raise ArgumentError(f"control must be a FitControl (or None), got {type(control).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = [k for k in settings if k not in known]
        if unknown:
            if caller:
                raise ArgumentError(
                    f"{caller}() got an unknown keyword {unknown[0]!r}; its keywords are {', '.join(own)}, control "
                    f"and the fit settings {', '.join(known)}"
                )
            raise ArgumentError(f"unknown fit setting {unknown[0]!r}; the settings are: {', '.join(known)}")
        base = control if control is not None else cls()
        merged = {f: getattr(base, f) for f in known}
        merged.update(settings)
        optimizer = validate.choice(merged["optimizer"], "optimizer", OPTIMIZERS, fold=False)
        options = validate.optimizer_options(optimizer, merged["options"])
        start = merged["start"]
        if start is not None:  # a copy that cannot change under the record (length and bounds: at the fit)
            start = validate.real_array(start, "start", finite=False, flatten=True).copy()
            start.flags.writeable = False
        return replace(
            base,
            optimizer=optimizer,
            options=MappingProxyType(options),
            check=validate.flag_or_auto(merged["check"], "check"),
            start=start,
            verbose=validate.flag(merged["verbose"], "verbose"),
            progress=validate.flag(merged["progress"], "progress"),
        )


def _restore(kw: dict[str, Any]) -> FitControl:
    """A pickled :class:`FitControl` (its options read-only again)."""
    return FitControl(**{**kw, "options": MappingProxyType(dict(kw["options"]))})
