"""The import pauses the cyclic garbage collector and always gives it back as it was."""
import gc
import threading

import pytest

from app.services.statement_import import _collector_paused


@pytest.fixture(autouse=True)
def _collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_resumed_after():
    with _collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_after_an_error():
    with pytest.raises(RuntimeError):
        with _collector_paused():
            raise RuntimeError("import failed")
    assert gc.isenabled()


def test_stays_disabled_when_it_was_disabled_before():
    gc.disable()
    with _collector_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_imports_resume_it_when_the_last_one_ends():
    first_in, second_done = threading.Event(), threading.Event()
    seen = []

    def first():
        with _collector_paused():
            first_in.set()
            second_done.wait(5)
            seen.append(gc.isenabled())  # the other import has ended: still paused for this one

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with _collector_paused():
        pass
    second_done.set()
    thread.join(5)
    assert seen == [False]
    assert gc.isenabled()
