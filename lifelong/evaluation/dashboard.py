"""One self-contained HTML dashboard for one or more runs.

``write_dashboard([run_a, run_b], out)`` reads each run's
``metrics/history.json`` (:mod:`lifelong.evaluation.history`) and writes a
single HTML file with every chart as inline SVG drawn here: no JavaScript, no
network, no external fonts or stylesheets, so it opens anywhere, offline.

Charts (each an ``<svg class="chart" id=...>``; ``k`` = run index):

* ``avg-acc``, ``forgetting``: average accuracy / forgetting per round, runs overlaid;
* ``pool-size``: active pool (solid) and selected set (dashed) per round, runs overlaid;
* ``train-loss``: training loss against global step, runs overlaid;
* ``heatmap-k``: the accuracy matrix with numbers, columns (tasks) grouped
  under the dataset or suite they came from, the rounds that taught each
  outlined, and a table of the tasks' sources;
* ``task-curves-k``: accuracy of every task per round;
* ``clusters-k``: samples per routed expert per round (stacked bars over the
  pseudo-skill clusters), with the cluster table underneath.

Every string from data (run, task, dataset, expert names) is HTML-escaped.
The charts themselves are drawn by :mod:`lifelong.evaluation.charts`.
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Optional, Sequence


from lifelong.evaluation import metrics as M
from lifelong.evaluation.charts import (DASHES, PALETTE, DashboardConfig, Series, column_groups, esc, fmt_number,
                                        heatmap, line_chart, stacked_bar_chart)
from lifelong.evaluation.history import RunHistory, load_history


def _loss_points(h: RunHistory) -> list[tuple[float, float]]:
    """Training loss against a global step: rounds whose steps restart are shifted after the previous ones."""
    pts, offset, last = [], 0.0, -math.inf
    for r in h.rounds:
        if not r.train_loss:
            continue
        first = r.train_loss[0][0]
        if first + offset <= last:
            offset = last - first + 1
        for step, loss in r.train_loss:
            pts.append((step + offset, loss))
        last = pts[-1][0]
        pts.append((math.nan, math.nan))  # break the line between rounds
    return pts[:-1]


def _run_label(h: RunHistory) -> str:
    return f"{h.run} ({h.strategy})"


def _reference(histories: list[RunHistory], cfg: DashboardConfig) -> Optional[RunHistory]:
    for h in histories:
        if h.strategy == cfg.reference_strategy and len(h.accuracy) > 1:
            return h
    return None


def _summary_table(histories: list[RunHistory], cfg: DashboardConfig) -> str:
    ref = _reference(histories, cfg)
    names = list(M.METRICS)
    head = "".join(f'<th title="{esc(M.METRICS[n].description)}">{esc(n)}</th>' for n in names)
    rows = []
    for k, h in enumerate(histories):
        ref_row = None
        if ref is not None and ref.tasks == h.tasks:
            ref_row = ref.accuracy_matrix()[-1]
        vals = M.compute_all(h.accuracy_matrix(), ref_row, h.learned()) if h.accuracy else {n: math.nan for n in names}
        done = max(len(h.accuracy) - 1, 0)
        cells = "".join(f"<td>{esc(fmt_number(vals[n], 3))}</td>" for n in names)
        swatch = f'<span class="swatch" style="background:{PALETTE[k % len(PALETTE)]}"></span>'
        rows.append(
            f"<tr><td>{swatch}<a href=\"#run-{k}\">{esc(h.run)}</a></td><td>{esc(h.strategy)}</td>"
            f"<td>{done} / {len(h.tasks)}</td>{cells}</tr>"
        )
    note = (
        f"relative_gain is against run {esc(ref.run)} (strategy {esc(cfg.reference_strategy)})."
        if ref is not None
        else f"relative_gain needs a run with strategy {esc(cfg.reference_strategy)} over the same tasks."
    )
    return (
        '<table class="summary" id="summary"><thead><tr><th>run</th><th>strategy</th><th>rounds done / tasks</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table><p class=\"note\">{note} "
        "avg_acc = mean over tasks seen so far after the last round; forgetting = mean drop from a task's best "
        "accuracy; bwt / fwt as in GEM (Lopez-Paz &amp; Ranzato, 2017).</p>"
    )


def _cluster_table(h: RunHistory) -> str:
    rows = []
    for r in h.rounds:
        for c in r.clusters:
            rows.append(
                f"<tr><td>{r.round}</td><td>{esc(r.dataset)}</td><td>{c.id}</td><td>{c.size}</td>"
                f"<td>{'' if c.selected is None else c.selected}</td><td>{esc(c.expert)}</td><td>{esc(fmt_number(c.entropy, 3))}</td></tr>"
            )
    if not rows:
        return "<p class=\"note\">no clusters recorded yet</p>"
    return (
        '<details><summary>pseudo-skill clusters (table)</summary><table class="clusters"><thead><tr><th>round</th>'
        "<th>dataset</th><th>cluster</th><th>size</th><th>selected</th><th>routed expert</th><th>entropy (bits)</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _task_table(h: RunHistory) -> str:
    """Where each column came from: task, dataset or suite, the rounds that taught it, every source, metric."""
    groups = column_groups(h)
    metric = {c.task: c.metric for c in h.columns}
    sources = {c.task: c.sources for c in h.columns}
    rows = "".join(
        f"<tr><td>{esc(task)}</td><td>{esc(kind)} {esc(source)}</td>"
        f"<td>{esc(', '.join(map(str, rounds)) or 'none (evaluated only)')}</td>"
        f"<td>{esc(', '.join(sources.get(task, [source])))}</td><td>{esc(metric.get(task, ''))}</td></tr>"
        for task, (source, kind, rounds) in zip(h.tasks, groups)
    )
    if not rows:
        return ""
    return (
        '<details open><summary>tasks (columns) and where they came from</summary><table class="tasks"><thead><tr>'
        "<th>task</th><th>from</th><th>taught in rounds</th><th>held-out questions from</th><th>metric</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></details>"
    )


def _stage_table(h: RunHistory) -> str:
    stages = sorted({s for r in h.rounds for s in r.stage_seconds})
    if not stages:
        return ""
    head = "".join(f"<th>{esc(s)}</th>" for s in stages)
    rows = "".join(
        f"<tr><td>{r.round}</td><td>{esc(r.dataset)}</td><td>{r.pool_size}</td><td>{r.selected}</td><td>{r.pruned}</td>"
        + "".join(f"<td>{esc(fmt_number(r.stage_seconds.get(s, math.nan), 3))}</td>" for s in stages)
        + "</tr>"
        for r in h.rounds
    )
    return (
        '<details><summary>rounds and stage times (seconds)</summary><table class="stages"><thead><tr><th>round</th>'
        f"<th>dataset</th><th>pool</th><th>selected</th><th>pruned</th>{head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;background:#f5f6f8;color:#1d1d1f}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{padding:12px 24px 40px}section{margin:18px 0}h2{font-size:18px;margin:6px 0 10px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.grid{display:flex;flex-wrap:wrap;gap:14px}.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px;overflow-x:auto}
svg.chart{display:block;font-size:12px}svg .title{font-size:14px;font-weight:600;fill:#1d1d1f}svg .tick{fill:#444;font-size:11px}
svg .label{fill:#333;font-size:12px}svg .grid{stroke:#e3e6ea}svg .axis{stroke:#888}svg .frame{fill:none;stroke:#aab}
svg .legend-label{fill:#222;font-size:12px}svg .empty{fill:#999;font-size:14px}svg .cell-text{font-size:11px}
svg .series:hover path{stroke-width:3.5}table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #dde1e7;padding:3px 8px;text-align:right}th{background:#eef1f5}td:first-child,th:first-child{text-align:left}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}.note{font-size:12px;color:#555}
details{margin-top:8px}summary{cursor:pointer;font-size:13px;color:#1f3a5f}
"""


def card(inner: str) -> str:
    """A white panel around one chart (and its tables)."""
    return f'<div class="card">{inner}</div>'


def render_dashboard(histories: list[RunHistory], cfg: Optional[DashboardConfig] = None) -> str:
    """The dashboard HTML for ``histories`` (pure: no file access)."""
    cfg = cfg or DashboardConfig()
    ref = _reference(histories, cfg)
    run_color = {k: PALETTE[k % len(PALETTE)] for k in range(len(histories))}
    run_dash = {k: DASHES[(k // len(PALETTE)) % len(DASHES)] for k in range(len(histories))}

    avg, forg, pool, loss = [], [], [], []
    for k, h in enumerate(histories):
        m = h.accuracy_matrix()
        label = _run_label(h)
        if m.shape[0]:
            ts = range(1, m.shape[0])
            a_series = M.per_round("avg_acc", m, learned=h.learned())
            f_series = M.per_round("forgetting", m, learned=h.learned())
            avg.append(Series(label, [(t, a_series[t]) for t in ts], run_color[k], run_dash[k], h.run))
            forg.append(Series(label, [(t, f_series[t]) for t in ts], run_color[k], run_dash[k], h.run))
        pool.append(Series(f"{label}: pool", [(r.round, r.pool_size) for r in h.rounds], run_color[k], "", h.run))
        pool.append(Series(f"{label}: selected", [(r.round, r.selected) for r in h.rounds], run_color[k], "6 3", h.run))
        loss.append(Series(label, _loss_points(h), run_color[k], run_dash[k], h.run))

    experts = sorted({c.expert for h in histories for r in h.rounds for c in r.clusters})
    expert_color = {e: PALETTE[(i + 2) % len(PALETTE)] for i, e in enumerate(experts)}

    overview = [
        card(line_chart("avg-acc", "Average accuracy over tasks seen so far", avg, cfg, x_label="round", y_label="accuracy", y_range=(0, 1))),
        card(line_chart("forgetting", "Forgetting (mean drop from best accuracy)", forg, cfg, x_label="round", y_label="forgetting")),
        card(line_chart("pool-size", "Pool size (solid) and selected set (dashed)", pool, cfg, x_label="round", y_label="samples")),
        card(line_chart("train-loss", "Training loss", loss, cfg, x_label="global step", y_label="loss", x_integer=False, markers=False)),
    ]
    runs_html = []
    for k, h in enumerate(histories):
        m = h.accuracy_matrix()
        tcurves = [
            Series(task, [(t, m[t, i]) for t in range(m.shape[0])], PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)], h.run)
            for i, task in enumerate(h.tasks)
        ]
        xs = [r.round for r in h.rounds]
        stacks = {e: [float(sum(c.size for c in r.clusters if c.expert == e)) for r in h.rounds] for e in experts}
        stacks = {e: v for e, v in stacks.items() if any(v)}
        runs_html.append(
            f'<section class="run" id="run-{k}" data-run="{esc(h.run)}"><h2><span class="swatch" style="background:{run_color[k]}"></span>'
            f"Run {esc(h.run)} <small>({esc(h.strategy)})</small></h2><div class=\"grid\">"
            + card(heatmap(f"heatmap-{k}", "Accuracy matrix (row = after round, columns grouped by dataset or suite, "
                           "outlined = taught in that round)", h, cfg) + _task_table(h))
            + card(line_chart(f"task-curves-{k}", "Per-task accuracy (round 0 = before training)", tcurves, cfg,
                              x_label="round", y_label="accuracy", y_range=(0, 1)))
            + card(stacked_bar_chart(f"clusters-{k}", "Pseudo-skill clusters: samples per routed expert", xs, stacks,
                                     expert_color, cfg, x_label="round", y_label="samples in clusters")
                   + _cluster_table(h) + _stage_table(h))
            + "</div></section>"
        )
    stamp = f" \u00b7 written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}" if cfg.written else ""
    run_list = ", ".join(esc(_run_label(h)) for h in histories) or "no runs"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(cfg.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(cfg.title)}</h1><p>{len(histories)} run(s): {run_list}{stamp}"
        + (f" \u00b7 reference for relative gain: {esc(ref.run)}" if ref else "")
        + "</p></header><main>"
        f"<section id=\"overview\"><h2>Summary</h2>{_summary_table(histories, cfg)}</section>"
        f"<section id=\"compare\"><h2>Runs compared</h2><div class=\"grid\">{''.join(overview)}</div></section>"
        + "".join(runs_html)
        + "</main></body></html>\n"
    )


def write_dashboard(run_dirs: Sequence[str | Path], out: str | Path, config: Optional[DashboardConfig] = None) -> Path:
    """Read each run's history and write the dashboard HTML to ``out`` (atomically); returns ``out``."""
    return write_histories([load_history(d) for d in run_dirs], out, config)


def write_histories(histories: Sequence[RunHistory], out: str | Path, config: Optional[DashboardConfig] = None
                    ) -> Path:
    """Write the dashboard of these histories to ``out`` (atomically); returns ``out``."""
    histories = list(histories)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_dashboard(histories, config), encoding="utf-8")
    tmp.replace(out)
    return out
