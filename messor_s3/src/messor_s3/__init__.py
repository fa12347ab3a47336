"""messor-s3: an S3 memory for Messor (``pip install 'messor[s3]'``).

import messor
memory = messor.open_memory("s3://my-bucket/harvests/catalogue")
"""

from __future__ import annotations

from messor_s3.memory import S3Memory

__all__ = ["S3Memory"]
