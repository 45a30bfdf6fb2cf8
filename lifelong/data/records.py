"""One record in, one validated ``Sample`` out: the checks every record of every format passes.

A record that fails a check raises :class:`BadRecord` with the reason, which
ingestion writes to the quarantine report. Images are resolved inside the
dataset root only (no absolute paths, no ``..``, no symlinks out), decoded
whole and stored by content hash (:class:`ImageStore`).
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from lifelong.data.readers import BAD_BYTES, RawRecord
from lifelong.data.sample import IMAGE_TOKEN, ROLES, Sample


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
        if "question_id" in rec and "text" in rec:
            return normalize_question(rec, cfg)
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


def normalize_question(rec: dict, cfg: IngestConfig) -> tuple[str | None, list[dict], list, dict]:
    """-> (source id, conversation, image refs, extra) of a question record of a LLaVA-style
    evaluation file: ``question_id``, ``image`` (optional), ``text`` (the prompt) and its answer.

    The answer is ``answer_bbox`` where the record has one (a grounding box, as CoIN's
    Grounding files give it beside the image ``size``), else ``answer``. ``<image>`` tokens in
    the text are dropped and one is put first when the record has an image, as LLaVA's
    evaluation scripts build the prompt.
    """
    image = rec.get("image")
    if image is not None and not isinstance(image, str):
        raise BadRecord("'image' of a question record must be a path string")
    text = _text(rec["text"], "text", cfg).replace(IMAGE_TOKEN, "").strip()
    answer = rec.get("answer_bbox", rec.get("answer"))
    if isinstance(answer, list) and all(isinstance(x, (int, float)) for x in answer):
        answer = "[" + ", ".join(str(x) for x in answer) + "]"
    elif isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        raise BadRecord("no answer: a question record needs a non-empty 'answer' (or 'answer_bbox')")
    prompt = f"{IMAGE_TOKEN}\n{text}" if image else text
    conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(answer, "answer", cfg)}]
    return rec["question_id"], conv, [image] if image else [], rec


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

    def __init__(self, root: Path, writes, cfg: IngestConfig):
        """``writes.put(data, digest)`` stores a validated image (the ingest's blob writer)."""
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


def to_sample(raw: RawRecord, fmt, dataset, split, images: ImageStore, cfg, seen_ids) -> Sample:
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
