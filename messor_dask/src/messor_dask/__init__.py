"""messor-dask: run Messor harvests on a Dask cluster (``pip install 'messor[dask]'``).

from messor_dask import DaskExecutor
DaskExecutor(tasks, memory="redis://host/0", address="tcp://scheduler:8786").run()
"""

from __future__ import annotations

from messor_dask.executor import DaskExecutor, SchedulerLostError

__all__ = ["DaskExecutor", "SchedulerLostError"]
