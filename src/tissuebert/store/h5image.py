"""HDF5 files are built in memory and written with plain Python I/O.

HDF5 handles a failing write (full disk, file-size limit) badly: h5py may raise from a
destructor or the interpreter may abort while the library flushes. Building the file image in
a ``BytesIO`` keeps every disk write in :func:`tissuebert.atomic.atomic_write_bytes`, where a
full disk is one ``OSError`` and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import h5py

from tissuebert.atomic import atomic_write_bytes


@contextlib.contextmanager
def h5_writer(path: str | Path) -> Iterator[h5py.File]:
    """``with h5_writer(path) as f: ...`` fills an in-memory HDF5 file, then writes it atomically."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    atomic_write_bytes(path, buffer.getbuffer())
