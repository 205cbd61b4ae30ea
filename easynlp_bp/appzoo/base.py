"""The App base class and the app registry: an app is train / evaluate / predict over typed configs."""
from __future__ import annotations

import logging
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from easynlp_bp.arguments import EasyNLPArgs, parse_user_defined_parameters
from easynlp_bp.io.writers import write_json
from easynlp_bp.registry import Registry

logger = logging.getLogger(__name__)

APPS: Registry[type["App"]] = Registry("app")


class App:
    """Base of every ``--app_name``. Subclasses set ``modes``, ``params_cls`` and implement the modes.

    Example:
        >>> @APPS.register("echo")
        ... class EchoApp(App):
        ...     modes = ("predict",)
        ...     def predict(self): return 0
    """

    modes: ClassVar[tuple[str, ...]] = ()
    params_cls: ClassVar[type] = object
    description: ClassVar[str] = ""

    def __init__(self, args: EasyNLPArgs):
        self.args = args
        self.params = parse_user_defined_parameters(args.user_defined_parameters, self.params_cls)

    def run(self) -> Any:
        """Dispatch ``args.mode``; a mode this app lacks raises ``ValueError`` listing the ones it has."""
        if self.args.mode not in self.modes:
            raise ValueError(
                f"App {self.args.app_name!r} does not support --mode={self.args.mode}; "
                f"it supports: {', '.join(self.modes)}."
            )
        return getattr(self, self.args.mode)()

    def run_config(self, **resolved: Any) -> dict:
        """The resolved configuration of this run, as written to ``run_config.json``."""
        params = asdict(self.params) if is_dataclass(self.params) else {}
        return {"args": self.args.to_dict(), "user_defined_parameters": params, "resolved": resolved}

    def write_run_config(self, directory: str, **resolved: Any) -> Path:
        path = Path(directory) / "run_config.json"
        write_json(str(path), self.run_config(**resolved))
        return path
