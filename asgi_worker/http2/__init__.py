"""HTTP/2 (RFC 9113) over the h2 package: imported only when ``h2`` is in ``http_protocols``.

``connection.py`` is one connection over h2's sans-I/O state machine; ``stream.py`` is one
request stream, which runs the same ASGI cycle (http/cycle.py) as an HTTP/1.1 request.
"""
