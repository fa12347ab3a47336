"""Executors: where attempts run. :mod:`~messor.executors.base` holds what they share
(options, :func:`~messor.executors.base.drive`, the ``Workers`` interface);
:mod:`~messor.executors.threads` runs attempts on threads,
:mod:`~messor.executors.coroutines` as coroutines on one event loop.
"""
