"""The parts of kubernetes_asyncio the API source uses, without importing the whole library.

`import kubernetes_asyncio.client` runs the package's `__init__`s, which import every generated
API class and all ~770 model modules: ~38 MB of RSS that the API source never uses, since it
asks for raw JSON (`_preload_content=False`) and only needs Configuration, ApiClient,
CoreV1Api, DiscoveryV1Api, CustomObjectsApi (ServiceImports) and the kubeconfig loader
(docs/decisions/k8s-client.md).

So before importing those submodules this module registers *lazy* package objects for
`kubernetes_asyncio`, `.client`, `.client.api` and `.client.models`: real module objects built
from the installed packages' own specs (same `__path__`, `__file__`, loader), so submodules load
from the installed files as usual, only the package `__init__` code is not run. A name the
`__init__` would have provided is supplied on first access (PEP 562 `__getattr__`):

1. a name the `__init__` imports with `from MODULE import NAME` (read from its source) is taken
   from MODULE alone — e.g. kube_config's `from kubernetes_asyncio.client import ApiClient`,
   or the model class name ApiClient's deserializer looks up in `client.models`;
2. a submodule's name imports the submodule;
3. anything else runs the package's real `__init__` in the module (the library as shipped).

The library therefore behaves as published for any caller (deploy.py and the tests use models
and other APIs through the same modules): laziness only changes *when* its parts are loaded.
If anything unexpected happens — the library is already imported (then it is used as is), a
package is not where it should be, a submodule import fails — the lazy modules are dropped and
the ordinary import runs; `LAZY` tells which way it went (tests/test_k8s_client_import.py
checks that it is the lazy way, so an upgrade that defeats it is noticed).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from typing import Any

ROOT = "kubernetes_asyncio"
#: Packages whose `__init__` is deferred, parents first.
PACKAGES = (ROOT, f"{ROOT}.client", f"{ROOT}.client.api", f"{ROOT}.client.models")
#: What the API source uses; imported through the lazy packages as a trial before it is kept.
MODULES = (
    f"{ROOT}.client.configuration",
    f"{ROOT}.client.api_client",
    f"{ROOT}.client.api.core_v1_api",
    f"{ROOT}.client.api.discovery_v1_api",
    f"{ROOT}.client.api.custom_objects_api",
    f"{ROOT}.config.config_exception",
    f"{ROOT}.config.kube_config",
)
#: One `from MODULE import NAME[, NAME as ALIAS…]` line, the form generated `__init__`s use.
_FROM_IMPORT = re.compile(
    r"^from\s+([A-Za-z_][\w.]*)\s+import\s+([\w ,]+?)\s*(?:#.*)?$", re.MULTILINE
)


def _from_imports(source: str) -> dict[str, str]:
    """NAME -> MODULE for each one-line absolute `from MODULE import NAME` of `source`.

    Other forms (parenthesised, relative, `import *`) are not indexed: their names fall to the
    full `__init__`, which is slower but still right.
    """
    index: dict[str, str] = {}
    for m in _FROM_IMPORT.finditer(source):
        for item in m.group(2).split(","):
            words = item.split()
            if len(words) == 1:
                index[words[0]] = m.group(1)
            elif len(words) == 3 and words[1] == "as":
                index[words[2]] = f"{m.group(1)}:{words[0]}"
    return index


def _lazy_package(name: str) -> None:
    """Register `name` as a package module whose `__init__` runs only when it must."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    index: dict[str, str] | None = None
    loaded = False

    def __getattr__(attr: str) -> Any:  # PEP 562: looked up in the module dict
        nonlocal index, loaded
        if loaded:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        if index is None:
            get_source: Callable[[str], str | None] | None = getattr(loader, "get_source", None)
            index = _from_imports((get_source(name) if get_source else None) or "")
        source = index.get(attr)
        if source is not None:
            mod_name, _, orig = source.partition(":")
            value = getattr(importlib.import_module(mod_name), orig or attr)
        elif not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}") is not None:
            value = importlib.import_module(f"{name}.{attr}")
        else:
            loaded = True  # the real __init__, once; then names are plain attributes
            loader.exec_module(module)
            return getattr(module, attr)
        setattr(module, attr, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__clusterdns_lazy__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _forget() -> None:
    """Drop every kubernetes_asyncio module (all imported by the failed lazy attempt)."""
    for key in [k for k in sys.modules if k == ROOT or k.startswith(ROOT + ".")]:
        del sys.modules[key]


def _prepare() -> bool:
    """Set up the lazy packages and import MODULES through them; False if not done."""
    if ROOT in sys.modules:
        return bool(getattr(sys.modules[ROOT], "__clusterdns_lazy__", False))
    try:
        for name in PACKAGES:
            _lazy_package(name)
        for name in MODULES:
            importlib.import_module(name)
    except Exception:
        _forget()  # the ordinary import below loads the library as shipped
        return False
    return True


#: True when the library was loaded through the lazy packages, False for the ordinary import.
LAZY = _prepare()

# Plain imports from here: either the lazy packages are in place with these modules loaded, or
# this is the library's ordinary (complete) import.
from kubernetes_asyncio.client.api.core_v1_api import CoreV1Api  # noqa: E402
from kubernetes_asyncio.client.api.custom_objects_api import CustomObjectsApi  # noqa: E402
from kubernetes_asyncio.client.api.discovery_v1_api import DiscoveryV1Api  # noqa: E402
from kubernetes_asyncio.client.api_client import ApiClient  # noqa: E402
from kubernetes_asyncio.client.configuration import Configuration  # noqa: E402
from kubernetes_asyncio.config import kube_config  # noqa: E402
from kubernetes_asyncio.config.config_exception import ConfigException  # noqa: E402

__all__ = [
    "LAZY",
    "ApiClient",
    "ConfigException",
    "Configuration",
    "CoreV1Api",
    "CustomObjectsApi",
    "DiscoveryV1Api",
    "kube_config",
]
