"""Handing a request to another ASGI application: ``App.mount``, and 0.x's ``_subapp``."""

from __future__ import annotations

from typing import Any

from micropie._asgi import ASGIApp, Message, Receive, Scope

__all__ = ["Mounts", "add_mount", "find_mount", "legacy_subapp_scope", "replaying", "route_path"]


def route_path(scope: Scope) -> str:
    """The path an App routes on: ``path`` without the ``root_path`` it was
    mounted at, since ASGI keeps the whole path in ``path``."""
    path: str = scope["path"]
    root = (scope.get("root_path") or "").rstrip("/")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


#: What an App has mounted: (prefix, application) pairs, the longest prefix first.
Mounts = tuple[tuple[str, ASGIApp], ...]


def add_mount(mounts: Mounts, path: str, app: ASGIApp) -> Mounts:
    """*mounts* with *app* at *path*; a clear error for a path or app that cannot be."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"a mount path starts with '/', like '/api'; got {path!r}")
    prefix = path.rstrip("/")
    if not prefix:
        raise ValueError("cannot mount at '/': that is the App's own place")
    if not callable(app):
        raise TypeError(f"mount() takes an ASGI application, not {type(app).__name__}")
    if any(existing == prefix for existing, _ in mounts):
        raise ValueError(f"{prefix!r} is mounted already")
    return tuple(sorted([*mounts, (prefix, app)], key=lambda entry: -len(entry[0])))


def find_mount(mounts: Mounts, scope: Scope) -> tuple[ASGIApp, Scope] | None:
    """The application mounted where *scope*'s path lies, and the scope to give
    it: ``root_path`` grows by the prefix, ``path`` stays whole (ASGI)."""
    path = route_path(scope)
    for prefix, app in mounts:
        if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] in ("", "/"):
            return app, {**scope, "root_path": scope.get("root_path", "") + prefix}
    return None


def legacy_subapp_scope(scope: Scope, request: Any) -> Scope:
    """The scope for the application a MicroPie 0.x middleware chose by setting
    ``request._subapp``: ``path`` is its ``_subapp_path`` and ``root_path``
    grows by its ``_subapp_mount_path``, as 0.x did."""
    mount = str(getattr(request, "_subapp_mount_path", "")).strip("/")
    root = scope.get("root_path", "") + (f"/{mount}" if mount else "")
    path = getattr(request, "_subapp_path", None)
    return {**scope, "path": scope["path"] if path is None else path, "root_path": root}


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives *body* again, whole, before what *receive* brings
    next: for an application handed a request whose body was read already."""
    pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replay() -> Message:
        nonlocal pending
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replay
