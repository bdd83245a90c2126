"""The description ranking knows nothing of data: zoo.recommender imports neither zoo.data_rank nor the module
that composes the two (zoo.ranking); the data half consumes the description ranking's output."""

from __future__ import annotations

import ast
from pathlib import Path

import zoo

ROOT = Path(zoo.__file__).parent


def imported(module: str) -> set[str]:
    """Every module named by an import statement anywhere in ``module``'s source (function-level ones too)."""
    tree = ast.parse((ROOT / (module.replace("zoo.", "").replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_recommender_does_not_import_the_data_half():
    names = imported("zoo.recommender")
    assert not {n for n in names if n.startswith(("zoo.data_rank", "zoo.ranking", "zoo.confidence", "zoo.scoring"))}
    assert "zoo.recommender" in imported("zoo.data_rank") or "zoo.recommender.group_key" in imported("zoo.data_rank")
    assert not {n for n in imported("zoo.data_rank") if n.startswith("zoo.ranking")}


def test_the_check_itself_sees_function_level_imports():
    assert "zoo.data_rank" in imported("zoo.ranking")  # imported inside recommend(): the walk finds it


def test_zoo_recommend_is_the_composed_api():
    import inspect

    from zoo.ranking import recommend

    assert zoo.recommend is recommend
    params = inspect.signature(zoo.recommend).parameters
    assert list(params)[:2] == ["task", "data"] and "probe_top" in params and "executor" in params
