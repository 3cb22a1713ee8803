"""HTTP/1.1: parser adapters feeding one shared ASGI request/response cycle."""
