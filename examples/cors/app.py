"""A JSON API that the pages of another origin may call from the browser.

Save it as ``app.py`` and serve it with ``uvicorn app:app --port 8001``.
The origins whose pages may call it come from the ``API_ALLOWED_ORIGINS``
environment variable, separated by spaces, such as
``API_ALLOWED_ORIGINS="https://app.example.com http://localhost:5173"``.
"""

import os

from micropie import App, CORSMiddleware

# Origins (scheme://host[:port]) separated by spaces.
ORIGINS = os.environ.get("API_ALLOWED_ORIGINS", "https://app.example.com")


class Api(App):
    def __init__(self) -> None:
        super().__init__(
            middlewares=[
                # First in the list, so that no other middleware sees a preflight.
                CORSMiddleware(
                    ORIGINS.split(),
                    allow_methods=["GET", "POST", "DELETE"],
                    allow_headers=["Content-Type"],
                    expose_headers=["X-Note-Count"],
                    max_age=3600,
                )
            ]
        )
        self._notes: list[str] = []

    def notes(self) -> tuple[int, list[str] | dict[str, str], dict[str, str]]:
        if self.request.method == "POST":
            text = self.request.json("text")
            if not isinstance(text, str) or not text.strip():
                return 400, {"error": "send a JSON object with a non-empty 'text'"}, {}
            self._notes.append(text.strip())
        elif self.request.method == "DELETE":
            self._notes.clear()
        count = {"X-Note-Count": str(len(self._notes))}
        return (201 if self.request.method == "POST" else 200), self._notes, count


app = Api()
