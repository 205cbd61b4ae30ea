"""The registry is the one lookup for the pluggable classes: apps name their defaults by registered name, every
registering module is known to the lookup, and a user's class registers and is chosen the same way."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from easynlp_bp.appzoo import APPS
from easynlp_bp.appzoo.base import COMPONENT_MODULES
from easynlp_bp.cli import parse_args
from easynlp_bp.components import COMPONENTS

PACKAGE = Path(__file__).resolve().parents[2] / "easynlp_bp"


def registering_modules() -> set[str]:
    """Modules of the package with a ``@COMPONENTS.register(...)`` decorator, found in the source."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "COMPONENTS"):
                found.add(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    return found


def test_every_registering_module_is_imported_by_the_lookup():
    assert registering_modules() == set(COMPONENT_MODULES)


def test_app_defaults_are_registered_names(tmp_path):
    for name in APPS.names():
        app_cls = APPS.get(name)
        for kind, default in app_cls.components.items():
            assert ":" not in default, f"{name}: {kind} default {default!r} is an import path, not a registered name"
            args, _ = parse_args([f"--app_name={name}", f"--checkpoint_dir={tmp_path}"])
            assert app_cls(args).component(kind) is COMPONENTS.get(default)


def test_a_user_class_registers_and_is_chosen_by_name(tmp_path):
    from easynlp_bp.reward.evaluator import RewardEvaluator

    class StrictRewardEvaluator(RewardEvaluator):
        pass

    COMPONENTS.register("StrictRewardEvaluator")(StrictRewardEvaluator)
    try:
        args, _ = parse_args(["--app_name=beautiful_prompt_reward", f"--checkpoint_dir={tmp_path}",
                              "--user_defined_parameters=evaluator_class=StrictRewardEvaluator"])
        assert APPS.get("beautiful_prompt_reward")(args).component("evaluator") is StrictRewardEvaluator
        args, _ = parse_args(["--app_name=beautiful_prompt_reward", f"--checkpoint_dir={tmp_path}",
                              "--user_defined_parameters=evaluator_class=StrictRewardEvaluater"])
        with pytest.raises(KeyError, match="Did you mean 'StrictRewardEvaluator'"):
            APPS.get("beautiful_prompt_reward")(args).component("evaluator")
        with pytest.raises(KeyError, match="already registered"):
            COMPONENTS.register("RewardEvaluator")(StrictRewardEvaluator)
    finally:
        COMPONENTS._items.pop("StrictRewardEvaluator")


def test_an_import_path_still_names_a_user_class(tmp_path):
    args, _ = parse_args(["--app_name=beautiful_prompt_reward", f"--checkpoint_dir={tmp_path}",
                          "--user_defined_parameters=evaluator_class=easynlp_bp.reward.evaluator:RewardEvaluator"])
    chosen = APPS.get("beautiful_prompt_reward")(args).component("evaluator")
    assert chosen is importlib.import_module("easynlp_bp.reward.evaluator").RewardEvaluator
