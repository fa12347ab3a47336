"""Memories: the interface (:mod:`~messor.memories.base`), run claims, and the core's own backends.

``sqlite`` (the default, :mod:`~messor.memories.sqlite`) and ``memory``
(in-process, :mod:`~messor.memories.inprocess`) reach users through the
core's plugin, :mod:`~messor.memories.builtin`, by the same entry-point path
as third-party memories. Importing this package loads no backend.
"""
