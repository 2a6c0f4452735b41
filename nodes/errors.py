"""How a TruePose error reaches the ComfyUI user.

ComfyUI reports a failed node with ``exception_type`` (the exception class's module plus its
name) and ``exception_message`` (``str(exception)``); the frontend shows the type as the title
of its error dialog. Inside ComfyUI this pack is imported under its folder path, so the module
of ``truepose_core.errors.PoseError`` reads like ``/home/.../custom_nodes/comfyui-truepose.
truepose_core.errors``. ``node_errors()`` re-raises a ``TruePoseError`` as a
``TruePoseNodeError`` subclass of the same name in the module ``truepose``, so the dialog reads
``truepose.PoseError`` above the original one-line message. The original error stays attached
as ``__cause__``. Other exceptions are programming errors and pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..truepose_core.errors import TruePoseError


class TruePoseNodeError(Exception):
    """A TruePose error as reported by a node; ``str()`` is the message the user sees."""


TruePoseNodeError.__module__ = "truepose"


def to_node_error(error: TruePoseError) -> TruePoseNodeError:
    """The node-facing twin of ``error``: same class name and message, module ``truepose``."""
    name = type(error).__name__
    kind = type(name, (TruePoseNodeError,), {"__module__": "truepose", "__qualname__": name})
    return kind(str(error))


@contextlib.contextmanager
def node_errors() -> Iterator[None]:
    """Wrap the body of a node's ``execute`` so TruePose errors read well in ComfyUI."""
    try:
        yield
    except TruePoseError as error:
        raise to_node_error(error) from error
