"""Rendering Jinja2 templates, an optional extra: ``pip install jinja2``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TemplateRenderer", "TemplatesUnavailable"]


class TemplatesUnavailable(RuntimeError):
    """Jinja2 is not installed."""

    def __init__(self) -> None:
        super().__init__("rendering templates needs Jinja2: pip install jinja2")


class TemplateRenderer:
    """Templates from one directory, with autoescaping on; Jinja2 is loaded on first use."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._environment: Any = None

    async def render(self, name: str, context: dict[str, Any]) -> str:
        if self._environment is None:
            self._environment = self._load_environment()
        template = self._environment.get_template(name)
        return await template.render_async(**context)  # type: ignore[no-any-return]

    def _load_environment(self) -> Any:
        try:
            import jinja2
        except ImportError:
            raise TemplatesUnavailable() from None
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.directory),
            autoescape=True,  # every template, whatever its extension
            enable_async=True,
        )
