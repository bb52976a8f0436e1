"""The one place that chooses a backend for a design, in memory or from Dask alike.

:data:`BACKENDS` lists the backends in the order ``"auto"`` asks them: the first whose
:meth:`~sparselmm.backends.base.PLSBackend.preferred` holds for the design gets it, CHOLMOD
(:class:`~sparselmm.backends.cholmod.PLSState`, which applies to every design) otherwise.  A
backend named explicitly must :meth:`~sparselmm.backends.base.PLSBackend.applies` to the design.
Adding a backend is one module with one :class:`~sparselmm.backends.base.PLSBackend` subclass
and one entry here.
"""

from __future__ import annotations

from sparselmm.backends.base import PLSBackend, PLSProblem
from sparselmm.backends.blockdiag import BlockDiagState
from sparselmm.backends.blockschur import BlockSchurPLSState
from sparselmm.backends.cholmod import PLSState
from sparselmm.backends.scalar import ScalarTermsPLSState
from sparselmm.backends.schur import DenseSchurPLSState, SchurState
from sparselmm.errors import ModelSpecError

__all__ = ["BACKENDS", "names", "backend_class", "choose"]

#: every backend, in the order ``"auto"`` asks whether it is preferred (CHOLMOD last: the fallback)
BACKENDS: tuple[type[PLSBackend], ...] = (
    BlockDiagState, DenseSchurPLSState, SchurState, BlockSchurPLSState, ScalarTermsPLSState, PLSState
)

def names() -> tuple[str, ...]:
    """The names ``Design.pls(backend=...)`` accepts: ``"auto"`` and each backend's."""
    return ("auto",) + tuple(b.name for b in BACKENDS)


def backend_class(name: str) -> type[PLSBackend]:
    """The backend called ``name``.

    Raises
    ------
    ModelSpecError
        For a name that is not one of :func:`names` (other than ``"auto"``).
    """
    for b in BACKENDS:
        if b.name == name:
            return b
    raise ModelSpecError(f"backend must be {', '.join(repr(n) for n in names()[:-1])} or {names()[-1]!r}, got {name!r}")


def choose(design: PLSProblem, backend: str = "auto") -> type[PLSBackend]:
    """The backend class for a design: the named one, or ``"auto"``'s choice.

    Parameters
    ----------
    design : PLSProblem
    backend : str
        ``"auto"`` or one of the backends' names.

    Returns
    -------
    type
        A :class:`~sparselmm.backends.base.PLSBackend` subclass.

    Raises
    ------
    ModelSpecError
        For an unknown name, or a named backend that does not apply to the design.
    """
    if backend == "auto":
        return next((b for b in BACKENDS if b.preferred(design)), PLSState)
    cls = backend_class(backend)
    cls.require(design)
    return cls
