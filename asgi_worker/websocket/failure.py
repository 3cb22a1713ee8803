"""A WebSocket connection the client broke: the close frame held until the app has answered.

When a frame breaks the protocol (1002, 1007 invalid UTF-8, 1009 too big, ...), RFC 6455 fails
the connection and nothing the client sends after it is read. What came before it (often in
the same read) is not lost: those messages reach the app in order, and its replies go out
before the close frame. So the session is FAILING while the app still has messages to take or
is busy with one: the close frame waits until the app comes back to ``receive()`` (which
returns ``websocket.disconnect`` with the failure's code), sends ``websocket.close``, returns,
or ``FAIL_GRACE`` passes (the server's tick). These functions act on a
:class:`~.session.WebSocketSession`; only the failure path calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN as PROTOCOL_OPEN

if TYPE_CHECKING:
    from .session import WebSocketSession

# The session's state while the close frame waits (session.py has the others).
FAILING = 4
_CLOSED = 3
# How long a failed connection's close frame may wait for the app to take the messages that
# arrived before the error and answer them.
FAIL_GRACE = 1.0


def fail(session: WebSocketSession, code: int, reason: str, hold: bool = False) -> None:
    """Fail the connection: close frame, then close the transport without waiting."""
    session.protocol.fail(code, reason)
    failed(session, code, reason, hold)
    session._flush()


def failed(session: WebSocketSession, code: int, reason: str, hold: bool) -> None:
    """The protocol has failed the connection with ``code``: the app will learn that code,
    since the peer sends none. With ``hold`` (the failure came with the data), when the app
    still has messages to take or is busy with one, the session is FAILING until it comes
    back to receive(); otherwise the close frame goes out at once."""
    session.failure = (code, reason)
    if hold and session.task is not None and (session.queue or session.waiter is None):
        session.state = FAILING
        if session.disconnect is None:  # returned once the queue is empty
            session.disconnect = {"type": "websocket.disconnect", "code": code,
                                  "reason": reason}
        session.ping_at = session.pong_by = 0.0
        session.fail_by = session.loop.time() + FAIL_GRACE
        session._arm()
    else:
        session._end_for_app(code, reason)
        session.state = _CLOSED


def release(session: WebSocketSession) -> None:
    """FAILING ends: the failure's close frame goes out and the connection closes."""
    session.state = _CLOSED
    session.fail_by = 0.0
    session._arm()
    session._flush()


def fail_utf8(session: WebSocketSession, exc: UnicodeDecodeError) -> None:
    fail(session, 1007, "invalid UTF-8", hold=True)
    session.log.debug("WebSocket from %s sent invalid UTF-8: %s", session._peer(), exc)


def answer_pings_only(session: WebSocketSession, pings: int) -> None:
    """websockets parsed on past a frame found invalid here: of what it queued, only the
    pongs to the ``pings`` before that frame go out (RFC 6455 7.1.7: data after the failure
    is not processed)."""
    protocol = session.protocol
    if protocol.state is PROTOCOL_OPEN:  # it queued pongs, and nothing else
        pongs = protocol.data_to_send()[:pings]
        if pongs:
            session.transport.write(b"".join(pongs))


def write_reply(session: WebSocketSession, opcode: int, data: bytes) -> None:
    """A reply to a message from before the failure: websockets sends nothing once it failed
    the connection, so it is framed (and compressed) here, ahead of the close."""
    session.transport.write(Frame(Opcode(opcode), data).serialize(
        mask=False, extensions=session.protocol.extensions))
