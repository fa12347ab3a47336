"""messor-s3: an S3 memory for Messor (``pip install 'messor[s3]'``).

import messor
memory = messor.open_memory("s3://my-bucket/harvests/catalogue")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messor_s3.memory import S3Memory

__all__ = ["S3Memory"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `messor backends` loads this package's plugin
    # module, and listing must not import the client library.
    if name == "S3Memory":
        from messor_s3.memory import S3Memory

        return S3Memory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
