"""Build the JupyterLite site: the walkthroughs run in the reader's browser, with nothing fetched from elsewhere.

Run by ``scripts/lite`` with the build tools of ``lite/tools.txt``. Pyodide's core comes from the npm package the
kernel pins, every wheel from PyPI at the versions of ``lite/wheels.txt``, the project's own wheel from this
checkout; all are hosted inside the site beside a lock file rewritten for exactly those wheels, because the pip
packages hold no Pyodide and a kernel that falls back on a CDN hangs silently offline. Downloads are cached
(``~/.cache/dynamo_nb/lite`` or ``$DYNAMO_NB_CACHE/lite``), so a rebuild needs no network and takes seconds.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "lite"
CACHE = Path(os.environ.get("DYNAMO_NB_CACHE") or Path.home() / ".cache" / "dynamo_nb") / "lite"

#: walkthroughs that cannot run in a page, and why (the build says so; the site leaves them out, and their zh twins)
NOT_IN_BROWSER = {
    "08-services-and-config.ipynb": "its second half serves the graph as OS processes with the command line",
    "09-real-dynamo.ipynb": "it runs a real Dynamo worker process beside real etcd and NATS servers",
    "11-debugging.ipynb": "it breaks a real LocalCluster of etcd and NATS on purpose, one fault at a time",
}
#: the kernel the site's notebooks ask for: the in-browser one, so no "Select Kernel" dialog opens
LITE_KERNELSPEC = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
#: Pyodide's core files, all the site needs of the npm package (no source maps, type stubs or demo pages)
PYODIDE_CORE = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
#: markers of the page's interpreter, to read wheels' Requires-Dist
BROWSER_MARKERS = {"python_version": "3.14", "python_full_version": "3.14.2", "sys_platform": "emscripten",
                   "platform_system": "Emscripten", "platform_machine": "wasm32", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a pin file, by normalized name."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[normalize(name)] = version.strip()
    return found


def pyodide_version() -> str:
    from jupyterlite_pyodide_kernel.constants import PYODIDE_VERSION

    return str(PYODIDE_VERSION)


def pyodide_core(version: str, dest: Path) -> None:
    """Pyodide's core from the npm package ``pyodide`` (cached as its tarball) into ``dest``."""
    tarball = CACHE / f"pyodide-{version}.tgz"
    if not tarball.exists():
        log(f"npm pack pyodide@{version}")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"pyodide@{version}", "--silent", "--pack-destination", str(CACHE)],
                       check=True, stdout=subprocess.DEVNULL)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        for name in PYODIDE_CORE:
            member = tar.getmember(f"package/{name}")
            source = tar.extractfile(member)
            assert source is not None
            (dest / name).write_bytes(source.read())


def _wheel_of(directory: Path, name: str, version: str) -> Path | None:
    for wheel in directory.glob("*.whl"):
        dist, ver = wheel.name.split("-")[:2]
        if normalize(dist) == name and ver == version:
            return wheel
    return None


def pypi_wheels(wanted: dict[str, str]) -> list[Path]:
    """The pinned wheels, downloaded once into the cache (pure Python, for the page's Python 3.14)."""
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [f"{name}=={version}" for name, version in wanted.items() if not _wheel_of(folder, name, version)]
    if missing:
        log(f"pip download {' '.join(missing)}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", "--python-version", "3.14", "--implementation", "py",
                        "--dest", str(folder), *missing], check=True, stderr=subprocess.PIPE, text=True)
    found = []
    for name, version in wanted.items():
        wheel = _wheel_of(folder, name, version)
        if wheel is None:
            raise SystemExit(f"no wheel for {name}=={version} in {folder}")
        found.append(wheel)
    return found


def project_wheel(out: Path) -> Path:
    """This checkout as a wheel, built from a copy (a build writes ``build/`` beside the sources)."""
    with tempfile.TemporaryDirectory(prefix="dnb-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "dynamo_nb", src / "dynamo_nb", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(out), str(src)], check=True,
                       stdout=subprocess.DEVNULL)
    (wheel,) = out.glob("dynamo_nb-*.whl")
    return wheel


def _metadata(wheel: Path) -> tuple[email.message.Message, list[str]]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(zf.read(meta).decode("utf-8"))
        top = next((n for n in names if n.endswith(".dist-info/top_level.txt")), None)
        imports = zf.read(top).decode().split() if top else []
    if not imports:
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        imports = sorted(t[:-3] if t.endswith(".py") else t for t in tops)
    return message, imports


def _requires(message: email.message.Message) -> list[str]:
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    found = []
    for line in message.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or Marker(str(req.marker)).evaluate(BROWSER_MARKERS):
            found.append(normalize(req.name))
    return found


def lock_for(core_lock: dict, wheels: list[Path]) -> dict:
    """Pyodide's lock, rewritten to list exactly ``wheels`` (hashes, names and dependencies read from them)."""
    known = {normalize(name): entry for name, entry in core_lock["packages"].items()}
    supplied: dict[str, tuple[Path, email.message.Message, list[str]]] = {}
    for wheel in wheels:
        message, imports = _metadata(wheel)
        supplied[normalize(message["Name"])] = (wheel, message, imports)
    packages = {}
    for name, (wheel, message, imports) in sorted(supplied.items()):
        base = known.get(name, {})
        packages[name] = {
            "name": name,
            "version": message["Version"],
            "file_name": wheel.name,
            "install_dir": "site",
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "package_type": "package",
            "imports": base.get("imports") or imports,
            # only what is supplied: PyPI's networkx needs neither numpy nor matplotlib (wasm builds not on PyPI)
            "depends": sorted(d for d in dict.fromkeys(_requires(message)) if d in supplied and d != name),
            "unvendored_tests": False,
        }
    return {"info": core_lock["info"], "packages": packages}


def notebooks(dest: Path) -> list[str]:
    """Every walkthrough that can run in a page (``notebooks/`` and ``notebooks/zh/``), set to the lite kernel."""
    taken = []
    for folder in (ROOT / "notebooks", ROOT / "notebooks" / "zh"):
        for path in sorted(folder.glob("*.ipynb")):
            relative = path.relative_to(ROOT / "notebooks")
            if path.name in NOT_IN_BROWSER:
                log(f"left out {relative}: {NOT_IN_BROWSER[path.name]}, which a browser cannot do")
                continue
            notebook = json.loads(path.read_text(encoding="utf-8"))
            notebook.setdefault("metadata", {})["kernelspec"] = dict(LITE_KERNELSPEC)
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            taken.append(str(relative))
    return taken


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _clear(output: Path) -> None:
    """Remove a previous site, and refuse to remove anything that does not look like one."""
    if output.exists() and any(output.iterdir()):
        if not (output / "jupyter-lite.json").exists():
            raise SystemExit(f"{output} is not empty and holds no jupyter-lite.json: not removing it")
        shutil.rmtree(output)


def build(output: Path) -> dict:
    started = time.monotonic()
    version = pyodide_version()
    with tempfile.TemporaryDirectory(prefix="dnb-lite-") as tmp:
        stage = Path(tmp)  # a fresh lite dir each time: no stale .jupyterlite.doit.db
        shutil.copy2(HERE / "jupyter-lite.json", stage / "jupyter-lite.json")
        hosted = stage / "static" / "pyodide"
        pyodide_core(version, hosted)
        wheels = [*pypi_wheels(pins(HERE / "wheels.txt")), project_wheel(stage / "wheel")]
        for wheel in wheels:
            shutil.copy2(wheel, hosted / wheel.name)
        core_lock = json.loads((hosted / "pyodide-lock.json").read_text())
        (hosted / "pyodide-lock.json").write_text(json.dumps(lock_for(core_lock, wheels), indent=1) + "\n")
        taken = notebooks(stage / "files")
        _clear(output)
        log(f"jupyter lite build -> {output}")
        subprocess.run([sys.executable, "-m", "jupyter", "lite", "build", "--lite-dir", str(stage),
                        "--contents", str(stage / "files"), "--output-dir", str(output.resolve()),
                        "--no-sourcemaps"], cwd=stage, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONWARNINGS": "ignore::UserWarning"})  # optional extras it lacks
    figures = {"pyodide": version, "notebooks": taken, "seconds": round(time.monotonic() - started, 1),
               "site_mb": round(_size(output) / 1e6, 1),
               "pyodide_mb": round(_size(output / "static" / "pyodide") / 1e6, 1)}
    (output / "build.json").write_text(json.dumps(figures, indent=1) + "\n")
    log(f"site {figures['site_mb']} MB (Pyodide and wheels {figures['pyodide_mb']} MB), "
        f"{len(taken)} notebooks, built in {figures['seconds']} s: {output}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_site", help="where the site goes (default _site/)")
    build(parser.parse_args().output)


if __name__ == "__main__":
    main()
