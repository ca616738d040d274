"""SANDBOX ONLY, moto internals: look-ups moto's server repeats on every request, made once.

Each is a memo of a pure function of something fixed for the life of the process (a request's
host name, a service's API model), so every answer is the one moto would have given; only the
work of finding it again is saved. Against real AWS none of this is used.

- **Which backend serves a host.** moto's server finds the service of every request by listing
  its own package folder (a ``stat`` per service, ~200) and trying its URL patterns in turn, under
  one lock that all requests share: :func:`memoize_dispatch`.
- **Which error shape an error code has.** Every error answer (a ``NotFound`` a step expects, say)
  rebuilt the table of the service's error shapes from its model (RDS has ~180):
  :func:`memoize_error_shapes`.
- **Which actions a service answers.** Every request listed the methods of its service's response
  class with ``inspect.getmembers`` (EC2's has hundreds) to see whether the action is one of them:
  :func:`memoize_action_names`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_MEMOIZED = "_drplan_memoized"


def memoize_dispatch(app: Any) -> None:
    """Remember, on this server's dispatcher, the backend of each host it has seen (a pure function
    of the host name: moto's package folder and URL patterns do not change while it runs)."""
    find = app.get_backend_for_host
    if getattr(find, _MEMOIZED, False):
        return
    memo = functools.lru_cache(maxsize=1024)(find)
    setattr(memo, _MEMOIZED, True)
    app.get_backend_for_host = memo


_LUT_LOCK = threading.Lock()


def memoize_error_shapes() -> bool:
    """Keep moto's table of error shapes of each service model object (moto loads each model once
    per process and builds the table from it alone). True when in place."""
    try:
        from moto.core.errors import ErrorLookupFactory
    except ImportError:
        return False
    original = ErrorLookupFactory.__dict__.get("_create_error_lut")
    if not isinstance(original, staticmethod):
        return False  # moto changed shape: leave it alone
    build = original.__func__
    if getattr(build, _MEMOIZED, False):
        return True
    tables: dict[int, tuple[Any, Any]] = {}  # id(model) -> (model, table): the model kept alive

    def _create_error_lut(service_model: Any) -> Any:
        with _LUT_LOCK:
            found = tables.get(id(service_model))
        if found is None:
            found = (service_model, build(service_model))
            with _LUT_LOCK:
                tables[id(service_model)] = found
        return found[1]

    setattr(_create_error_lut, _MEMOIZED, True)
    ErrorLookupFactory._create_error_lut = staticmethod(_create_error_lut)  # type: ignore[method-assign]
    return True


def memoize_action_names() -> bool:
    """Keep the method names of each response class (moto's answer classes gain no methods while it
    runs; the sandbox's fixes replace existing ones). True when in place."""
    try:
        from moto.core import responses
    except ImportError:
        return False
    names_of = getattr(responses, "method_names_from_class", None)
    if names_of is None:
        return False
    if getattr(names_of, _MEMOIZED, False):
        return True
    memo = functools.lru_cache(maxsize=256)(names_of)
    setattr(memo, _MEMOIZED, True)
    responses.method_names_from_class = memo  # type: ignore[attr-defined]
    return True
