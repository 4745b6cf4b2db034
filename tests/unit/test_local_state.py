from pathlib import Path

from streams.engine.checkpoint import CLEAN_SHUTDOWN, prepare_local_state


def test_store_is_kept_after_a_clean_stop_and_dropped_after_a_crash(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables"
    (tables / "state-0.db").mkdir(parents=True)
    (tmp_path / CLEAN_SHUTDOWN).touch()
    assert prepare_local_state(tmp_path, tables) is True
    assert tables.exists()
    assert not (tmp_path / CLEAN_SHUTDOWN).exists()  # this run must earn it again
    assert prepare_local_state(tmp_path, tables) is False
    assert not tables.exists()


def test_a_new_worker_has_nothing_to_drop(tmp_path: Path) -> None:
    assert prepare_local_state(tmp_path, tmp_path / "v1" / "tables") is True
