"""The control panel driven from Python: clicks become tasks on the loop, results and bad input show inline.

Each test clicks buttons with ``button.click()`` and awaits the panel's tasks, as the kernel would run them.
No test may leave an error in the log or an exception in a task: the ``quiet`` fixture checks both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

import ipywidgets as widgets
import pytest

from dynamo_nb import DistributedRuntime, ManualClock
from dynamo_nb.backends.embedded import EmbeddedWorld
from dynamo_nb.core.recorder import Kind
from dynamo_nb.display.live import DEFAULT_INTERVAL, LiveView
from dynamo_nb.widgets.serve import SLOW_DELAY
from dynamo_nb.widgets import (
    BUILTIN_HANDLERS,
    ControlPanel,
    HandlerSpec,
    TaskRunner,
    WorkerPool,
)
from support import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail the test if anything reached the log at ERROR or the loop's exception handler."""
    caplog.set_level(logging.WARNING)
    errors: list[dict[str, Any]] = []
    yield errors
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    assert not errors, errors


@pytest.fixture
async def runtime(quiet: list[dict[str, Any]]) -> AsyncIterator[DistributedRuntime]:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: quiet.append(context))
    rt = await DistributedRuntime.create(world=EmbeddedWorld(), name="notebook", health_check_interval=0.05)
    yield rt
    await rt.shutdown()


@pytest.fixture
async def panel(runtime: DistributedRuntime) -> AsyncIterator[ControlPanel]:
    p = ControlPanel(runtime, lease_ttl=1.0)
    yield p
    await p.wait_idle()
    assert p.status.text == "", p.status.text  # no action failed unexpectedly
    await p.aclose()


async def serve(panel: ControlPanel, **fields: str) -> None:
    form = panel.serve_form
    for key, value in fields.items():
        getattr(form, key).value = value
    form.serve_button.click()
    await panel.wait_idle()


async def call(panel: ControlPanel, request: Any = None, routing: str = "round_robin") -> None:
    form = panel.call_form
    if request is not None:
        form.request.value = request if isinstance(request, str) else json.dumps(request)
    form.routing.value = routing
    form.call_button.click()
    await panel.wait_idle()


async def keys(runtime: DistributedRuntime, prefix: str = "") -> list[str]:
    return [kv["key"] for kv in await runtime.etcd_client().kv_get_prefix(prefix)]


# -- serving --------------------------------------------------------------------------------------------


async def test_serve_click_registers_an_instance_in_a_new_worker(panel: ControlPanel, runtime: DistributedRuntime) -> None:
    await serve(panel, namespace="dynamo", component="Processor", endpoint="generate")
    assert len(panel.instances) == 1
    inst = panel.instances[0]
    assert inst.worker.runtime is not runtime and inst.worker.runtime.lease_ttl == 1.0
    assert await keys(runtime, "dynamo/components/Processor/") == [inst.served.key]
    assert panel.serve_form.status.level == "ok" and f"{inst.instance_id:x}" in panel.serve_form.status.text
    # The call form now points at the new endpoint, with that instance in its dropdown.
    assert panel.call_form.target.value == "dynamo.Processor.generate"
    assert [v for _, v in panel.call_form.instance.options] == [inst.instance_id]
    assert json.loads(panel.call_form.request.value) == BUILTIN_HANDLERS["tokens"].example


async def test_round_robin_alternates_between_workers_and_streams_every_item(panel: ControlPanel) -> None:
    await serve(panel, endpoint="generate")
    await serve(panel, endpoint="generate")
    ids = sorted(i.instance_id for i in panel.instances)
    assert sorted(v for _, v in panel.call_form.instance.options) == ids
    seen = []
    for _ in range(4):
        await call(panel, {"prompt": "a b c", "delay": 0})
        assert panel.call_form.items == [{"index": i, "token": t} for i, t in enumerate("abc")]
        assert panel.call_form.status.level == "ok"
        seen.append(panel.call_form.stream.instance_id)
    assert seen[0] != seen[1] and seen[0::2] == [seen[0]] * 2 and set(seen) == set(ids)


async def test_items_appear_while_the_stream_is_still_running(runtime: DistributedRuntime) -> None:
    gate = asyncio.Event()

    async def gated(request):
        """One item, then waits for the test."""
        yield {"token": "one"}
        await gate.wait()
        yield {"token": "two"}

    p = ControlPanel(runtime, {"gated": gated}, lease_ttl=1.0, handler="gated")
    try:
        await serve(p)
        form = p.call_form
        form.call_button.click()
        await eventually(lambda: len(form.items) == 1)
        assert form.calling and '"token": "one"' in form.output_text and "complete" not in form.status.text
        assert form.cancel_button.disabled is False and form.call_button.disabled is True
        gate.set()
        await p.wait_idle()
        assert len(form.items) == 2 and form.status.text.startswith("complete: 2 item(s)")
    finally:
        await p.aclose()


async def test_direct_routing_uses_the_instance_chosen_in_the_dropdown(panel: ControlPanel) -> None:
    await serve(panel)
    await serve(panel)
    form = panel.call_form
    form.routing.value = "direct"
    assert form.instance.disabled is False
    for _, instance_id in form.instance.options:
        form.instance.value = instance_id
        await call(panel, {"prompt": "x", "delay": 0}, routing="direct")
        assert form.stream.instance_id == instance_id


async def test_random_routing_reaches_a_live_instance(panel: ControlPanel) -> None:
    await serve(panel, handler="echo")
    await call(panel, {"hello": 1}, routing="random")
    assert panel.call_form.items == [{"echo": {"hello": 1}}]


async def test_a_second_endpoint_in_the_same_worker_shares_its_service(panel: ControlPanel) -> None:
    await serve(panel, endpoint="generate")
    worker = panel.instances[0].worker
    assert [v for _, v in panel.serve_form.worker.options][1:] == [worker.name]
    panel.serve_form.worker.value = worker.name
    await serve(panel, endpoint="chat/completions", handler="counter")
    assert len(panel.pool.workers) == 1 and len(panel.instances) == 2
    services = worker.runtime.registry.summary()["services"]
    assert services == {"dynamo|Processor": ["chat/completions", "generate"]}


async def test_notebook_handlers_join_the_dropdown_and_serve(runtime: DistributedRuntime) -> None:
    async def shout(request):
        """Upper-cases the prompt."""
        yield {"loud": str(request["prompt"]).upper()}

    p = ControlPanel(runtime, {"shout": shout}, lease_ttl=1.0, handler="shout")
    try:
        assert "shout" in [v for _, v in p.serve_form.handler.options]
        await serve(p)
        await call(p, {"prompt": "hi"})
        assert p.call_form.items == [{"loud": "HI"}]
    finally:
        await p.aclose()


def test_a_handler_that_is_not_an_async_generator_is_refused_when_the_panel_is_built() -> None:
    def not_async(request):
        return request

    with pytest.raises(TypeError, match="async generator"):
        HandlerSpec("bad", not_async)


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, fragment", [
    ("namespace", "Production", "invalid namespace name 'Production': character 'P' is not allowed"),
    ("namespace", "", "must not be empty"),
    ("component", "my processor", "invalid component name 'my processor': character ' ' is not allowed"),
    ("endpoint", "chat//completions", "empty segment"),
    ("endpoint", "gen.erate", "character '.' is not allowed"),
])
async def test_a_bad_name_shows_its_error_beside_the_field_and_creates_nothing(
        panel: ControlPanel, runtime: DistributedRuntime, field: str, value: str, fragment: str) -> None:
    form = panel.serve_form
    getattr(form, field).value = value
    assert fragment in form.messages[field].text and form.messages[field].level == "error"
    assert "dnb-error" in form.messages[field]._dom_classes
    form.serve_button.click()
    await panel.wait_idle()
    assert form.status.level == "error" and "nothing was created" in form.status.text
    assert panel.pool.workers == [] and await keys(runtime) == []
    getattr(form, field).value = {"namespace": "dynamo", "component": "Processor", "endpoint": "generate"}[field]
    assert form.messages[field].text == ""


async def test_invalid_json_is_reported_beside_the_request_and_nothing_is_sent(panel: ControlPanel) -> None:
    await serve(panel)
    worker = panel.instances[0].worker.runtime
    await call(panel, '{"prompt": "unterminated')
    form = panel.call_form
    assert form.request_message.level == "error"
    assert form.request_message.text.startswith("invalid JSON: Unterminated string") and "column 12" in form.request_message.text
    assert "nothing was sent" in form.status.text and form.items == []
    assert worker.recorder.select("request") == []
    await call(panel, '{"prompt": "fixed", "delay": 0}')
    assert form.request_message.text == "" and form.items == [{"index": 0, "token": "fixed"}]


async def test_calling_with_no_instances_says_so_at_once(panel: ControlPanel, runtime: DistributedRuntime) -> None:
    form = panel.call_form
    form.target.value = "dynamo.Nobody.generate"
    await panel.wait_idle()
    assert form.instance_message.level == "warning"
    await call(panel, {"prompt": "anyone?"})
    assert "no instances of endpoint 'dynamo.Nobody.generate' are live" in form.instance_message.text
    assert form.status.level == "error" and form.items == [] and runtime.recorder.select("call") == []


async def test_a_malformed_call_target_is_reported_beside_it(panel: ControlPanel) -> None:
    form = panel.call_form
    form.target.value = "dynamo.Processor"
    await panel.wait_idle()
    assert "not of the form 'namespace.Component.endpoint'" in form.target_message.text
    form.target.value = "Dynamo.Processor.generate"
    await panel.wait_idle()
    assert "invalid namespace name 'Dynamo'" in form.target_message.text
    await call(panel, {"prompt": "x"})
    assert form.status.level == "error" and "nothing was sent" in form.status.text


async def test_direct_routing_without_a_live_instance_is_refused(panel: ControlPanel) -> None:
    await serve(panel)
    form = panel.call_form
    form.routing.value = "direct"
    await panel.pool.stop(panel.instances[0])
    await eventually(lambda: [v for _, v in form.instance.options] == [-1])
    await call(panel, {"prompt": "x"}, routing="direct")
    assert form.status.level == "error" and form.items == []


async def test_a_failing_handler_ends_the_stream_with_its_error_and_keeps_serving(panel: ControlPanel) -> None:
    await serve(panel, handler="fails")
    form = panel.call_form
    await call(panel, {"message": "boom", "delay": 0})
    assert form.items == [{"step": 1, "note": "about to fail"}]
    assert form.status.level == "error" and "handler raised RuntimeError" in form.status.text and "boom" in form.status.text
    assert "✗ handler raised RuntimeError" in form.output_text
    await call(panel, {"message": "again", "delay": 0})
    assert form.items == [{"step": 1, "note": "about to fail"}] and "again" in form.last_error
    assert panel.instances[0].served.state.value in ("Running", "Healthy")


async def test_cancel_closes_the_stream_and_the_handler_stops(panel: ControlPanel) -> None:
    await serve(panel, handler="counter")
    form = panel.call_form
    form.request.value = json.dumps({"to": 100, "delay": 0.05})
    form.call_button.click()
    await eventually(lambda: len(form.items) >= 1)
    form.cancel_button.click()
    await panel.wait_idle()
    assert form.status.level == "warning" and form.status.text.startswith("cancelled after")
    assert 0 < len(form.items) < 100 and "cancelled" in form.output_text
    worker = panel.instances[0].worker.runtime
    await eventually(lambda: bool(worker.recorder.select("response")))
    assert worker.recorder.select("response")[-1].detail["outcome"] in ("cancelled", "stopped", "broken")


async def test_serving_the_same_endpoint_twice_in_one_worker_is_reported(panel: ControlPanel) -> None:
    await serve(panel)
    panel.serve_form.worker.value = panel.instances[0].worker.name
    await serve(panel)
    assert panel.serve_form.status.level == "error" and "already served by this runtime" in panel.serve_form.status.text
    assert len(panel.instances) == 1


# -- stop and kill --------------------------------------------------------------------------------------


async def test_stop_is_graceful_and_the_instance_leaves_the_dropdown(panel: ControlPanel, runtime: DistributedRuntime) -> None:
    await serve(panel)
    inst = panel.instances[0]
    row = panel.instance_table.row(inst)
    row.stop_button.click()
    await panel.wait_idle()
    assert inst.served.state.value == "Deregistered" and inst.gone
    assert await keys(runtime, "dynamo/") == []
    await eventually(lambda: [v for _, v in panel.call_form.instance.options] == [-1])
    assert row.stop_button.disabled and "Deregistered" in row.label.value
    assert not inst.worker.killed and inst.worker.alive  # the worker itself keeps running


async def test_fault_toggles_cause_each_fault_and_end_it(panel: ControlPanel, runtime: DistributedRuntime) -> None:
    await serve(panel, endpoint="generate")
    await serve(panel, endpoint="generate")
    victim, other = panel.instances
    row = panel.instance_table.row(victim)
    row.fault_buttons["cut_off"].value = True
    await panel.wait_idle()
    assert victim.served.key in await keys(runtime, "dynamo/")  # etcd still lists it
    assert "cut off from NATS" in row.label.value
    for _ in range(3):  # calls fail over to the other instance, none is lost
        await call(panel, {"prompt": "a b", "delay": 0}, "round_robin")
        assert panel.call_form.status.level == "ok" and panel.call_form.stream.instance_id == other.instance_id
    row.fault_buttons["cut_off"].value = False
    await panel.wait_idle()
    row.fault_buttons["slow"].value = True
    await panel.wait_idle()
    assert victim.served.delay == SLOW_DELAY and "slow" in row.label.value
    row.fault_buttons["slow"].value = False
    row.fault_buttons["keepalive"].value = True
    await panel.wait_idle()
    assert "keep-alive paused" in row.label.value
    old_key = victim.served.key
    for _ in range(100):  # the 1 s lease runs out while the worker keeps serving
        if old_key not in await keys(runtime, "dynamo/"):
            break
        await asyncio.sleep(0.05)
    assert old_key not in await keys(runtime, "dynamo/") and not victim.worker.killed
    row.fault_buttons["keepalive"].value = False
    await panel.wait_idle()
    await eventually(lambda: victim.served.key != old_key, 5)  # registered anew under a new lease
    recorded = [(r.detail["fault"], r.detail["active"]) for r in victim.worker.runtime.recorder.select("fault")]
    assert recorded == [("cut_off", True), ("cut_off", False), ("slow", True), ("slow", False),
                        ("keepalive", True), ("keepalive", False)]
    assert "cut off" not in row.label.value and "slow" not in row.label.value


async def test_kill_counts_the_lease_down_then_the_instance_disappears(quiet: list[dict[str, Any]]) -> None:
    clock = ManualClock()  # the lease runs out when the test says so, however busy the machine is
    rt = await DistributedRuntime.create(world=EmbeddedWorld(clock=clock), name="notebook",
                                         health_check_interval=0.05)
    panel = ControlPanel(rt, lease_ttl=4.0)
    try:
        await serve(panel)
        panel.serve_form.lease_ttl.value = 60.0  # keep-alives run on the loop's time, not the manual clock
        await serve(panel)
        victim, survivor = panel.instances
        table = panel.instance_table
        row = table.row(victim)
        row.kill_button.click()
        await panel.wait_idle()
        assert victim.worker.killed and row.kill_button.disabled and row.stop_button.disabled
        # The key outlives the process until the lease runs out, and the countdown shows it.
        assert victim.served.key in await keys(rt, "dynamo/")
        await table.tick()
        assert panel.pool.lease_remaining(victim.worker) == 4.0
        assert row.countdown.layout.visibility == "visible" and row.countdown.value == 4.0
        assert "lease expires in 4.0 s" in row.label.value
        assert victim.instance_id in [v for _, v in panel.call_form.instance.options]
        clock.advance(2.5)
        await table.tick()
        assert row.countdown.value == 1.5 and "lease expires in 1.5 s" in row.label.value
        assert panel.pool.lease_remaining(survivor.worker) is None  # not killed: no countdown
        clock.advance(1.5)  # the lease expires: etcd deletes the key, every watcher sees it
        await table.tick()
        assert await keys(rt, "dynamo/") == [survivor.served.key]
        assert victim.gone and "lease expired, key deleted" in row.label.value
        assert row.countdown.layout.visibility == "hidden"
        await eventually(lambda: [v for _, v in panel.call_form.instance.options] == [survivor.instance_id])
        await call(panel, {"prompt": "still here", "delay": 0})
        assert panel.call_form.stream.instance_id == survivor.instance_id and len(panel.call_form.items) == 2
    finally:
        await panel.wait_idle()
        await panel.aclose()
        await rt.shutdown()


async def test_the_countdown_ticks_by_itself_until_the_key_is_gone(quiet: list[dict[str, Any]]) -> None:
    clock = ManualClock()
    rt = await DistributedRuntime.create(world=EmbeddedWorld(clock=clock), name="notebook")
    panel = ControlPanel(rt, lease_ttl=4.0)
    try:
        await serve(panel)
        victim = panel.instances[0]
        row = panel.instance_table.row(victim)
        row.kill_button.click()
        await panel.wait_idle()
        clock.advance(3.0)
        await eventually(lambda: "lease expires in 1.0 s" in row.label.value)  # the table's own ticker saw it
        clock.advance(1.0)
        await eventually(lambda: "lease expired, key deleted" in row.label.value)
        assert row.countdown.layout.visibility == "hidden"
    finally:
        await panel.aclose()
        await rt.shutdown()


async def test_clear_finished_removes_rows_of_stopped_and_expired_instances(panel: ControlPanel) -> None:
    await serve(panel)
    await serve(panel)
    await panel.pool.stop(panel.instances[0])
    assert len(panel.instance_table.rows_box.children) == 2
    panel.instance_table.clear_button.click()
    assert len(panel.instances) == 1 and len(panel.instance_table.rows_box.children) == 1


# -- display --------------------------------------------------------------------------------------------


async def test_text_plain_summarises_the_panel(panel: ControlPanel) -> None:
    await serve(panel)
    await call(panel, {"prompt": "a b", "delay": 0})
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    inst = panel.instances[0]
    assert text.startswith("ControlPanel on notebook (embedded)")
    assert f"worker-1   dynamo.Processor.generate  {inst.instance_id:x}" in text
    assert "last call: dynamo.Processor.generate (round_robin) → 2 item(s), complete" in text


def _walk(widget: widgets.Widget) -> list[widgets.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found.extend(_walk(child))
    return found


async def test_every_interactive_widget_has_a_stable_css_class(panel: ControlPanel) -> None:
    await serve(panel)
    interactive = (widgets.Button, widgets.ToggleButton, widgets.Text, widgets.Textarea, widgets.Dropdown, widgets.ToggleButtons,
                   widgets.Combobox, widgets.BoundedFloatText)
    found = [w for w in _walk(panel) if isinstance(w, interactive)]
    assert len(found) >= 14
    unnamed = [w for w in found if not any(c.startswith("dnb-") for c in w._dom_classes)]
    assert unnamed == []
    classes = {c for w in found for c in w._dom_classes}
    for expected in ("dnb-namespace", "dnb-component", "dnb-endpoint", "dnb-handler", "dnb-worker",
                     "dnb-lease-ttl", "dnb-serve-button", "dnb-stop-button", "dnb-kill-button",
                     "dnb-call-target", "dnb-request", "dnb-routing", "dnb-instance", "dnb-call-button",
                     "dnb-cancel-button", "dnb-clear-button", "dnb-fault-keepalive", "dnb-fault-cut-off",
                     "dnb-fault-slow"):
        assert expected in classes


async def test_the_diagram_beside_the_controls_follows_the_system(panel: ControlPanel) -> None:
    pane = panel.diagram
    assert pane is not None and pane.kind.value == "hierarchy"
    pane.kind.value = "lifecycle"  # nothing served yet: no instance has a story to tell
    assert pane.view is None and pane.out.outputs[0]["data"] == {"text/plain": "serve an endpoint to see it here"}
    pane.kind.value = "hierarchy"
    await pane.settle()
    before = pane.frames
    await serve(panel)
    await pane.settle()
    assert pane.frames > before and "generate" in pane.mermaid
    data = pane.out.outputs[0]["data"]
    assert "text/vnd.mermaid" in data and "text/html" not in data
    drawn = pane.mermaid
    await panel.pool.stop(panel.instances[0])
    await pane.settle()
    assert pane.mermaid != drawn
    pane.kind.value = "lifecycle"
    await pane.settle()
    assert "stateDiagram" in pane.mermaid and "Deregistered" in pane.mermaid


async def test_the_panel_diagram_is_one_live_view_at_its_interval(panel: ControlPanel) -> None:
    pane = panel.diagram
    assert pane is not None
    await serve(panel)
    await pane.settle()
    view = pane.view
    assert isinstance(view, LiveView) and view.interval == DEFAULT_INTERVAL and not view.stopped
    assert pane.mermaid == view.diagram.mermaid  # what the Output shows is what the view drew
    # A burst of recorded facts is coalesced by the view: one redraw, not one per fact.
    worker = panel.instances[0].worker.runtime
    refreshes = view.refreshes
    for n in range(200):
        worker.recorder.record(Kind.LEASE_KEEPALIVE, worker.name, "etcd", lease_id=n)
    await pane.settle()
    assert 1 <= view.refreshes - refreshes <= 2
    # Another kind is another view; the old one stops listening.
    pane.kind.value = "registry"
    await pane.settle()
    assert pane.view is not view and view.stopped and pane.view is not None and pane.view.kind == "registry"
    # A new worker changes what is drawn: the view follows the panel's subject.
    registry_view = pane.view
    await serve(panel)
    await pane.settle()
    assert pane.view is not registry_view and registry_view.stopped
    assert "worker-2" in pane.mermaid
    last = pane.view
    await panel.aclose()
    assert last.stopped


async def test_the_diagram_is_never_shrunk_and_can_be_enlarged_or_widened(panel: ControlPanel) -> None:
    pane = panel.diagram
    assert pane is not None
    assert min(value for _, value in pane.zoom.options) == 1.0  # no choice below the natural size
    css = pane.children[0].value
    assert ".jp-RenderedMermaid img" in css and "max-width: none !important" in css
    assert "dnb-zoom-100" in pane.frame._dom_classes
    pane.zoom.value = 2.0
    assert "dnb-zoom-200" in pane.frame._dom_classes and "dnb-zoom-100" not in pane.frame._dom_classes
    assert ".dnb-zoom-200 .jp-OutputArea-output { zoom: 2; }" in css
    assert panel.body.layout.flex_flow in (None, "row")
    pane.wide.value = True
    assert panel.body.layout.flex_flow == "column" and pane.layout.width == "100%"
    assert panel.controls.layout.flex == "0 0 auto"  # in a column, a 460px basis would be its height
    pane.wide.value = False
    assert panel.body.layout.flex_flow == "row" and panel.controls.layout.flex == "0 0 460px"


# -- status lines describe the present ------------------------------------------------------------------


async def test_serving_line_goes_when_that_instance_stops_or_its_worker_is_killed(panel: ControlPanel) -> None:
    status = panel.serve_form.status
    await serve(panel)
    first = panel.instances[0]
    assert status.text.endswith(f"on {first.worker.name}")
    await serve(panel)
    second = panel.instances[1]
    assert status.text.endswith(f"on {second.worker.name}")
    await panel.pool.stop(first)  # not the one the line speaks of: it stays
    assert status.text.endswith(f"on {second.worker.name}") and status.level == "ok"
    panel.instance_table.row(second).kill_button.click()
    await panel.wait_idle()
    assert status.text == ""
    await serve(panel)
    third = panel.instances[2]
    assert f"as instance {third.instance_id:x}" in status.text
    panel.instance_table.row(third).stop_button.click()
    await panel.wait_idle()
    assert status.text == ""


async def test_nothing_was_created_goes_once_the_name_is_fixed(panel: ControlPanel) -> None:
    form = panel.serve_form
    form.namespace.value = "Bad"
    form.serve_button.click()
    await panel.wait_idle()
    assert "nothing was created" in form.status.text
    form.namespace.value = "dynamo"
    assert form.status.text == ""


async def test_nothing_was_sent_goes_once_the_request_or_the_instances_change(panel: ControlPanel) -> None:
    form = panel.call_form
    await call(panel, '{"prompt": ')
    assert "nothing was sent" in form.status.text
    form.request.value = '{"prompt": "fixed"}'
    assert form.status.text == ""
    # No instance yet: refused; an instance appears: the refusal no longer holds.
    await call(panel)
    assert form.status.text == "nothing was sent"
    await serve(panel)
    await eventually(lambda: len(form.instance.options) == 1 and form.instance.value != -1)
    assert form.status.text == "" and form.instance_message.text == ""


# -- the pieces on their own ------------------------------------------------------------------------------


async def test_task_runner_reports_escaped_errors_and_waits_for_work() -> None:
    seen: list[BaseException] = []
    runner = TaskRunner(on_error=seen.append)

    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("lost")

    runner.spawn(boom())
    assert runner.pending == 1
    await runner.wait_idle(timeout=2)
    assert runner.pending == 0 and len(seen) == 1 and isinstance(seen[0], KeyError)


async def test_worker_pool_refuses_a_bad_lease_ttl_and_validates_before_starting(runtime: DistributedRuntime) -> None:
    with pytest.raises(ValueError, match="lease_ttl must be positive"):
        WorkerPool(runtime, lease_ttl=0)
    pool = WorkerPool(runtime, lease_ttl=1.0)
    from dynamo_nb import InvalidNameError

    with pytest.raises(InvalidNameError):
        await pool.serve("Bad", "Processor", "generate", BUILTIN_HANDLERS["echo"])
    assert pool.workers == []
    await pool.close()


async def test_builtin_handlers_stream_what_their_examples_promise(runtime: DistributedRuntime) -> None:
    pool = WorkerPool(runtime, lease_ttl=1.0)
    try:
        results = {}
        for name, spec in BUILTIN_HANDLERS.items():
            inst = await pool.serve("demo", "Handlers", name, spec)
            client = await runtime.endpoint(inst.reference).client()
            await client.wait_for_instances(2)
            request = dict(spec.example, delay=0) if isinstance(spec.example, dict) else spec.example
            stream = await client.round_robin(request)
            items = []
            try:
                async for item in stream:
                    items.append(item)
            except Exception as exc:
                items.append(type(exc).__name__)
            results[name] = items
            await client.close()
        assert [i["token"] for i in results["tokens"]] == "the quick brown fox jumps over the lazy dog".split()
        assert results["echo"] == [{"echo": {"prompt": "hello", "n": 1, "delay": 0}}]
        assert results["counter"] == [{"count": n} for n in range(1, 6)]
        assert results["fails"] == [{"step": 1, "note": "about to fail"}, "RemoteError"]
    finally:
        await pool.close()


async def test_a_request_the_reader_wrote_is_kept_when_another_worker_is_served(panel: ControlPanel) -> None:
    await serve(panel)
    panel.call_form.request.value = '{"prompt": "mine"}'
    await serve(panel)
    assert panel.call_form.request.value == '{"prompt": "mine"}'
    await serve(panel, handler="counter", endpoint="count")
    assert json.loads(panel.call_form.request.value) == BUILTIN_HANDLERS["counter"].example  # a new target


# -- on real servers ------------------------------------------------------------------------------------


@pytest.mark.servers
async def test_the_panel_drives_real_etcd_and_nats_workers() -> None:
    from dynamo_nb.cluster import LocalCluster

    async with LocalCluster() as cluster:
        rt = await DistributedRuntime.create(etcd_endpoints=cluster.etcd_endpoints, nats_server=cluster.nats_server,
                                             name="notebook")
        p = ControlPanel(rt, lease_ttl=1.0)
        try:
            await serve(p)
            await serve(p)
            assert all(i.worker.runtime.backend.kind == "real" for i in p.instances)
            await call(p, {"prompt": "over real nats", "delay": 0})
            assert [i["token"] for i in p.call_form.items] == ["over", "real", "nats"]
            victim, survivor = p.instances
            p.instance_table.row(victim).kill_button.click()
            await p.wait_idle()
            remaining = p.pool.lease_remaining(victim.worker)  # etcd's answer: whole seconds, rounded down
            assert remaining is not None and 0 <= remaining <= 1.0
            assert "lease expires in" in p.instance_table.row(victim).label.value
            await p.pool.wait_expired(timeout=10)
            assert p.pool.lease_remaining(victim.worker) is None  # etcd no longer knows the lease
            await eventually(lambda: [v for _, v in p.call_form.instance.options] == [survivor.instance_id])
            await p.pool.stop(survivor)
            assert await keys(rt, "dynamo/") == []
            assert p.status.text == ""
        finally:
            await p.aclose()
            await rt.shutdown()


async def test_the_panel_speaks_the_seed_s_chinese_with_lang_zh(runtime: DistributedRuntime) -> None:
    panel = ControlPanel(runtime, lease_ttl=1.0, lang="zh")
    try:
        assert panel.serve_form.serve_button.description == "提供服务"
        assert panel.call_form.call_button.description == "调用"
        assert [label for label, _ in panel.call_form.routing.options][:2] == ["轮询", "随机"]
        assert [v for _, v in panel.call_form.routing.options] == ["round_robin", "random", "direct"]
        assert "Dynamo 控制面板" in panel.children[0].value
        await serve(panel)
        row = next(iter(panel.instance_table.rows.values()))
        assert row.stop_button.description == "停止" and row.kill_button.description == "杀死 worker"
        assert panel.diagram is not None
        await eventually(lambda: "命名空间" in panel.diagram.last_bundle.get("text/vnd.mermaid", ""))
        await call(panel, {"prompt": "a b"})  # the controls still do what they say
        assert len(panel.call_form.items) == 2
    finally:
        await panel.wait_idle()
        await panel.aclose()
    english = ControlPanel(runtime, lease_ttl=1.0, lang="en")
    assert english.serve_form.serve_button.description == "Serve"
    await english.aclose()
