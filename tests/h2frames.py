"""Splitting what an HTTP/2 test client read into whole frames."""

from __future__ import annotations


def whole_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete frames at the start of ``buffer``, and the rest (a frame not complete yet).

    Test clients feed h2 one frame at a time: h2's client refuses every frame after a GOAWAY,
    while a graceful GOAWAY lets the streams it names finish (RFC 9113 section 6.8), so the
    frames after it must still reach the test.
    """
    frames: list[bytes] = []
    start = 0
    while len(buffer) - start >= 9:
        end = start + 9 + int.from_bytes(buffer[start:start + 3], "big")
        if len(buffer) < end:
            break
        frames.append(buffer[start:end])
        start = end
    return frames, buffer[start:]
