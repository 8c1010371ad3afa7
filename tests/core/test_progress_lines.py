"""Without a terminal (SLURM logs, nohup, pytest) long work reports progress as timed log lines."""

from __future__ import annotations

import logging

from tests.support.loglines import Collect
from tissuebert import progress


def _collector() -> tuple[logging.Logger, Collect]:
    logger = logging.getLogger("tissuebert.progress")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler


def test_counter_logs_done_total_share_and_eta(monkeypatch):
    monkeypatch.setattr(progress, "progress_enabled", lambda: False)
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    logger, handler = _collector()
    try:
        with progress.counter("scoring reads", 40, "reads") as advance:
            advance(10)
            advance(30)
        assert [line.split(",")[0] for line in handler.lines] == [
            "scoring reads: 10 / 40 reads (25%)", "scoring reads: 40 / 40 reads (100%)"]
        assert handler.lines[-1].endswith("ETA 0 s")
        assert " reads/s" in handler.lines[0]
    finally:
        logger.removeHandler(handler)


def test_track_yields_every_item_and_stays_quiet_between_heartbeats(monkeypatch):
    monkeypatch.setattr(progress, "progress_enabled", lambda: False)
    logger, handler = _collector()
    try:
        monkeypatch.setattr(progress, "HEARTBEAT_S", 3600.0)
        assert list(progress.track(range(5), "quiet")) == [0, 1, 2, 3, 4]
        assert handler.lines == []
        monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
        assert list(progress.track(iter("abc"), "no length")) == ["a", "b", "c"]
        assert [line.split(",")[0] for line in handler.lines] == ["no length: 1 items", "no length: 2 items",
                                                                  "no length: 3 items"]
    finally:
        logger.removeHandler(handler)
