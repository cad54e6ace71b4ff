"""What an App is configured with, kept where the machinery reads it.

The App's settings (``app.session_backend``, ``app.middlewares``, ...) are
attributes of the App the user subclasses; their values live here, in one
object per App, so that serving a request never looks anything up on the
user's instance but its handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from micropie.background import BackgroundTasks
from micropie.lifespan import LifespanHandler
from micropie.middleware import MiddlewareList
from micropie.mounting import Mounts
from micropie.origins import AllowedHosts
from micropie.sessions import SessionBackend
from micropie.templates import TemplateRenderer

__all__ = ["AppSettings", "Setting"]


@dataclass(slots=True)
class AppSettings:
    session_backend: SessionBackend
    startup_handlers: list[LifespanHandler]
    shutdown_handlers: list[LifespanHandler]
    background_tasks: BackgroundTasks
    middlewares: MiddlewareList
    ws_middlewares: MiddlewareList
    mounts: Mounts
    max_body_size: int
    allowed_origins: frozenset[str]
    allowed_hosts: AllowedHosts
    templates: TemplateRenderer

    @classmethod
    def for_app(cls, app: Any) -> AppSettings:
        """The settings of *app*; a clear error when its ``__init__`` skipped App's."""
        try:
            settings: AppSettings = app._App__settings
        except AttributeError:
            # An AttributeError, so that hasattr() and getattr(app, name, default)
            # still work on an App whose __init__ has not reached App's yet.
            raise AttributeError(
                f"{type(app).__name__} has no settings yet: its __init__ must call "
                "super().__init__() before it reads or sets app settings such as "
                "self.middlewares"
            ) from None
        return settings


_Value = TypeVar("_Value")
_Assigned = TypeVar("_Assigned")
# What a setting holds while unittest.mock takes a patch back off it.
_UNSET: Any = object()


class Setting(Generic[_Value, _Assigned]):
    """An App attribute whose value is kept in the App's :class:`AppSettings`.

    Reading gives a ``_Value``; assigning takes an ``_Assigned``, which goes
    through *convert*, if given (a list of middlewares becomes a
    :class:`~micropie.middleware.MiddlewareList`, origins and hosts are normalized), so
    that the machinery never has to.
    """

    def __init__(self, convert: Callable[[Any], Any] | None = None) -> None:
        self.convert = convert
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, app: None, owner: type | None = None) -> Setting[_Value, _Assigned]: ...
    @overload
    def __get__(self, app: object, owner: type | None = None) -> _Value: ...
    def __get__(self, app: object, owner: type | None = None) -> Any:
        if app is None:
            return self
        value = getattr(AppSettings.for_app(app), self.name)
        if value is _UNSET:
            raise AttributeError(f"{type(app).__name__}.{self.name} was deleted")
        return value

    def __set__(self, app: object, value: _Assigned) -> None:
        converted: Any = self.convert(value) if self.convert is not None else value
        setattr(AppSettings.for_app(app), self.name, converted)

    def __delete__(self, app: object) -> None:
        # unittest.mock.patch.object deletes what it patched, then sets the
        # original back when reading it fails: let it.
        setattr(AppSettings.for_app(app), self.name, _UNSET)
