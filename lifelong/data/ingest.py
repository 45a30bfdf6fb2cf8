"""Ingestion: read a dataset, validate every record, copy the good ones into the pool.

Bad records never stop an ingest: each goes to the quarantine report with the
reason, and the rest ingest. All rows of one ingest commit in one transaction,
so a killed ingest leaves the pool exactly as it was, and a re-run is
idempotent: content already in the pool is counted as unchanged.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lifelong.data.pool import Pool
from lifelong.data.readers import BAD_BYTES, RawRecord, detect_format, read_records
from lifelong.data.sample import IMAGE_TOKEN, ROLES, Sample

# File stems (and DatasetDict keys) that name a split.
SPLIT_NAMES = ("train", "val", "validation", "test")


@dataclass
class IngestConfig:
    """Limits applied to every record."""

    max_text_chars: int = 32_000  # one turn; longer is almost surely a broken record
    max_turns: int = 64
    max_images: int = 8
    max_image_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 64 * 1024 * 1024  # PIL's decompression-bomb guard, made explicit
    # Creating a file costs ~0.4 ms on some file systems; a few writer threads
    # overlap that with parsing (file creation releases the GIL).
    io_threads: int = 4
    # Image files already validated in this ingest (by path, size and mtime):
    # datasets often reuse one image in many records. Bounded, so memory stays
    # flat in the number of distinct images.
    remembered_images: int = 20_000
    progress: bool = True


@dataclass
class IngestReport:
    dataset: str
    split: str
    source: str
    format: str
    added: int = 0
    unchanged: int = 0
    quarantined: list[dict] = field(default_factory=list)
    quarantine_path: Path | None = None

    @property
    def total(self) -> int:
        return self.added + self.unchanged + len(self.quarantined)

    def summary(self) -> str:
        return (
            f"{self.dataset}/{self.split}: {self.added} added, {self.unchanged} already in pool, "
            f"{len(self.quarantined)} quarantined" + (f" (see {self.quarantine_path})" if self.quarantined else "")
        )


class BadRecord(ValueError):
    """A record that cannot enter the pool; the message says why."""


_LLAVA_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _text(value, where: str, cfg: IngestConfig) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{where}: text must be a string, got {type(value).__name__}")
    if BAD_BYTES.search(value):
        raise BadRecord(f"{where}: text is not valid UTF-8")
    if len(value) > cfg.max_text_chars:
        raise BadRecord(f"{where}: text of {len(value)} characters exceeds the limit of {cfg.max_text_chars}")
    return value


def normalize_llava(rec: dict, cfg: IngestConfig) -> tuple[str | None, list[dict], list, dict]:
    """-> (source id, conversation, image refs, extra fields) of a LLaVA record."""
    if "conversations" not in rec:
        raise BadRecord("missing 'conversations'")
    turns = rec["conversations"]
    if not isinstance(turns, list):
        raise BadRecord("'conversations' must be a list")
    conv = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "from" not in t or "value" not in t:
            raise BadRecord(f"turn {i}: expected an object with 'from' and 'value'")
        role = _LLAVA_ROLES.get(t["from"]) if isinstance(t["from"], str) else None
        if role is None:
            raise BadRecord(f"turn {i}: unknown role {t['from']!r} (expected human/gpt/system)")
        conv.append({"role": role, "content": _text(t["value"], f"turn {i}", cfg)})
    image = rec.get("image")
    if image is None:
        images = []
    elif isinstance(image, str):
        images = [image]
    elif isinstance(image, list) and all(isinstance(x, str) for x in image):
        images = list(image)
    else:
        raise BadRecord("'image' must be a path string or a list of path strings")
    return rec.get("id"), conv, images, rec


def normalize_messages(rec: dict, cfg: IngestConfig) -> tuple[str | None, list[dict], list, dict]:
    """-> (source id, conversation, image refs, extra) of a TRL/LLaMA-Factory record.

    ``content`` may be a string (with ``<image>`` tokens) or a list of
    ``{"type": "text", "text": ...}`` / ``{"type": "image"}`` parts.
    """
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise BadRecord("missing or non-list 'messages'")
    conv = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise BadRecord(f"message {i}: expected an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise BadRecord(f"message {i}: unknown role {m['role']!r} (expected one of {', '.join(ROLES)})")
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for j, p in enumerate(content):
                kind = p.get("type") if isinstance(p, dict) else None
                if kind == "image":
                    parts.append(IMAGE_TOKEN)
                elif kind == "text":
                    parts.append(_text(p.get("text"), f"message {i} part {j}", cfg))
                else:
                    raise BadRecord(f"message {i} part {j}: unknown content part {p!r:.60}")
            content = "\n".join(parts)
        conv.append({"role": m["role"], "content": _text(content, f"message {i}", cfg)})
    images = rec.get("images") or []
    if not isinstance(images, list):
        images = [images]
    return rec.get("id"), conv, images, rec


NORMALIZERS = {"llava": normalize_llava, "messages": normalize_messages, "hf": None}


def check_conversation(conv: list[dict], n_images: int, cfg: IngestConfig) -> None:
    if not conv:
        raise BadRecord("empty conversation")
    if len(conv) > cfg.max_turns:
        raise BadRecord(f"{len(conv)} turns exceed the limit of {cfg.max_turns}")
    roles = [t["role"] for t in conv]
    if "user" not in roles or "assistant" not in roles:
        raise BadRecord("one-sided conversation: needs at least one user and one assistant turn")
    if roles.index("assistant") < roles.index("user"):
        raise BadRecord("conversation starts with an assistant turn before any user turn")
    if any(not t["content"].strip() for t in conv if t["role"] == "assistant"):
        raise BadRecord("empty assistant turn")
    n_tokens = sum(t["content"].count(IMAGE_TOKEN) for t in conv)
    if any(IMAGE_TOKEN in t["content"] for t in conv if t["role"] != "user"):
        raise BadRecord(f"{IMAGE_TOKEN} token outside a user turn")
    if n_tokens != n_images:
        raise BadRecord(f"{n_images} image(s) but {n_tokens} {IMAGE_TOKEN} token(s)")
    if n_images > cfg.max_images:
        raise BadRecord(f"{n_images} images exceed the limit of {cfg.max_images}")


def check_relative(ref: str) -> Path:
    """``ref`` as a relative path without ``..``; absolute or escaping paths are refused."""
    if not ref or "\x00" in ref:
        raise BadRecord(f"image path {ref!r} is empty or invalid")
    p = Path(ref)
    if p.is_absolute() or ref.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", ref):
        raise BadRecord(f"image path {ref!r} is absolute; paths must be relative to the dataset root")
    if ".." in p.parts:
        raise BadRecord(f"image path {ref!r} escapes the dataset root")
    return p


def check_image(data: bytes, ref: str, cfg: IngestConfig) -> None:
    """Decode the whole image; truncated or unreadable files are refused."""
    from PIL import Image

    if len(data) > cfg.max_image_bytes:
        raise BadRecord(f"image {ref!r}: {len(data)} bytes exceed the limit of {cfg.max_image_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > cfg.max_image_pixels:
                    raise BadRecord(f"image {ref!r}: {im.width}x{im.height} pixels exceed the limit")
                im.load()
    except BadRecord:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise BadRecord(f"image {ref!r} is unreadable or truncated ({type(e).__name__}: {e})") from None


class ImageStore:
    """Resolves, validates and stores the images of one ingest.

    A file referenced by several records is read and decoded once: its digest
    is remembered with its size and mtime. Folder real paths are cached too, so
    symlink checks cost one ``lstat`` per file instead of one per path component.
    """

    def __init__(self, root: Path, writes: "BlobWriter", cfg: IngestConfig):
        self.root = root
        self.real_root = root.resolve()
        self.writes = writes
        self.cfg = cfg
        self._dirs: dict[str, Path] = {}
        self._seen: OrderedDict[Path, tuple[int, int, str]] = OrderedDict()  # LRU, bounded

    def _real_path(self, ref: str) -> Path:
        p = check_relative(ref)
        parent = str(p.parent)
        real_dir = self._dirs.get(parent)
        if real_dir is None:
            real_dir = self._dirs[parent] = (self.root / p.parent).resolve()
        real = real_dir / p.name
        if real.is_symlink():
            real = real.resolve()
        if real != self.real_root and self.real_root not in real.parents:
            raise BadRecord(f"image path {ref!r} resolves outside the dataset root (symlink?)")
        return real

    def digest(self, ref) -> str:
        """Content hash of the image ``ref`` (a path or ``{"bytes", "path"}``), stored in the pool."""
        if isinstance(ref, dict) and ref.get("bytes") is not None:
            data = ref["bytes"]
            check_image(data, ref.get("path") or "<embedded>", self.cfg)
            return self._store(data)
        path_ref = ref.get("path") if isinstance(ref, dict) else ref
        if not isinstance(path_ref, str):
            raise BadRecord(f"image reference {ref!r:.60} is neither a path nor embedded bytes")
        real = self._real_path(path_ref)
        try:
            st = real.stat()
            seen = self._seen.get(real)
            if seen is not None and seen[:2] == (st.st_size, st.st_mtime_ns):
                self._seen.move_to_end(real)
                return seen[2]
            data = real.read_bytes()
        except FileNotFoundError:
            raise BadRecord(f"image {path_ref!r} does not exist") from None
        except (IsADirectoryError, PermissionError, OSError) as e:
            raise BadRecord(f"image {path_ref!r} cannot be read ({e.strerror or e})") from None
        check_image(data, path_ref, self.cfg)
        digest = self._store(data)
        self._seen[real] = (st.st_size, st.st_mtime_ns, digest)
        if len(self._seen) > self.cfg.remembered_images:
            self._seen.popitem(last=False)
        return digest

    def _store(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.writes.put(data, digest)
        return digest


def ingest(
    pool: Pool,
    source: str | Path,
    dataset: str | None = None,
    split: str | None = None,
    fmt: str | None = None,
    round_added: int = 0,
    image_root: str | Path | None = None,
    cfg: IngestConfig | None = None,
) -> IngestReport:
    """Ingest one dataset file/dir into ``pool`` and write its quarantine report.

    ``dataset`` defaults to the parent folder name (LLaVA ``<name>/train.json``)
    or the file stem; ``split`` defaults to ``train`` unless the file stem
    names one (``test``, ``val``, ``validation``). Images resolve against
    ``image_root`` (default: the file's folder) and may not escape it.
    """
    cfg = cfg or IngestConfig()
    source, dataset, split, fmt, root = _source(source, dataset, split, fmt, image_root)
    report = IngestReport(dataset, split, str(source), fmt)
    ingest_id = pool.new_ingest(str(source), fmt, dataset, split, round_added)
    seen_ids: dict[str, int] = {}
    records = read_records(source, fmt, split)
    if cfg.progress:
        from tqdm import tqdm

        records = tqdm(records, desc=f"ingest {dataset}/{split}", unit="rec", mininterval=1.0, leave=False)
    writes = BlobWriter(pool, cfg.io_threads)
    images = ImageStore(root, writes, cfg)
    with pool.transaction():
        for raw in records:
            try:
                sample = _to_sample(raw, fmt, dataset, split, images, cfg, seen_ids)
                key = sample.content_key()
                known = pool.lookup(sample.id)
                if known is not None and known[0] != key:
                    raise BadRecord(f"id {sample.id!r} is already in the pool with different content")
                if pool.insert(sample, key, round_added, ingest_id):
                    report.added += 1
                else:
                    report.unchanged += 1
            except BadRecord as e:
                rid = raw.data.get("id") if isinstance(raw.data, dict) else None
                report.quarantined.append(
                    {"index": raw.index, "line": raw.line, "id": rid if isinstance(rid, (str, int)) else None,
                     "reason": str(e)}
                )
        writes.wait()  # every blob is on disk before the rows naming it commit
        pool.finish_ingest(ingest_id, report.added, report.unchanged, len(report.quarantined))
    report.quarantine_path = write_quarantine(pool, report)
    return report


def _source(source, dataset, split, fmt, image_root) -> tuple[Path, str, str, str, Path]:
    """(source, dataset, split, format, image root) with :func:`ingest`'s defaults filled in."""
    source = Path(source)
    fmt = fmt or detect_format(source)
    stem = source.stem.lower()
    split = split or (stem if stem in SPLIT_NAMES else "train")
    if dataset is None:
        dataset = source.parent.name if stem in SPLIT_NAMES else source.stem
    root = Path(image_root) if image_root is not None else (source if source.is_dir() else source.parent)
    return source, dataset, split, fmt, root


def check_records(source: str | Path, dataset: str | None = None, split: str | None = None, fmt: str | None = None,
                  image_root: str | Path | None = None, cfg: IngestConfig | None = None) -> IngestReport:
    """A dry run of :func:`ingest`: every record validated, nothing stored.

    The report's ``added`` counts the records that would enter an empty pool,
    ``quarantined`` the bad ones with their reasons.
    """
    cfg = cfg or IngestConfig()
    source, dataset, split, fmt, root = _source(source, dataset, split, fmt, image_root)
    report = IngestReport(dataset, split, str(source), fmt)
    images = ImageStore(root, _DiscardWrites(), cfg)
    seen_ids: dict[str, int] = {}
    for raw in read_records(source, fmt, split):
        try:
            _to_sample(raw, fmt, dataset, split, images, cfg, seen_ids)
            report.added += 1
        except BadRecord as e:
            report.quarantined.append({"index": raw.index, "line": raw.line, "id": None, "reason": str(e)})
    return report


class _DiscardWrites:
    """Blob writer of a dry run: validated images are not stored."""

    def put(self, data: bytes, digest: str) -> None:
        pass


class BlobWriter:
    """Writes blobs on a few threads; ``wait()`` returns once all are stored."""

    def __init__(self, pool: Pool, threads: int, max_pending: int = 256):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = pool
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads))
        self.pending: list = []
        self.max_pending = max_pending

    def put(self, data: bytes, digest: str) -> None:
        self.pending.append(self.executor.submit(self.pool.put_blob, data, digest))
        if len(self.pending) >= self.max_pending:  # bounds memory held by queued images
            self._drain(self.max_pending // 2)

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            self.pending.pop(0).result()

    def wait(self) -> None:
        self._drain(0)
        self.executor.shutdown()


def _to_sample(raw: RawRecord, fmt, dataset, split, images: ImageStore, cfg, seen_ids) -> Sample:
    if raw.data is None:
        raise BadRecord(raw.error or "unreadable record")
    rec = raw.data
    if not isinstance(rec, dict):
        raise BadRecord(f"record is a {type(rec).__name__}, not an object")
    normalize = NORMALIZERS[fmt] or (normalize_messages if "messages" in rec else normalize_llava)
    rid, conv, image_refs, extra = normalize(rec, cfg)
    if rid is not None:
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise BadRecord(f"id must be a string or integer, got {type(rid).__name__}")
        rid = str(rid)
        if rid in seen_ids:
            raise BadRecord(f"duplicate id {rid!r} (first at record {seen_ids[rid]})")
        seen_ids[rid] = raw.index
    check_conversation(conv, len(image_refs), cfg)
    hashes = [images.digest(ref) for ref in image_refs]
    task = extra.get("task", dataset)
    if not isinstance(task, str) or not task:
        raise BadRecord("'task' must be a non-empty string")
    provenance = extra.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise BadRecord("'provenance' must be an object")
    sample = Sample(id="", dataset=dataset, task=task, split=split, conversation=conv, images=hashes,
                    provenance={**provenance, "source_id": rid})
    # Records without an id are named by their content, so the same record
    # arriving from another file or format is recognised as the same sample.
    sample.id = f"{dataset}/{split}/{rid if rid is not None else sample.content_key()[:16]}"
    return sample


def write_quarantine(pool: Pool, report: IngestReport) -> Path:
    """``quarantine/<dataset>.<split>.jsonl``: one line per bad record of the latest ingest."""
    qdir = pool.root / "quarantine"
    qdir.mkdir(exist_ok=True)
    path = qdir / f"{report.dataset}.{report.split}.jsonl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for q in report.quarantined:
            f.write(json.dumps({"source": report.source, **q}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def iter_dataset_files(path: Path, split: str | None = None) -> Iterator[Path]:
    """A LLaVA dataset folder ``<name>/{train,test}.json`` yields each split file (only ``split``'s if given).

    A file or a ``save_to_disk`` folder is yielded as it is (a saved
    ``DatasetDict`` holds its splits inside).
    """
    path = Path(path)
    if path.is_dir() and detect_format_safe(path) != "hf":
        for name in SPLIT_NAMES if split is None else (split,):
            for ext in (".json", ".jsonl", ".parquet"):
                if (path / f"{name}{ext}").exists():
                    yield path / f"{name}{ext}"
    else:
        yield path


def detect_format_safe(path: Path) -> str | None:
    try:
        return detect_format(path)
    except Exception:
        return None
