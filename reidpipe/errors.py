"""Errors a user can act on, each with its own exit code.

Every error that reaches the CLI is printed as one line, ``reidpipe: error: <message>``, with no
traceback, and the process exits with the class's ``exit_code``. The message always names the bad
input (a path, a flag, a line number). Code anywhere in reidpipe raises these instead of letting a
library's exception escape.
"""

from __future__ import annotations


class ReidpipeError(Exception):
    """Base class. ``exit_code`` is what ``reidpipe`` returns to the shell."""

    exit_code = 1


class UsageError(ReidpipeError):
    """Flags that contradict each other (e.g. 3 ``--detections`` files for 2 ``--sources``)."""

    exit_code = 2


class InputNotFoundError(ReidpipeError):
    """A file, folder or stream named on the command line does not exist or cannot be opened."""

    exit_code = 3


class EmptyInputError(ReidpipeError):
    """An input that opens but holds nothing usable (a video with no frames, an empty folder)."""

    exit_code = 4


class MalformedInputError(ReidpipeError):
    """An input file whose content is wrong (a bad ``det.txt`` line, a ground-truth file, a JSON)."""

    exit_code = 5


class GalleryDamagedError(MalformedInputError):
    """A gallery whose files are damaged: a database SQLite cannot read, an ill-formed value in it (the
    id counter, the model, a vector of the wrong size), or a gallery file that is a symbolic link or
    a folder. The message names the file and what is wrong; ``reidpipe gallery check`` lists it all."""


class OutputError(ReidpipeError):
    """The output folder or file cannot be created or written."""

    exit_code = 6


class WeightsUnavailableError(ReidpipeError):
    """Model weights are missing and cannot be downloaded (offline); the message says which flag avoids it."""

    exit_code = 7


class CheckpointError(ReidpipeError):
    """A checkpoint or ONNX model that is corrupt, foreign, or of the wrong kind."""

    exit_code = 8


class DatasetError(ReidpipeError):
    """A dataset root that does not hold the expected layout."""

    exit_code = 9


class ConfigError(ReidpipeError):
    """An unknown or ill-typed configuration key or value."""

    exit_code = 10


class StreamError(ReidpipeError):
    """A live stream that dropped and did not come back after the reconnection attempts."""

    exit_code = 11


class WorkerLostError(ReidpipeError):
    """A camera worker (a Ray actor, ``--engine ray``) died: its cameras ended early, the others ran to
    the end and the outputs were written."""

    exit_code = 12


class EngineError(ReidpipeError):
    """``--engine ray``: the Ray cluster cannot be reached, or it lacks the resources asked for."""

    exit_code = 13


class GalleryLockedError(ReidpipeError):
    """``--gallery DIR`` (or ``reidpipe gallery prune/forget``) while another process writes that
    gallery: one writer at a time; nothing was changed."""

    exit_code = 14


class GalleryMismatchError(ReidpipeError):
    """A gallery filled by another ReID model than the run's or the query's (or of another schema)."""

    exit_code = 15


class Interrupted(ReidpipeError):
    """Ctrl-C (exit 130), SIGTERM (143) or SIGHUP (129): outputs were finalised with everything seen
    so far. The exit code is ``128 + signum`` of the signal that stopped the run."""

    exit_code = 130

    def __init__(self, message: str = "", signum: int = 2):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


__all__ = [
    "ReidpipeError",
    "UsageError",
    "InputNotFoundError",
    "EmptyInputError",
    "MalformedInputError",
    "GalleryDamagedError",
    "OutputError",
    "WeightsUnavailableError",
    "CheckpointError",
    "DatasetError",
    "ConfigError",
    "StreamError",
    "WorkerLostError",
    "EngineError",
    "GalleryLockedError",
    "GalleryMismatchError",
    "Interrupted",
]
