"""messor-jsonl: a Messor memory in a JSON-lines file, an example of a memory plugin.

import messor
memory = messor.open_memory("jsonl:///harvest.jsonl")
"""

from __future__ import annotations

from messor_jsonl.memory import JSONLMemory

__all__ = ["JSONLMemory"]
