"""Ingestion throughput and memory: N generated LLaVA records with small images.

    python -m eval.bench_ingest [--records 100000] [--distinct-images 5000]

Prints records/s and peak RSS, at two sizes to show memory stays flat in the
number of records, and saves eval/results/bench_ingest.json.
Target (issue 2): >= 2,000 records/s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_dataset(root: Path, n: int, distinct_images: int) -> None:
    """A LLaVA JSON file of ``n`` records over ``distinct_images`` 32x32 PNGs."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for i in range(distinct_images):
        Image.new("RGB", (32, 32), (i % 251, (i // 251) % 251, 17)).save(root / "images" / f"{i}.png")
    with open(root / "train.json", "w") as f:
        f.write("[\n")
        for i in range(n):
            rec = {"id": f"r{i}", "image": f"images/{i % distinct_images}.png",
                   "conversations": [{"from": "human", "value": f"<image>\nWhat is shown in picture {i}?"},
                                     {"from": "gpt", "value": f"A coloured square, number {i}."}]}
            f.write(("  " if i == 0 else ", ") + json.dumps(rec) + "\n")
        f.write("]\n")


def run_one(data: Path, pool: Path) -> dict:
    """Ingest in a fresh process so peak RSS belongs to this ingest alone."""
    code = (
        "import json,resource,sys,time\n"
        "from lifelong.data.pool import Pool\n"
        "from lifelong.data.ingest import ingest, IngestConfig\n"
        "t=time.perf_counter()\n"
        f"rep=ingest(Pool({str(pool)!r}), {str(data / 'train.json')!r}, cfg=IngestConfig(progress=False))\n"
        "dt=time.perf_counter()-t\n"
        "print(json.dumps({'records': rep.total, 'added': rep.added, 'seconds': dt,"
        " 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res["records_per_s"] = res["records"] / res["seconds"]
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--distinct-images", type=int, default=5_000)
    args = ap.parse_args(argv)
    results = {"target_records_per_s": 2000, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in (args.records // 10, args.records):
            data = tmp / f"d{n}"
            write_dataset(data, n, min(args.distinct_images, n))
            r = run_one(data, tmp / f"pool{n}")
            assert r["added"] == n, r
            results["runs"].append(r)
            print(f"{n:>8} records: {r['records_per_s']:8.0f} records/s, {r['seconds']:6.1f} s, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB")
    small, big = results["runs"]
    results["rss_growth_ratio"] = big["peak_rss_mib"] / small["peak_rss_mib"]
    print(f"peak memory x{results['rss_growth_ratio']:.2f} for x10 records")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_ingest.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
