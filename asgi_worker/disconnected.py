"""The ``OSError`` subclasses ``send()`` raises after the client left (ASGI spec 2.4).

A module of their own, never compiled: mypyc cannot compile a subclass of ``OSError`` as a
native class, and the compiled modules raise these as they would any Python class.
"""


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (ASGI spec 2.4: an OSError)."""


class WebSocketDisconnected(ClientDisconnected):
    """``send()`` on a closed WebSocket (ASGI spec 2.4: a server-specific ``OSError``)."""
