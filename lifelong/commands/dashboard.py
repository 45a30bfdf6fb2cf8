"""``lifelong dashboard RUN [RUN ...] --out FILE.html``: one self-contained HTML dashboard of one or more runs."""
from __future__ import annotations

from pathlib import Path

from lifelong.evaluation.charts import DashboardConfig


def setup(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories (each with metrics/history.json)")
    p.add_argument("--out", type=Path, default=None, help="output HTML file (default: <first run>/dashboard.html)")
    p.add_argument("--title", default=DashboardConfig.title)
    p.add_argument("--reference-strategy", default=DashboardConfig.reference_strategy,
                   help="strategy of the run used as reference for relative gain")


def run(args) -> int:
    from lifelong.evaluation.dashboard import write_dashboard
    from lifelong.layout import RunLayout

    out = args.out or RunLayout(args.runs[0]).dashboard
    cfg = DashboardConfig(title=args.title, reference_strategy=args.reference_strategy)
    print(write_dashboard(args.runs, out, cfg))
    return 0
