"""Running a graphviz layout engine: DOT text in, SVG text out. Knows nothing about diagrams.

Two engines take the same DOT: graphviz's own ``dot`` when it is on PATH, else ``graphviz-pure`` (a port of dot
shipped as a PyPI wheel, the ``notebook`` extra), found on PATH or beside the running interpreter, so a venv
with no system graphviz still draws SVG. With neither, :class:`DotNotFoundError` is raised, only by explicit
calls such as ``Diagram.svg()``; display hooks ask :func:`dot_available` first and simply leave the SVG out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..browser import in_browser
from ..errors import DotFailedError, DotNotFoundError

__all__ = ["DotNotFoundError", "DotFailedError", "ENGINES", "dot_executable", "dot_available", "render_svg"]

DOT_TIMEOUT = 10.0

#: layout engines, in order of preference: the system's graphviz, then the wheel-packaged port
ENGINES: tuple[str, ...] = ("dot", "graphviz-pure")

# graphviz-pure measures text with one font's metrics and reads a family list as one unknown name (falling back
# to Times, which is narrower than what a browser draws): it gets the first family of each list instead.
_FONT_LIST = re.compile(r'fontname="([^",]+),[^"]*"')


def _script_dirs() -> str:
    """Where pip puts a wheel's executables for this interpreter (a kernel's PATH may lack its venv's bin/)."""
    dirs = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return ":".join(dict.fromkeys(d for d in dirs if d))


def dot_executable() -> str | None:
    """Path of the first engine of :data:`ENGINES` found on PATH or beside the interpreter, or None (always in
    a browser, which cannot run one)."""
    if in_browser():
        return None
    for name in ENGINES:
        found = shutil.which(name) or shutil.which(name, path=_script_dirs())
        if found:
            return found
    return None


def dot_available() -> bool:
    return dot_executable() is not None


def render_svg(source: str, *, timeout: float = DOT_TIMEOUT) -> str:
    """SVG text of the DOT ``source``; raises :class:`DotNotFoundError` or :class:`DotFailedError`."""
    exe = dot_executable()
    if exe is None:
        raise DotNotFoundError()
    if Path(exe).name.startswith("graphviz-pure"):
        source = _FONT_LIST.sub(r'fontname="\1"', source)
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=source.encode("utf-8"), capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:  # removed between the lookup and the call
        raise DotNotFoundError() from exc
    except subprocess.TimeoutExpired as exc:
        raise DotFailedError(f"dot took longer than {timeout:g} s") from exc
    if proc.returncode != 0 or not proc.stdout:
        raise DotFailedError(f"dot exited with {proc.returncode}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8")
