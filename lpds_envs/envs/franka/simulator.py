"""Access to the RAI ``robotic`` simulator: importing it with a one-line error naming the extra, and the X server its
OpenGL renderer needs.

``robotic`` renders camera images through GLFW, which needs an X server even offscreen. Without ``DISPLAY`` it does not
raise a Python error: the process aborts (``std::terminate``) when the renderer is torn down. So before anything renders,
:func:`ensure_display` makes sure an X server is there: the one in ``DISPLAY``, or else a private ``Xvfb`` (Debian
package ``xvfb``) that it starts on a free display number and that ends with the process.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
from types import ModuleType

MISSING_EXTRA = "the Franka tasks need the RAI simulator: pip install 'lpds[franka]' (and Debian's liblapack3)"
#: when ``robotic`` is installed but its binary module cannot load (Debian's liblapack3 missing)
BROKEN_INSTALL = (
    "robotic is installed but cannot be loaded ({error}): install Debian's liblapack3 (apt-get install liblapack3)"
)
NO_DISPLAY = (
    "robotic renders through an X server: set DISPLAY, or install Xvfb (Debian: apt-get install xvfb) and lpds "
    "starts a private one"
)

_xvfb: subprocess.Popen | None = None


def import_robotic() -> ModuleType:
    """``import robotic``, or a one-line ``ImportError`` naming the ``franka`` extra (or the missing system library)."""
    if importlib.util.find_spec("robotic") is None:
        raise ImportError(MISSING_EXTRA)
    try:
        import robotic
    except ImportError as exc:  # e.g. "liblapack.so.3: cannot open shared object file"
        raise ImportError(BROKEN_INSTALL.format(error=str(exc).splitlines()[0])) from exc
    return robotic


def ensure_display() -> str:
    """The X display ``robotic`` will render on: ``$DISPLAY`` when set, else a private ``Xvfb`` started now (once per
    process; it exits with this process). Raises ``RuntimeError`` when there is neither."""
    global _xvfb
    if os.environ.get("DISPLAY"):
        return os.environ["DISPLAY"]
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError(NO_DISPLAY)
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it to the pipe once it accepts connections
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        preexec_fn=_die_with_parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()}); {NO_DISPLAY}")
    _xvfb = proc
    os.environ["DISPLAY"] = f":{number}"
    return os.environ["DISPLAY"]


def keep_alive(obj: object) -> object:
    """Never free ``obj`` (a ``robotic`` configuration, simulation or camera view): ``robotic`` 0.4.2 crashes
    (segmentation fault) when it destroys PhysX simulations in a process that made more than two, even at interpreter
    exit, so the envs leave them to the operating system. Costs their memory until the process ends (a few MB per
    env); each env makes one simulation for its lifetime."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    return obj


def _die_with_parent() -> None:
    """In the Xvfb child: receive SIGTERM when the process that started it ends (Linux ``PR_SET_PDEATHSIG``), after
    ``robotic``'s renderers have closed their connections (an ``atexit`` handler would run before they do)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
