"""The README's results summary, generated from the committed comparison files.

    python -m eval.summary                 # print the summary
    python -m eval.summary --write-readme  # replace the block between the README's results markers

One short table per stream from ``eval/results/<stream>/compare.json`` (what
``python -m eval.compare --stream <stream>`` assembled), then one per folder of
the same comparison on another kernel (``eval/results/<stream>-<tag>/``), with
links to the full tables. A test holds the README's block equal to this output, so the README
cannot drift from the result files.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from eval.compare_table import gate_outcome
from eval.experiments import ROOT, STREAMS

BEGIN, END = "<!-- results:begin (python -m eval.summary --write-readme) -->", "<!-- results:end -->"


def _num(x, fmt="{:.3f}") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def stream_summary(stream: str, results: Path) -> list[str]:
    """Markdown lines for one stream's compare.json; a line saying so when there is none."""
    path = results / stream / "compare.json"
    rel = path.parent.relative_to(ROOT) if path.is_relative_to(ROOT) else path.parent
    if not path.exists():
        return [f"**{stream}**: no results yet (`python -m eval.compare --stream {stream}`).", ""]
    d = json.loads(path.read_text())
    lines = [f"**{stream}** ([`{rel}/compare.md`]({rel}/compare.md); {d.get('hardware') or 'hardware not recorded'}):",
             "", "| strategy | seeds | final avg acc [95% CI] | forgetting | defects trained |", "|---|---|---|---|---|"]
    for name, r in d.get("runs", {}).items():
        lo, hi = r.get("avg_acc_ci95") or (None, None)
        lines.append(f"| {name} | {', '.join(map(str, r['seeds']))} | {_num(r.get('avg_acc'))} "
                     f"[{_num(lo)}, {_num(hi)}] | {_num(r.get('forgetting'))} | {_num(r.get('defects_trained'))} |")
    verdicts = {**d.get("targets", {}), **{k: (f"{gate_outcome(v)}; {v['verdict']})" if isinstance(v, dict) else v)
                                           for k, v in d.get("gate", {}).items()}}
    if verdicts:
        lines += ["", *(f"- {k.replace('_', ' ')}: {v}" for k, v in verdicts.items())]
    if not d.get("runs"):
        lines.append("| (none finished yet) | | | | |")
    if d.get("missing"):
        lines += ["", f"Not run yet: {len(d['missing'])} (strategy, seed) pairs."]
    if d.get("stale"):
        lines += ["", f"Stale (another config, stream, kernel or method change), left out: {len(d['stale'])}."]
    return lines + [""]


def summary(results: Path = ROOT / "eval" / "results") -> str:
    """Each stream's table, then the same comparison run into a folder of another kernel's
    (``<stream>-<tag>/compare.json``, e.g. ``messy-float32``), if any."""
    out = []
    for stream in STREAMS:
        out += stream_summary(stream, results)
    for stream in STREAMS:
        for path in sorted(results.glob(f"{stream}-*/compare.json")):
            out += stream_summary(path.parent.name, results)
    return "\n".join(out).rstrip() + "\n"


def readme_block(readme: str) -> str:
    """The text between the results markers of ``readme`` (without the markers)."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    text = summary()
    if not args.write_readme:
        print(text, end="")
        return 0
    readme = ROOT / "README.md"
    old = readme.read_text()
    start, end = old.index(BEGIN) + len(BEGIN), old.index(END)
    readme.write_text(old[:start] + "\n" + text + old[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
