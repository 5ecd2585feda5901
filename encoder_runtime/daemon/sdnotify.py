"""systemd ``sd_notify`` in the standard library (no libsystemd, no extra package).

``notify("READY=1")`` sends one datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace); it is a no-op returning False when the variable is unset (not under
systemd). :func:`watchdog_period` says how often to send ``WATCHDOG=1`` (half of
``$WATCHDOG_USEC``, as the systemd docs recommend), or None when the watchdog is off.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STATUS=..."``, ``"WATCHDOG=1"``, ``"STOPPING=1"``)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_period() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None if systemd did not ask for them."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return max(int(usec) / 2e6, 0.01)
    except ValueError:
        return None
