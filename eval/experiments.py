"""The comparison's table of experiments: streams, strategies and the goals they are held to.

Data, not code: ``eval/compare.py`` runs what this names, ``eval/compare_table.py``
assembles the table, ``eval/bench_learn.py`` reads the demo's goals.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# stream -> its base config; results go to eval/results/<stream>/, runs to runs/compare/<stream>/.
STREAMS: dict[str, Path] = {"clean": ROOT / "configs" / "demo.yaml", "messy": ROOT / "configs" / "messy.yaml"}

# name -> overrides of the base config. Budgets are the base config's (25% of
# the pool per round unless the config says otherwise); only one run prunes.
STRATEGIES: dict[str, list[str]] = {
    "sequential": ["select.strategy=sequential", "prune.cap=null"],
    "full": ["select.strategy=full", "prune.cap=null"],
    "random": ["select.strategy=random", "prune.cap=null"],
    "ppl": ["select.strategy=ppl", "prune.cap=null"],
    "el2n": ["select.strategy=el2n", "prune.cap=null"],
    "adapt_inf": ["select.strategy=adapt_inf", "prune.cap=null"],
    "adapt_inf_prune": ["select.strategy=adapt_inf"],  # the base config's cap
    # Yardsticks: the selector that reads the defect flags, and uniform selection + uniform eviction to the cap.
    "oracle": ["select.strategy=oracle", "prune.cap=null"],
    "random_prune": ["select.strategy=random_prune"],  # the base config's cap
    "multitask": ["select.strategy=multitask", "prune.cap=null"],
    # Not the paper's algorithm: re-score only new samples (and, second, without the grounding expert).
    "adapt_inf_reuse": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0"],
    "adapt_inf_reuse_noig": ["select.strategy=adapt_inf", "prune.cap=null", "score.refresh=0",
                             "score.experts=[ppl,el2n,entropy,grand,random]"],
}
DEFAULT_STRATEGIES = "sequential,random,random_prune,oracle,adapt_inf,adapt_inf_prune,multitask,full,ppl,el2n"
# The gate of a stream that measures selection: a perfect selector (oracle) beats a uniform one (random)
# by at least this much final average accuracy, with its 95% interval above 0.
GATE = 0.08
# The base config as it is (Adapt-inf with its pool cap): what `make demo` runs.
DEMO = "adapt_inf_prune"
# The demo's learning goals: every task >= 0.3 right after its own round, their
# mean >= 0.6, and the same stream under sequential forgets >= 0.2.
DEMO_GOALS = {"min_diagonal": 0.3, "learning_acc": 0.6, "sequential_forgetting": 0.2}
ONE_SEED = "ppl,el2n,adapt_inf_reuse,adapt_inf_reuse_noig"  # run on the first seed only by default
# Code changes that alter what a strategy selects, oldest first. The digest
# covers the config and the stream's data, not the code, so each change enters
# the digest of the strategies it affects: their earlier results turn stale
# (listed under the table, not counted) and are run again.
METHOD_CHANGES: dict[str, tuple[str, ...]] = {
    # routing and CCS see log perplexity, as the reference does (lifelong/selection/experts.py)
    "ppl-log-scale": ("ppl", "adapt_inf", "adapt_inf_prune", "adapt_inf_reuse", "adapt_inf_reuse_noig"),
}
