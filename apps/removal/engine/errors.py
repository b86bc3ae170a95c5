"""Exceptions the engine raises on purpose, so a caller can tell outcomes from crashes."""


class EngineError(Exception):
    """Base of the engine's deliberate failures."""


class NoMarkFound(EngineError):
    """No frame of the video carries the profile's mark: nothing was written."""


class Cancelled(EngineError):
    """The caller's `should_stop()` said stop: the partial output was removed."""


class UnsupportedVideo(EngineError):
    """The input has no decodable video stream."""
