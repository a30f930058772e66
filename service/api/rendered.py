"""An answer rendered once per read-model position: the reads between two appends (most of
them, on a busy API) share one JSON body instead of each building and encoding it again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class RenderedAt:
    def __init__(self) -> None:
        self._position = -1
        self._body = b""

    def body(self, position: int, render: Callable[[], Any]) -> bytes:
        """The JSON of `render()` at `position`; `render` must depend on nothing else."""
        if position != self._position:
            self._body = json.dumps(render()).encode()
            self._position = position
        return self._body
