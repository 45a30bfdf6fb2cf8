"""The pool's content-addressed image store: ``blobs/ab/abcdef…``, files named by the sha256 of their bytes."""
from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path


class BlobStore:
    """Image files under ``root``; a file is written to a temporary name and renamed into place."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._subdirs: set[str] = set()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` under its sha256 (atomic rename); returns the hex digest."""
        digest = digest or hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if path.exists():
            return digest
        if path.parent.name not in self._subdirs:
            path.parent.mkdir(exist_ok=True)
            self._subdirs.add(path.parent.name)
        # A per-writer temporary name: concurrent writers of the same content
        # each rename a complete file into place.
        tmp = path.parent / f".tmp-{digest}-{os.getpid()}-{threading.get_ident()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def load_image(self, digest: str):
        """The stored image as an RGB ``PIL.Image``."""
        from PIL import Image

        with Image.open(io.BytesIO(self.read(digest))) as im:
            return im.convert("RGB")

    def count(self) -> int:
        return sum(1 for p in self.root.glob("*/*") if not p.name.startswith(".tmp-"))
