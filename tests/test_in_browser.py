"""The package inside a web page (Pyodide): what the JupyterLite site's kernel can and cannot do.

A child interpreter plays the page: ``sys.platform`` is ``"emscripten"``, starting a thread or a subprocess and
connecting or binding a socket raise (as they do under Pyodide), and the event loop is shaped like Pyodide's:
executor jobs run inline and timers fire 0.5 ms early. The whole embedded path must work there, every figure
must draw (Mermaid, without SVG), and asking for real servers must give one clear error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAGE = textwrap.dedent('''
    import asyncio, socket, subprocess, sys, threading

    def refuse(what):
        def refused(*args, **kwargs):
            raise OSError(138, f"{what} in a browser")
        return refused

    threading.Thread.start = refuse("a thread")
    subprocess.Popen.__init__ = refuse("a subprocess")
    socket.socket.connect = socket.socket.connect_ex = socket.socket.bind = refuse("a socket")
    sys.platform = "emscripten"

    class WebLikeLoop(asyncio.SelectorEventLoop):
        """Pyodide's loop, as far as the package can tell: no executor threads, timers a little early."""

        def run_in_executor(self, executor, func, *args):
            future = self.create_future()
            try:
                future.set_result(func(*args))
            except Exception as exc:
                future.set_exception(exc)
            return future

        def call_at(self, when, callback, *args, context=None):
            return super().call_at(when - 0.0005, callback, *args, context=context)
''')

SCENARIO = textwrap.dedent('''
    import os
    import dynamo_nb
    from dynamo_nb import DistributedRuntime, diagram
    from dynamo_nb.cluster import LocalCluster
    from dynamo_nb.display import KINDS
    from dynamo_nb.errors import BackendUnavailableError, BinaryNotFoundError
    from dynamo_nb.notebook import backend_summary, notebook_runtime

    async def gen(request):
        for word in request.split():
            yield word

    async def main():
        os.environ["DYNAMO_NB_USE_CLUSTER"] = "1"        # asks for servers: a page cannot start them
        runtime = await notebook_runtime(name="page")
        print("SUMMARY", backend_summary(runtime))
        assert runtime.backend.kind == "embedded"
        worker = await DistributedRuntime.create(name="worker", lease_ttl=0.3)
        served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(gen).start()
        client = await runtime.endpoint("dynamo.Worker.generate").client()
        await client.wait_for_instances(timeout=5)
        assert await (await client.round_robin("a b c")).collect() == ["a", "b", "c"]
        for kind in KINDS:
            figure = diagram(worker if kind != "sequence" else served, kind)
            assert figure.mermaid.strip(), kind
        bundle = runtime._repr_mimebundle_()
        assert "text/vnd.mermaid" in bundle and "image/svg+xml" not in bundle, sorted(bundle)
        await worker.kill()
        for _ in range(400):                               # the lease runs out although timers fire early
            if not client.instance_ids():
                break
            await asyncio.sleep(0.01)
        assert client.instance_ids() == [] and runtime.backend.discovery.store.keys() == []
        try:
            await DistributedRuntime.create(etcd_endpoints="http://127.0.0.1:2379", nats_server="nats://127.0.0.1:4222")
        except BackendUnavailableError as exc:
            print("SERVERS", exc)
        try:
            await LocalCluster().start()
        except BinaryNotFoundError as exc:
            print("CLUSTER", exc)
        await runtime.shutdown()

    loop = WebLikeLoop()
    loop.run_until_complete(main())
    loop.close()
    print("DONE")
''')


def _run_in_page(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("ETCD_ENDPOINTS", "NATS_SERVER"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-c", PAGE + code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=ROOT)


def test_the_embedded_path_runs_in_a_page_and_real_servers_are_refused_clearly() -> None:
    done = _run_in_page(SCENARIO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert done.stdout.rstrip().endswith("DONE")
    assert "embedded" in lines["SUMMARY"] and "browser" in lines["SUMMARY"]
    for key in ("SERVERS", "CLUSTER"):
        assert "web browser (Pyodide)" in lines[key] and "embedded backend" in lines[key], lines[key]
    assert "pip install" not in lines["CLUSTER"]  # nothing to install would help in a page
    assert "http://127.0.0.1:2379" in lines["SERVERS"]


def test_the_page_double_refuses_what_pyodide_refuses() -> None:
    """Guards the test above against a double that lets everything through."""
    checks = textwrap.dedent('''
        import threading, subprocess, socket
        for name, act in [("thread", lambda: threading.Thread(target=print).start()),
                          ("subprocess", lambda: subprocess.run(["true"])),
                          ("socket", lambda: socket.create_connection(("127.0.0.1", 9)))]:
            try:
                act()
            except OSError as exc:
                print(name, "refused", exc.errno)
    ''')
    done = _run_in_page(checks)
    assert done.stdout.splitlines() == [
        "thread refused 138", "subprocess refused 138", "socket refused 138"], done.stderr
