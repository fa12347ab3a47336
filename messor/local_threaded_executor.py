"""The seed's import path of the thread executor.

``from messor.local_threaded_executor import LocalThreadedExecutor``; the
executor lives in :mod:`messor.executors.threads`.
"""

from messor.executors.threads import LocalThreadedExecutor

__all__ = ["LocalThreadedExecutor"]
