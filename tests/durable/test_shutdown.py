"""durable.shutdown: a pool process told to stop cuts a blocking call short, and starts none."""

import os
import signal
import socket
import threading

import pytest

from durable import shutdown


class Cut(Exception):
    pass


@pytest.fixture
def pool_process(monkeypatch):
    """This process as a pool process that listens for the main process's word."""
    previous = signal.getsignal(shutdown.STOP_SIGNAL)
    monkeypatch.setattr(shutdown, "_asked_to_stop", False)
    monkeypatch.setattr(shutdown, "_in_flight", 0)
    shutdown.listen_in_pool_process()
    yield
    signal.signal(shutdown.STOP_SIGNAL, previous)


def test_a_blocking_socket_read_is_cut_short_with_the_callers_error(pool_process):
    ours, theirs = socket.socketpair()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), shutdown.STOP_SIGNAL))
    timer.start()
    try:
        with pytest.raises(Cut), shutdown.interruptible(Cut):
            ours.recv(1)  # the other end never writes: only the stop ends this
    finally:
        timer.cancel()
        ours.close()
        theirs.close()
    assert shutdown.stopping()
    assert shutdown._in_flight == 0


def test_once_stopping_no_call_is_started(pool_process):
    os.kill(os.getpid(), shutdown.STOP_SIGNAL)  # outside a call: only the flag is set
    assert shutdown.stopping()
    started = []
    with pytest.raises(Cut), shutdown.interruptible(Cut):
        started.append(True)
    assert started == []


def test_without_a_stop_the_call_runs_and_its_errors_pass_through(pool_process):
    with pytest.raises(ValueError), shutdown.interruptible(Cut):
        raise ValueError("the call's own error")
    with shutdown.interruptible(Cut):
        pass
    assert not shutdown.stopping()
    assert shutdown._in_flight == 0


def test_the_main_process_tells_its_pool_processes(monkeypatch):
    class Child:
        pid = 4242

    sent = []
    monkeypatch.setattr(shutdown.billiard, "active_children", lambda: [Child()])
    monkeypatch.setattr(shutdown.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    shutdown.tell_pool_processes(sig="SIGTERM", how="Warm")
    assert sent == [(4242, shutdown.STOP_SIGNAL)]
