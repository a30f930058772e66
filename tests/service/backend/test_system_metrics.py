"""The host's figures: /proc parsing is pure; reading them works on this (Linux) host."""

from __future__ import annotations

from pathlib import Path

from service.backend import system_metrics

MEMINFO = """MemTotal:        2048000 kB
MemFree:          100000 kB
MemAvailable:     512000 kB
Buffers:           10000 kB
"""


def test_memory_counts_available_memory_as_free() -> None:
    assert system_metrics.memory(MEMINFO) == {
        "total_bytes": 2048000 * 1024,
        "used_bytes": (2048000 - 512000) * 1024,
        "free_bytes": 512000 * 1024,
    }


def test_unreadable_figures_are_none() -> None:
    assert system_metrics.memory(None)["total_bytes"] is None
    assert system_metrics.uptime_seconds("") is None
    assert system_metrics.disk("/no/such/mount")["total_bytes"] is None


def test_uptime_is_the_first_figure() -> None:
    assert system_metrics.uptime_seconds("6148.96 24000.11\n") == 6148.96


def test_the_hosts_figures_have_the_heartbeats_shape(tmp_path: Path) -> None:
    metrics = system_metrics.read()
    assert set(metrics) == {"cpu_load_percent", "memory", "disk", "uptime_seconds"}
    assert metrics["memory"]["total_bytes"] > 0 and metrics["uptime_seconds"] > 0
    assert metrics["disk"]["mount"] == "/" and metrics["disk"]["free_bytes"] >= 0
    assert system_metrics.read(proc=tmp_path)["memory"]["used_bytes"] is None


def test_the_version_is_the_distributions() -> None:
    assert system_metrics.dtma_version()[0].isdigit()
