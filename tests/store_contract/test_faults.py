"""The Store contract, its life cycle: a backup made while it runs, and what happens when
storage fails: a write that cannot be committed in time raises ``StoreUnavailable`` with a
reason (never a driver's error), ``health`` says so, and the store works again once the storage
does; a closed store refuses writes the same way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.store_contract.conftest import T0, Backend, event
from xtracker_server.domain.entities import InboxDraft, InboxOutcome
from xtracker_server.store.api import BackupError, FaultReason, Store, StoreUnavailable


def _until_stored(backend: Backend, store: Store, draft: InboxDraft) -> InboxOutcome:
    """Write ``draft`` until it is acknowledged (a busy machine may miss a short deadline)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return backend.run(store.record_event(draft))
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise


def test_a_write_the_storage_cannot_take_raises_store_unavailable(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.open_another(timeout_s=0.5)
    try:
        _until_stored(backend, store, event(space, "contact", "f1", eid="before"))
        with backend.storage_down(), pytest.raises(StoreUnavailable) as refused:
            backend.run(store.record_event(event(space, "contact", "f1", eid="down")))
        assert refused.value.reason in (FaultReason.TIMEOUT, FaultReason.LOCKED)
        fault = store.health.fault
        assert fault is not None and fault.reason is refused.value.reason
        _until_stored(backend, store, event(space, "contact", "f1", eid="after"))
        assert store.health.fault is None  # recovered
        backend.run(store.probe())
    finally:
        backend.run(store.close())


def test_a_batch_the_storage_cannot_take_stores_none_of_its_events(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.open_another(timeout_s=0.5)
    try:
        _until_stored(backend, store, event(space, "contact", "g0", eid="before"))
        batch = [event(space, "contact", f"g{i}", eid="down") for i in range(50)]
        with backend.storage_down(), pytest.raises(StoreUnavailable) as refused:
            backend.run(store.record_events(batch))
        assert refused.value.reason in (FaultReason.TIMEOUT, FaultReason.LOCKED)
        # Writes are done in order: once a later one is stored, the batch was done or dropped.
        _until_stored(backend, store, event(space, "contact", "g0", eid="after"))
        assert sorted(e.eid or "" for e in backend.run(store.list_events(space))) == [
            "after",
            "before",
        ]
    finally:
        backend.run(store.close())


def test_a_closed_store_refuses_writes(backend: Backend) -> None:
    store = backend.open_another(timeout_s=5.0)
    assert store.writer_running()
    backend.run(store.close())
    assert not store.writer_running()
    with pytest.raises(StoreUnavailable) as refused:
        backend.run(store.create_space("after-close", T0))
    assert refused.value.reason is FaultReason.WRITER_DOWN


def test_a_backup_is_a_copy_made_while_writes_go_on(backend: Backend, tmp_path: Path) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.run(store.record_event(event(space, "contact", "b1")))
    target = tmp_path / "copy.db"
    done = backend.run(store.backup(str(target)))
    assert done.path == str(target) and done.bytes == target.stat().st_size > 0
    with pytest.raises(BackupError):
        backend.run(store.backup(str(target)))  # it exists
    backend.run(store.record_event(event(space, "contact", "b2")))
    assert backend.run(store.backup(str(target), force=True)).bytes > 0
    assert store.writer_restarts() == 0


def test_a_statistics_refresh_right_after_another_analyses_nothing(backend: Backend) -> None:
    store = backend.store
    analysed = backend.run(store.refresh_stats())
    assert all(isinstance(name, str) for name in analysed)
    assert backend.run(store.refresh_stats()) == []
    backend.space()  # the store works on after it
