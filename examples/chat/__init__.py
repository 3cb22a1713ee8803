"""A WebSocket chat room (Starlette) served by asgi_worker; see app.py."""
