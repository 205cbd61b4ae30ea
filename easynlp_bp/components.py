"""The pluggable classes of the apps (dataset, model, predictor, evaluator, trainer), swappable by name.

Each built-in class registers itself here under its class name; an app names the ones it uses by that name
(``App.components``; ``appzoo/base.py`` imports the registering modules before the first lookup). A user swaps one without editing the package, either from Python::

    from easynlp_bp.components import COMPONENTS
    COMPONENTS.register("MyPredictor")(MyPredictor)     # a subclass of BeautifulPromptPredictor

and then ``user_defined_parameters="predictor_class=MyPredictor"``, or from the command line with an
import path, ``predictor_class=my_package.my_module:MyPredictor`` (imported only because the user asked).
"""
from __future__ import annotations

import importlib
from typing import Union

from easynlp_bp.registry import Registry

COMPONENTS: Registry[type] = Registry("class")


def resolve_component(spec: Union[str, type], kind: str, base: type) -> type:
    """The class ``spec`` names (a registered name, ``module:Class`` or a class), checked to subclass ``base``.

    Raises:
        KeyError: an unknown registered name (with the registered ones listed).
        ValueError: an import path that does not load, or a class that is not a ``base``.
    """
    if isinstance(spec, type):
        cls = spec
    elif ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"{kind}_class={spec!r} cannot be imported ({err}); give module.path:ClassName "
                             "of a module on PYTHONPATH, or a name registered in easynlp_bp.components.COMPONENTS.") from err
    else:
        cls = COMPONENTS.get(spec)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{kind}_class={spec!r} is {cls!r}, not a subclass of {base.__name__}; "
                         f"subclass {base.__name__} and override what you need.")
    return cls
