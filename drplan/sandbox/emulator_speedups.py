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
- **Which operation a REST request is.** moto matches the request's method and path against the
  URIs of the service's operations, and to list them it opened a boto3 client in boto3's default
  session, once per service *and Region*: a client of its own, which read botocore's endpoint
  data and retry rules too (~0.2 s for the first). The same URIs now come from the service's
  model alone, read once per service: :func:`share_method_urls`.
- **Which Regions a service has.** Each backend lists its Regions through a boto3 session of
  moto's own, which read botocore's endpoint data and every service's API model once more:
  that session now reads them through the loader the sandbox's clients share:
  :func:`share_region_lookups`. Likewise the catalogue of EC2's Regions and zones, which moto
  builds when its EC2 models are imported, with three new sessions (~0.5 s: botocore's endpoint
  data and EC2's API model, each read three times): :func:`sessions_share_the_loader`, while
  the sandbox starts and seeds (when moto imports the models the plan needs).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Iterator
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


def _shared_botocore_session() -> Any:
    """A botocore session reading botocore's files through the process's one loader (the one every
    client of the sandbox uses): whatever it reads, it reads once."""
    from drplan.aws import _botocore_session

    return _botocore_session()


_MODELS_LOCK = threading.Lock()


def share_method_urls() -> bool:
    """Build moto's table of REST operation URIs (``_get_method_urls``) from botocore's service
    model, once per service, instead of from a new boto3 client per service and Region (the table
    is a function of the service model alone). True when in place."""
    try:
        from moto.core import responses
    except ImportError:
        return False
    original = getattr(responses, "_get_method_urls", None)
    if getattr(original, _MEMOIZED, False):
        return True
    build = getattr(original, "__wrapped__", None)  # moto's functools.cache
    if not isinstance(build, types.FunctionType) or "boto3" not in build.__code__.co_names:
        return False  # moto changed shape: leave it alone
    loader: list[Any] = []

    def client(service_name: str, region_name: str | None = None, **_: Any) -> Any:
        """What ``_get_method_urls`` reads of a boto3 client: its service model, nothing else. Read
        by a loader of its own: botocore's S3 clients rewrite the request URIs of the models they
        use (the bucket moves to the host), so the shared loader's models are not pristine."""
        from botocore.loaders import create_loader
        from botocore.model import ServiceModel

        with _MODELS_LOCK:
            if not loader:
                loader.append(create_loader())
        model = loader[0].load_service_model(service_name, "service-2")
        return types.SimpleNamespace(_service_model=ServiceModel(model, service_name=service_name))

    reading_models = types.FunctionType(
        build.__code__,
        {**build.__globals__, "boto3": types.SimpleNamespace(client=client)},
        build.__name__,
        build.__defaults__,
        build.__closure__,
    )
    tables: dict[str, Any] = {}

    def _get_method_urls(service_name: str, region: str) -> Any:
        with _MODELS_LOCK:
            found = tables.get(service_name)
        if found is None:
            found = reading_models(service_name, region)
            with _MODELS_LOCK:
                found = tables.setdefault(service_name, found)
        return found

    setattr(_get_method_urls, _MEMOIZED, True)
    _get_method_urls.__wrapped__ = original  # type: ignore[attr-defined]  # moto's, for comparison
    responses._get_method_urls = _get_method_urls  # type: ignore[assignment]
    return True


def share_region_lookups() -> bool:
    """Give moto's backends a boto3 session reading through the sandbox's shared loader to list
    each service's partitions and Regions (``AccountSpecificBackend.get_session``): the same
    files, read once per process. True when in place."""
    try:
        from moto.core.base_backend import AccountSpecificBackend
    except ImportError:
        return False
    original = AccountSpecificBackend.__dict__.get("get_session")
    if not isinstance(original, classmethod):
        return False  # moto changed shape: leave it alone
    if getattr(original.__func__, _MEMOIZED, False):
        return True
    session: list[Any] = []

    def get_session(cls: Any) -> Any:
        with _MODELS_LOCK:
            if not session:
                import boto3

                session.append(boto3.Session(botocore_session=_shared_botocore_session()))
            return session[0]

    setattr(get_session, _MEMOIZED, True)
    AccountSpecificBackend.get_session = classmethod(get_session)  # type: ignore[method-assign, assignment]
    return True


@contextlib.contextmanager
def sessions_share_the_loader() -> Iterator[None]:
    """While the sandbox starts and seeds: every ``boto3.Session()`` made without a botocore
    session of its own reads botocore's files through the process's one loader (moto's EC2
    models build their catalogue of Regions and zones with three such sessions when imported).
    The same files, so the same answers; ``boto3.Session`` is put back afterwards (a module that
    imported the name meanwhile keeps the subclass, which behaves the same)."""
    try:
        import boto3
        from boto3.session import Session
    except ImportError:
        yield
        return

    class SharedLoaderSession(Session):  # type: ignore[misc]  # boto3 has no types
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("botocore_session") is None:
                kwargs["botocore_session"] = _shared_botocore_session()
            super().__init__(*args, **kwargs)

    original = boto3.Session
    boto3.Session = SharedLoaderSession
    try:
        yield
    finally:
        boto3.Session = original
