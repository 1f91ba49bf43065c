"""docs/architecture.md's layering, checked: imports inside the package only point
down the layer table, and each shared concern has one home."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "softmaxkit"

# Layer of each module (by its dotted path under softmaxkit, first match wins);
# a module may import its own layer and the layers below it, never above.
LAYERS = [
    ("app", 5),
    ("torch", 4), ("linear_model", 4),
    ("_calibration", 4),
    ("_softmax", 3), ("_sampling", 3), ("_entmax", 3), ("_activation_grads", 3),
    ("_losses", 3), ("_linear_ce", 3),
    ("_validation", 2), ("_reduction", 2), ("_typing", 2), ("_io", 2),
    ("_progress", 2), ("datasets", 2),
    ("_kernels", 1), ("_config", 1),
]


def layer_of(dotted: str) -> int | None:
    first = dotted.split(".")[0]
    for name, layer in LAYERS:
        if first == name:
            return layer
    return None


def _imports(path: Path, dotted: str) -> list[tuple[str, int]]:
    """softmaxkit modules imported by one file (absolute or relative), with lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = dotted.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = [mod] if node.module else [".".join(base + [a.name]) for a in node.names]
            elif node.module and node.module.startswith("softmaxkit."):
                targets = [node.module[len("softmaxkit."):]]
            else:
                continue
            found += [(t, node.lineno) for t in targets if t]
        elif isinstance(node, ast.Import):
            found += [(a.name[len("softmaxkit."):], node.lineno) for a in node.names
                      if a.name.startswith("softmaxkit.")]
    return found


def test_imports_only_point_down():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        dotted = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if dotted in ("", "__main__"):  # the facade re-exports every layer
            continue
        mine = layer_of(dotted)
        assert mine is not None, f"{dotted} is in no layer of docs/architecture.md"
        for target, line in _imports(path, dotted):
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{dotted}:{line} imports {target} (layer {theirs} > {mine})")
    assert not bad, "\n".join(bad)


def test_one_home_for_checks_and_reductions():
    """No module but _validation defines a checker, and none but _reduction a
    reduction: the names of the shared helpers are defined once."""
    shared = {"check_reduction", "check_smoothing", "check_ignore_index", "check_weights",
              "check_prob_rows", "hard_target", "check_temperature", "check_bool", "check_z_loss", "check_softcap",
              "reduce", "upstream", "mean_scale", "atomic_path", "read_npz"}
    def delegates(fn: ast.FunctionDef) -> bool:
        """A one-line adapter over the shared home (``return _reduction.reduce(...)``)."""
        body = [n for n in fn.body if not (isinstance(n, ast.Expr)
                                           and isinstance(n.value, ast.Constant))]
        return (len(body) == 1 and isinstance(body[0], ast.Return)
                and isinstance(body[0].value, ast.Call)
                and isinstance(body[0].value.func, ast.Attribute)
                and isinstance(body[0].value.func.value, ast.Name)
                and body[0].value.func.value.id in ("_reduction", "_validation", "_io"))

    homes: dict[str, list[str]] = {}
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in shared \
                    and not delegates(node):
                homes.setdefault(node.name.lstrip("_"), []).append(str(path.relative_to(PKG)))
    dup = {k: v for k, v in homes.items() if len(v) > 1}
    assert not dup, dup
