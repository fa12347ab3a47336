"""messor-dask: run Messor harvests on a Dask cluster (``pip install 'messor[dask]'``).

from messor_dask import DaskExecutor
DaskExecutor(tasks, memory="redis://host/0", address="tcp://scheduler:8786").run()

or ``messor run crawl:pages --executor dask://scheduler:8786``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messor_dask.executor import DaskExecutor
    from messor_dask.workers import DaskWorkers, SchedulerLostError

__all__ = ["DaskExecutor", "DaskWorkers", "SchedulerLostError"]

#: Where each name lives: imported on first use.
_MODULES = {
    "DaskExecutor": "messor_dask.executor",
    "DaskWorkers": "messor_dask.workers",
    "SchedulerLostError": "messor_dask.workers",
}


def __getattr__(name: str) -> Any:
    # `messor backends` loads this package's plugin module, and listing must
    # not import Dask.
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
