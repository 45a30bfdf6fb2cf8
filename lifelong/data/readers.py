"""Streaming readers for the dataset formats users bring.

Each reader yields ``RawRecord``s one at a time (memory flat in the number of
records): either a decoded JSON-like dict, or the reason it could not be
decoded. Normalising and validating records is ``ingest``'s job.

Formats:
- ``llava``: LLaVA JSON — a JSON array of ``{"id", "image", "conversations"}``
  (``.json``) or one such record per line (``.jsonl`` with ``conversations``).
- ``messages``: TRL / LLaMA-Factory style ``{"messages": [...], "images": [...]}``
  as JSONL or Parquet.
- ``hf``: a Hugging Face ``datasets`` dataset saved with ``save_to_disk``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Read the JSON array in chunks of this many bytes; a record may span chunks.
CHUNK_BYTES = 1 << 20
# A JSON element longer than this is reported malformed rather than read on
# (records are a few KB; this bounds memory when a bracket is never closed).
MAX_RECORD_CHARS = 16 * CHUNK_BYTES
# Bytes that were not valid UTF-8 decode to these lone surrogates (surrogateescape).
BAD_BYTES = re.compile("[\udc80-\udcff]")


@dataclass
class RawRecord:
    index: int  # position in the file (0-based record number)
    data: dict | None  # None when the record could not be decoded
    error: str | None = None
    line: int | None = None  # 1-based line where the record starts, when known


class FormatError(ValueError):
    """The file as a whole cannot be read (not a per-record problem)."""


def detect_format(path: Path) -> str:
    """Guess ``llava`` / ``messages`` / ``hf`` from the path and first record."""
    path = Path(path)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (
            path / "state.json"
        ).exists():
            return "hf"
        raise FormatError(f"{path}: a directory but not a dataset saved with save_to_disk")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "messages"
    if suffix == ".json":
        return "llava"
    if suffix == ".jsonl":
        with open(path, "rb") as f:
            for raw in f:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    first = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    break
                if isinstance(first, dict) and "messages" in first:
                    return "messages"
                break
        return "llava"
    raise FormatError(f"{path}: unknown dataset format (expected .json, .jsonl, .parquet or a save_to_disk dir)")


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    """One record per non-empty line; each line decoded on its own."""
    with open(path, "rb") as f:
        index = 0
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRecord(index, None, f"text is not valid UTF-8 ({e.reason} at byte {e.start})", lineno)
                index += 1
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                yield RawRecord(index, None, f"malformed JSON: {e.msg} (column {e.colno})", lineno)
                index += 1
                continue
            yield RawRecord(index, data, None, lineno)
            index += 1


def read_json_array(path: Path) -> Iterator[RawRecord]:
    """Stream the elements of a top-level JSON array without loading the file.

    A malformed element is reported and skipped: reading resumes at the next
    line that opens an object at the same indentation as the first element, so
    one broken record does not take the rest of the file with it. Bytes that
    are not UTF-8 make the element they sit in a bad record.
    """
    reader = _TextWindow(path)
    decoder = json.JSONDecoder()
    reader.skip_ws()
    if not reader.startswith("["):
        raise FormatError(f"{path}: a LLaVA JSON file must be a JSON array of records")
    reader.advance(1)
    index = 0
    indent: int | None = None
    while True:
        reader.skip_ws()
        if reader.at_end():
            raise FormatError(f"{path}: file ends before the closing ']' (truncated?)")
        if reader.startswith("]"):
            return
        if index > 0 and reader.startswith(","):
            reader.advance(1)
            reader.skip_ws()
        start_line = reader.line
        if indent is None:
            indent = reader.column()
        while True:
            try:
                value, end = decoder.raw_decode(reader.buf, reader.pos)
            except json.JSONDecodeError as e:
                error_offset = e.pos - reader.pos  # fill() re-bases the window
                if len(reader.buf) - reader.pos < MAX_RECORD_CHARS and reader.fill():
                    continue  # maybe the element just did not fit in the window yet
                yield RawRecord(index, None, f"malformed JSON: {e.msg}", start_line)
                index += 1
                if not reader.seek_line_starting("\n" + " " * indent + "{", reader.pos + error_offset):
                    return
                break
            text = reader.buf[reader.pos : end]
            reader.advance(end - reader.pos)
            if BAD_BYTES.search(text):
                yield RawRecord(index, None, "text is not valid UTF-8", start_line)
            else:
                yield RawRecord(index, value, None, start_line)
            index += 1
            break


class _TextWindow:
    """A sliding window of decoded text over a file, with line tracking.

    Undecodable bytes become lone surrogates (``surrogateescape``) so they can
    be detected per record instead of failing the whole file.
    """

    def __init__(self, path: Path):
        import codecs

        self.f = open(path, "rb")
        self.dec = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.fill()

    def fill(self) -> bool:
        """Append the next chunk (dropping consumed text); False at end of file."""
        if self.eof:
            return False
        chunk = self.f.read(CHUNK_BYTES)
        self.eof = not chunk
        text = self.dec.decode(chunk, final=self.eof)
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        if self.eof:
            self.f.close()
        return bool(text) or not self.eof

    def at_end(self) -> bool:
        return self.pos >= len(self.buf) and not self.fill()

    def startswith(self, s: str) -> bool:
        while len(self.buf) - self.pos < len(s) and self.fill():
            pass
        return self.buf.startswith(s, self.pos)

    def advance(self, n: int) -> None:
        self.line += self.buf.count("\n", self.pos, self.pos + n)
        self.pos += n

    def column(self) -> int:
        return self.pos - (self.buf.rfind("\n", 0, self.pos) + 1)

    def skip_ws(self) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.advance(1)
            if self.pos < len(self.buf) or not self.fill():
                return

    def seek_line_starting(self, needle: str, frm: int) -> bool:
        """Move just past the newline of the next ``needle`` after ``frm``."""
        frm = max(frm, self.pos)
        while True:
            i = self.buf.find(needle, frm)
            if i >= 0:
                self.advance(i + 1 - self.pos)
                return True
            frm = max(self.pos, len(self.buf) - len(needle))
            consumed = frm - self.pos
            self.advance(consumed)
            if not self.fill():
                return False
            frm = 0


def read_parquet(path: Path, batch_rows: int = 1024) -> Iterator[RawRecord]:
    """Rows of a Parquet file as dicts, in record batches."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FormatError(f"{path}: not a readable Parquet file ({e})") from None
    index = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield RawRecord(index, row, None, None)
            index += 1


def read_hf_dataset(path: Path, split: str | None) -> Iterator[RawRecord]:
    """Rows of a ``save_to_disk`` dataset; images come back as ``{"bytes", "path"}``."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split is None or split not in ds:
            raise FormatError(f"{path}: a DatasetDict; choose a split with --split (has: {', '.join(ds)})")
        ds = ds[split]
    for name, feat in ds.features.items():
        if isinstance(feat, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feat, datasets.Sequence) and isinstance(feat.feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Sequence(datasets.Image(decode=False)))
        elif isinstance(feat, list) and feat and isinstance(feat[0], datasets.Image):
            ds = ds.cast_column(name, [datasets.Image(decode=False)])
    for index, row in enumerate(ds):
        yield RawRecord(index, row, None, None)


def read_records(path: Path, fmt: str, split: str | None = None) -> Iterator[RawRecord]:
    path = Path(path)
    if fmt == "hf":
        return read_hf_dataset(path, split)
    if path.suffix.lower() == ".parquet":
        return read_parquet(path)
    if path.suffix.lower() == ".jsonl":
        return read_jsonl(path)
    return read_json_array(path)
