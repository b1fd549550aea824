"""Register `model_type: focusclip` with transformers' Auto classes without importing transformers.

`import focusclip` must make `AutoConfig`/`AutoModel.from_pretrained(folder_or_id)` work, yet
`focus-data --help` must not pay for torch and transformers (seconds). So registering waits until
the user's own code imports the Auto classes: a finder on `sys.meta_path` notices the import of
`transformers.models.auto.configuration_auto` (AutoConfig; also imported by AutoTokenizer and
AutoModel) and of `…modeling_auto` (AutoModel), lets it run, then registers FocusCLIPConfig and
FocusCLIPModel. When those modules are already imported, registering happens at once. Importing
`focusclip.training.model` registers too (it is where the classes live).
"""
from __future__ import annotations

import importlib.abc
import sys
import warnings
from types import ModuleType
from typing import Callable

CONFIG_AUTO = "transformers.models.auto.configuration_auto"
MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _register_config(auto: ModuleType) -> None:
    from focusclip.training.hf_config import FocusCLIPConfig

    auto.AutoConfig.register(FocusCLIPConfig.model_type, FocusCLIPConfig, exist_ok=True)


def _register_model(_auto: ModuleType) -> None:
    import focusclip.training.model  # noqa: F401  (registers both classes when imported)


class _ThenCall(importlib.abc.Loader):
    """A module's own loader, followed by `callback(module)` once the module is executed."""

    def __init__(self, loader, callback: Callable[[ModuleType], None]):
        self._loader, self._callback = loader, callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _safely(self._callback, module)

    def __getattr__(self, name: str):   # get_source, get_resource_reader, … of the real loader
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._loader, name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for the watched names it asks the other finders and wraps the loader."""

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]):
        self.callbacks = callbacks

    def find_spec(self, name, path, target=None):
        if name not in self.callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenCall(spec.loader, self.callbacks.pop(name))
                if not self.callbacks and self in sys.meta_path:
                    sys.meta_path.remove(self)
                return spec
        return None


def _safely(callback: Callable[[ModuleType], None], module: ModuleType) -> None:
    """A failed registration must not break the user's `import transformers…`: say so instead."""
    try:
        callback(module)
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"focusclip: could not register model_type 'focusclip' with transformers ({e}); "
                      "AutoModel will not know it, use focusclip.training.model.FocusCLIPModel", stacklevel=2)


def install() -> None:
    """Register now for the Auto modules already imported; watch for the others."""
    pending = {}
    for name, callback in ((CONFIG_AUTO, _register_config), (MODEL_AUTO, _register_model)):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "AutoConfig" if name == CONFIG_AUTO else "AutoModel"):
            _safely(callback, module)
        else:
            pending[name] = callback
    if pending and not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(pending))
