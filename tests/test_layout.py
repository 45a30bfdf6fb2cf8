"""The package's layout: no import cycle among lifelong's modules, lazy (in-function) imports included;
no module over 400 lines."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "lifelong"


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> lifelong modules it imports (anywhere in the file), plus the packages they run on import."""
    mods = {}
    for p in root.rglob("*.py"):
        rel = p.relative_to(root.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [resolve(f"{node.module}.{a.name}") for a in node.names]
            else:
                continue
            for t in targets:
                while t and t != m and not m.startswith(t + "."):  # importing a.b.c runs a.b's __init__ too
                    graph[m].add(t)
                    parent = t.rpartition(".")[0]
                    t = parent if parent in mods else None
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_lifelong():
    graph = import_graph(ROOT)
    assert "lifelong.loop" in graph and "lifelong.run_config" in graph["lifelong.loop"]
    assert cycles(graph) == []


MAX_LINES = 400


def test_no_module_in_lifelong_is_over_400_lines():
    """A module that grows past this has grown a second job: split it by job."""
    long = {str(p.relative_to(ROOT.parent)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
