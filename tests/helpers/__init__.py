"""What the tests share, one copy of each: servers and clients (``servers``, ``clients``,
``redis``, ``browser``), log checks (``logs``), raw ASGI (``asgi``), the documentation
as built and as followed (``docs_site``, ``reader``), and the applications that only
tests serve (``apps``). No test module imports another: they import from here."""
