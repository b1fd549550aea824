"""Register `model_type: focusclip` (and `focusclip_vit`, the convolutional-stem vision tower) with
transformers' Auto classes without importing transformers.

`import focusclip` must make `AutoConfig`/`AutoModel.from_pretrained(folder_or_id)` work, yet
`focus-data --help` must not pay for torch and transformers (seconds). So registering waits until
the user's own code imports the Auto classes: a finder on `sys.meta_path` notices the import of
`transformers.models.auto.configuration_auto` (AutoConfig; also imported by AutoTokenizer and
AutoModel) and of `…modeling_auto` (AutoModel), lets it run, then registers FocusCLIPConfig (with
AutoConfig) and the models (with AutoModel; `focusclip_vit` with them, or a stand-in that imports it on
first use while ViT's own model module is still loading). When those modules are already imported,
registering happens at once. Importing `focusclip.training.model` registers too (it is where the
classes live).
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


VIT_MODEL = "transformers.models.vit.modeling_vit"


def _register_model(_auto: ModuleType) -> None:
    import focusclip.training.model  # noqa: F401  (registers both classes when imported)

    vit = sys.modules.get(VIT_MODEL)
    if vit is not None and not hasattr(vit, "ViTModel"):
        # ViT's model module is mid-import (the Auto modules often load inside it): FocusViTModel, its
        # subclass, cannot be defined yet, so its config goes in now with a stand-in that loads it on use
        from focusclip.training.vit_config import FocusViTConfig, register_config
        _FocusViTOnFirstUse.config_class = FocusViTConfig
        register_config(_FocusViTOnFirstUse)
    else:
        import focusclip.training.vit  # noqa: F401  (registers FocusViTConfig / FocusViTModel)


class _FocusViTOnFirstUse:
    """AutoModel's entry for `focusclip_vit` until focusclip.training.vit is imported (which registers
    the real class): imports it, then defers to it."""
    config_class = None   # FocusViTConfig, set when registered

    @staticmethod
    def _real():
        from focusclip.training.vit import FocusViTModel

        return FocusViTModel

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls._real().from_pretrained(*args, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        return cls._real()._from_config(config, **kwargs)


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


def _watch(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call `callback(module)` once the module `name` has been imported."""
    finder = next((f for f in sys.meta_path if isinstance(f, _AfterImport)), None)
    if finder is None:
        sys.meta_path.insert(0, _AfterImport({name: callback}))
    else:
        finder.callbacks.setdefault(name, callback)


def install() -> None:
    """Register now for the Auto modules already imported; watch for the others."""
    for name, callback in ((CONFIG_AUTO, _register_config), (MODEL_AUTO, _register_model)):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "AutoConfig" if name == CONFIG_AUTO else "AutoModel"):
            _safely(callback, module)
        else:
            _watch(name, callback)
