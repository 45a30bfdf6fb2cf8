"""Data check: every dataset of a stream read, validated and counted before any training.

``lifelong data check CONFIG`` runs :func:`check_dataset` on each of the
config's datasets and prints one row per dataset and split: the records found,
the count expected (``expected`` in the dataset's config entry, e.g. a
benchmark's published counts), the records that would ingest, and what is wrong
with the others — missing images, unreadable images, records with no answer,
anything else ingestion would quarantine — with the first few places. A short
split ("2,999 of 3,000"), a shrunken one ("ImageNet: 10 % of its images
missing") or a file that is not there shows up here, by dataset name, before a
GPU hour is spent. Every record goes through ingestion's own validation
(:func:`lifelong.data.ingest.check_records`, a dry run: images are opened and
decoded, nothing is stored), so what the check passes, a run ingests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lifelong.data.ingest import check_records, iter_dataset_files, record_place
from lifelong.data.readers import FormatError
from lifelong.data.records import IngestConfig

# Kinds of bad record, recognised from ingestion's quarantine reasons (lifelong/data/records.py).
KINDS = ("missing image", "unreadable image", "no answer", "other")
EXAMPLES = 3  # places shown per split


def kind_of(reason: str) -> str:
    """Which of :data:`KINDS` a quarantine reason is."""
    if reason.startswith("image ") and reason.endswith("does not exist"):
        return "missing image"
    if reason.startswith("image ") and ("unreadable or truncated" in reason or "cannot be read" in reason):
        return "unreadable image"
    if reason.startswith(("no answer", "empty assistant turn", "one-sided conversation")):
        return "no answer"
    return "other"


@dataclass
class SplitCheck:
    """One split of one dataset: ``records`` read, ``usable`` of them valid, the rest by kind."""

    dataset: str
    split: str
    records: int = 0
    usable: int = 0
    expected: int | None = None
    bad: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: list[str] = field(default_factory=list)
    error: str | None = None  # the split could not be read at all

    def problems(self) -> list[str]:
        """What is wrong, in words; empty when the split is as expected and every record is usable."""
        if self.error:
            return [self.error]
        out = []
        if self.expected is not None and self.records != self.expected:
            share = f" ({100 * self.records / self.expected:.1f} %)" if self.expected else ""
            out.append(f"{self.records:,} records of {self.expected:,} expected{share}")
        out += [f"{n:,} record{'s' * (n != 1)} with {kind_plural(kind, n)}" if kind != "other"
                else f"{n:,} other bad record{'s' * (n != 1)}" for kind, n in self.bad.items() if n]
        if self.records == 0 and self.expected is None:
            out.append("no records")
        return out


def kind_plural(kind: str, n: int) -> str:
    if kind == "no answer":
        return kind
    return kind if n == 1 else kind + "s"


def check_split(dataset: str, split: str, path: str, images: str = "", fmt: str | None = None,
                expected: int | None = None, cfg: IngestConfig | None = None) -> SplitCheck:
    """Read and validate every record of ``split`` at ``path`` (a file, or a folder holding
    ``<split>.json|.jsonl|.parquet`` or a saved dataset); image paths resolve against ``images``
    (default: the file's folder), as ingestion resolves them."""
    out = SplitCheck(dataset, split, expected=expected)
    if not Path(path).exists():
        out.error = f"{path} does not exist"
        return out
    if images and not Path(images).is_dir():
        out.error = f"image folder {images} does not exist"
        return out
    files = list(iter_dataset_files(Path(path), split=split))
    if not files:
        out.error = f"{path} holds no {split} split"
        return out
    for f in files:
        try:
            rep = check_records(f, dataset=dataset, split=split, fmt=fmt, image_root=images or None, cfg=cfg)
        except (FormatError, OSError, ValueError) as e:
            out.error = f"{f}: {e}"
            return out
        out.records += rep.total
        out.usable += rep.added
        for q in rep.quarantined:
            out.bad[kind_of(q["reason"])] += 1
            if len(out.examples) < EXAMPLES:
                out.examples.append(f"{f.name} {record_place(q)}: {q['reason']}")
    return out


def check_dataset(name: str, train: str, test: str = "", images: str = "", fmt: str | None = None,
                  expected: dict[str, int] | None = None, cfg: IngestConfig | None = None,
                  test_split: str = "test") -> list[SplitCheck]:
    """:func:`check_split` of ``train`` and (when given) ``test``, each against its expected count;
    ``test_split`` names the held-out split inside a folder (the run's ``eval.split``)."""
    return [check_split(*job) if isinstance(job, tuple) else job
            for job in split_jobs(name, train, test, images, fmt, expected, cfg, test_split)]


def split_jobs(name, train, test="", images="", fmt=None, expected=None, cfg=None, test_split="test") -> list:
    """The :func:`check_split` argument tuples of one dataset (a finished :class:`SplitCheck` for a
    test split that is expected but not given)."""
    expected = expected or {}
    jobs: list = [(name, "train", train, images, fmt, expected.get("train"), cfg)]
    if test:
        jobs.append((name, test_split, test, images, fmt, expected.get("test"), cfg))
    elif "test" in expected:
        jobs.append(SplitCheck(name, "test", expected=expected["test"], error="no test split given"))
    return jobs


def check_all(jobs: list, workers: int = 1) -> list[SplitCheck]:
    """Run :func:`split_jobs`' jobs of many datasets, in order; ``workers`` > 1 checks that many splits
    at once, each in its own process (decoding every image is the cost: minutes on a large dataset)."""
    todo = [j for j in jobs if isinstance(j, tuple)]
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as ex:
            done = iter(list(ex.map(_check_job, todo)))
    else:
        done = iter(_check_job(j) for j in todo)
    return [next(done) if isinstance(j, tuple) else j for j in jobs]


def _check_job(job: tuple) -> SplitCheck:
    return check_split(*job)


def report(checks: list[SplitCheck]) -> tuple[str, bool]:
    """(the report's text, whether every split is fine). One row per split, then each problem's
    first places; the last line names the datasets with problems."""
    width = max([len(c.dataset) for c in checks] + [len("dataset")])
    lines = [f"{'dataset':<{width}}  {'split':<5}  {'records':>9}  {'expected':>9}  {'usable':>9}  status"]
    bad = []
    for c in checks:
        problems = c.problems()
        exp = f"{c.expected:,}" if c.expected is not None else "-"
        lines.append(f"{c.dataset:<{width}}  {c.split:<5}  {c.records:>9,}  {exp:>9}  {c.usable:>9,}  "
                     + ("; ".join(problems) if problems else "ok"))
        lines += [f"{'':<{width}}    {e}" for e in c.examples]
        if problems and c.dataset not in bad:
            bad.append(c.dataset)
    n = len({c.dataset for c in checks})
    lines.append(f"problems in {len(bad)} of {n} datasets: {', '.join(bad)}" if bad else f"all {n} datasets ok")
    return "\n".join(lines), not bad
