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
    max_body_size: int
    allowed_origins: frozenset[str]
    templates: TemplateRenderer

    @classmethod
    def for_app(cls, app: Any) -> AppSettings:
        """The settings of *app*; a clear error when its ``__init__`` skipped App's."""
        try:
            settings: AppSettings = app._App__settings
        except AttributeError:
            raise RuntimeError(
                f"{type(app).__name__}.__init__ must call super().__init__(): "
                "App keeps its settings there"
            ) from None
        return settings


_Value = TypeVar("_Value")


class Setting(Generic[_Value]):
    """An App attribute whose value is kept in the App's :class:`AppSettings`.

    An assigned value goes through *convert*, if given (a list of
    middlewares becomes a :class:`~micropie.middleware.MiddlewareList`,
    origins are normalized), so that the machinery never has to.
    """

    def __init__(self, convert: Callable[[Any], Any] | None = None) -> None:
        self.convert = convert
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, app: None, owner: type | None = None) -> Setting[_Value]: ...
    @overload
    def __get__(self, app: object, owner: type | None = None) -> _Value: ...
    def __get__(self, app: object, owner: type | None = None) -> Any:
        if app is None:
            return self
        return getattr(AppSettings.for_app(app), self.name)

    def __set__(self, app: Any, value: Any) -> None:
        if self.convert is not None:
            value = self.convert(value)
        setattr(AppSettings.for_app(app), self.name, value)
