"""The comparison's table of experiments: streams, strategies and the goals they are held to.

Data, not code: ``eval/compare.py`` runs what this names, ``eval/compare_table.py``
assembles the table, ``eval/bench_learn.py`` reads the demo's goals.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# stream -> its base config; results go to eval/results/<stream>/, runs to runs/compare/<stream>/.
STREAMS: dict[str, Path] = {"clean": ROOT / "configs" / "demo.yaml", "messy": ROOT / "configs" / "messy.yaml"}
# The override that makes a stream's runs answer its validation questions instead of its test ones.
VALIDATION: dict[str, str] = {"clean": "stream.builtin_config.held_out=val",
                              "messy": "stream.builtin_config.messy.held_out=val"}

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
# Where selection has little to find, Adapt-inf with its pool cap should end level with uniform random
# without a cap: their difference's 95% interval above -LEVEL.
LEVEL = 0.02
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
# Config keys added after results were committed, with the value every earlier run had. At that
# value a key is left out of a result's config digest (compare.config_sha), so the results of runs
# that did not have the key stay fresh; any other value counts.
ADDED_KEYS: dict[str, object] = {
    "select.sampling": "ccs",
    "select.route.mode": "entropy",
    "select.route.expert": None,
    "select.ccs.tail": "fixed",
    "select.ccs.hard_slope": 0.3,
    "select.cluster.source": "sketch",
    "select.cluster.features": "sketch",
    "select.cluster.merge_from": None,
    "prune.features": "hidden",
    "prune.thin": "cluster",
    "select.size_power": 0.0,
    "stream.builtin_config.held_out": "test",
    "select.replay_floor": 0.0,
}

# The ablations of Adapt-inf on the messy stream (`python -m eval.ablations`): name -> overrides.
# Every row is ABLATION_BASE (the base config as adapt_inf_prune runs it: its pool cap, its budget
# with the same select.budget.of, new_floor, K) with one thing changed, so every row trains on the
# same budget under the same cap. ABLATION_BASE is the reference row; its result files are the
# comparison's own (same overrides, same digest). A METHOD_CHANGES entry that names ABLATION_BASE
# affects every row.
ABLATION_BASE = "adapt_inf_prune"
ROUTED = ("ppl", "el2n", "entropy", "grand", "ig")  # the experts scored by default that can be routed
ABLATIONS: dict[str, list[str]] = {
    "route_random": ["select.route.mode=random"],
    **{f"route_{e}": ["select.route.mode=fixed", f"select.route.expert={e}"] for e in ROUTED},
    "sample_uniform": ["select.sampling=uniform"],
    "sample_hardest": ["select.sampling=hardest"],
    "sample_easiest": ["select.sampling=easiest"],
    "ccs_fixed": ["select.ccs.tail=fixed"],
    "prune_quota": ["prune.mode=quota"],
    "prune_uniform": ["prune.mode=uniform"],
    # the rule before content features: SemDeDup on the mean hidden state at cos > 0.95, past the
    # duplicates the most similar first within pruning's partition (one global threshold)
    "prune_hidden": ["prune.features=hidden", "prune.thin=cluster", "prune.epsilon=0.05"],
    "clusters_dataset": ["select.cluster.source=dataset"],
    "clusters_random": ["select.cluster.source=random"],
    "clusters_sketch": ["select.cluster.features=sketch"],  # merged 32 -> 12 as the base
    "clusters_no_merge": ["select.cluster.merge_from=null"],  # k-means straight into 12
    "k4": ["select.cluster.k=4"],
    "k8": ["select.cluster.k=8"],
    "k16": ["select.cluster.k=16"],
    "k_auto": ["select.cluster.k=null"],
    "new_floor_0": ["select.new_floor=0"],
    # every earlier dataset at least half / all of its proportional share of each round's budget (a guard
    # against a round that starves an old skill; with new_floor 1, `full` splits the budget over datasets
    # as a uniform draw would)
    "replay_floor_half": ["select.replay_floor=0.5"],
    "replay_floor_full": ["select.replay_floor=1"],
    # the budget over clusters in equal shares (the paper's) / in proportion to the square roots of
    # their sizes / to their sizes
    "share_equal": ["select.size_power=0"],
    "share_sqrt": ["select.size_power=0.5"],
    "share_size": ["select.size_power=1"],
    # the paper's settings: k-means on the sketches into 8, CCS dropping 5 % at each tail, equal shares
    # over clusters (the base config's before validation chose the departures)
    "paper": ["select.cluster.features=sketch", "select.cluster.merge_from=null", "select.cluster.k=8",
              "select.ccs.tail=fixed", "select.size_power=0"],
}
ABLATIONS = {n: [*STRATEGIES[ABLATION_BASE], *o] for n, o in ABLATIONS.items()}
# The table's sections: component -> (what the reference row does there, the rows that change it).
ABLATION_GROUPS: dict[str, tuple[str, list[str]]] = {
    "routing": ("the max-entropy expert per cluster", ["route_random", *(f"route_{e}" for e in ROUTED)]),
    "sampling within clusters": ("CCS, its hard cutoff following the pruning rate",
                                 ["sample_uniform", "sample_hardest", "sample_easiest", "ccs_fixed"]),
    "pruning to the cap": ("near-copies by content (cos > 0.98) first, the rest from every dataset by its size",
                           ["prune_hidden", "prune_quota", "prune_uniform"]),
    "clusters": ("k-means into 32 on centred hidden-state embeddings, merged into K",
                 ["clusters_dataset", "clusters_random", "clusters_sketch", "clusters_no_merge"]),
    "K": ("the base config's (12 in configs/messy.yaml and configs/demo.yaml)", ["k4", "k8", "k16", "k_auto"]),
    "new_floor": ("the base config's (1 in configs/messy.yaml and configs/demo.yaml)", ["new_floor_0"]),
    "replay floor": ("none (the base configs')", ["replay_floor_half", "replay_floor_full"]),
    "budget over clusters": ("the base config's: equal shares, water-filled (the paper's) in configs/messy.yaml, "
                             "in proportion to the square roots of the cluster sizes in configs/demo.yaml",
                             ["share_equal", "share_sqrt", "share_size"]),
    "the paper's settings (more than one change)": ("the base config", ["paper"]),
}
