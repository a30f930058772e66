"""An answer rendered once per position."""

from __future__ import annotations

import json

from service.api.rendered import RenderedAt


def test_renders_once_per_position_and_again_when_it_moves() -> None:
    calls: list[int] = []
    cache = RenderedAt()

    def render(position: int) -> dict[str, int]:
        calls.append(position)
        return {"position": position}

    first = cache.body(3, lambda: render(3))
    again = cache.body(3, lambda: render(3))
    moved = cache.body(4, lambda: render(4))

    assert calls == [3, 4]
    assert first is again and json.loads(first) == {"position": 3}
    assert json.loads(moved) == {"position": 4}
