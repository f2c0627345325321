"""Teaching beyond the live notebook: time travel through a recording, and the seed's own language.

A recording saved from the scripted system of ``test_diagrams`` and loaded in a fresh process with no servers and
no runtime draws, at five moments, exactly what the live system drew then; every kind in ``lang="zh"`` matches its
golden file (``tests/golden/zh/``, rewritten with ``DYNAMO_NB_UPDATE_GOLDEN=1``) and is valid Mermaid.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_diagrams
from test_diagrams import GOLDEN, UPDATE, System, lint_mermaid, normalize, target

import dynamo_nb
from dynamo_nb.core.recording import Recording
from dynamo_nb.display.i18n import ENV, language, say, set_language
from dynamo_nb.display.kinds import KINDS
from dynamo_nb.errors import RecordingFormatError

REPO = Path(__file__).resolve().parents[1]

# the scripted system of the golden figures, and its runtimes (fixtures)
make_runtime = test_diagrams.make_runtime
system = test_diagrams.system


async def tokens(request: Any) -> Any:
    for tok in str(request.get("prompt", "")).split():
        yield {"token": tok}


# ------------------------------------------------------------------------------------------------ time travel
_DRAW_IN_A_FRESH_PROCESS = """
import json, sys
import dynamo_nb
recording = dynamo_nb.load_recording(sys.argv[1])
times = json.loads(sys.argv[2])
print(json.dumps({str(t): {k: dynamo_nb.diagram(recording, k, at=t).mermaid for k in json.loads(sys.argv[3])}
                  for t in times}))
"""


async def test_a_recording_drawn_in_a_fresh_process_is_what_the_live_system_drew(
        system: System, tmp_path: Path) -> None:
    rts = system.runtimes
    everything = system.all
    seen: dict[float, dict[str, str]] = {}

    def look() -> None:  # a figure of every kind, as a live view would draw it now
        seen[time.time()] = {k: dynamo_nb.diagram(everything, k).mermaid for k in KINDS}

    look()                                                           # 1. as build_system left it
    worker3 = await rts["worker-2"].endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
    await worker3.wait_for_state("Healthy")
    await asyncio.sleep(0)
    look()                                                           # 2. a new worker instance
    await (await system.clients["router"].direct({"prompt": "x y z"}, worker3.lease_id)).collect()
    await asyncio.sleep(0)
    look()                                                           # 3. after a call to it
    await rts["frontend"].namespace("dynamo").publish("kv_events", {"n": 1})
    await asyncio.sleep(0)
    look()                                                           # 4. after an event
    await worker3.stop()
    await asyncio.sleep(0)
    look()                                                           # 5. after it stopped

    path = Recording.of(everything).save(tmp_path / "story.jsonl")
    times = sorted(seen)
    out = subprocess.run([sys.executable, "-c", _DRAW_IN_A_FRESH_PROCESS, str(path), json.dumps(times),
                          json.dumps(list(KINDS))], capture_output=True, text=True, check=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    drawn = json.loads(out.stdout)
    assert len({json.dumps(v, sort_keys=True) for v in seen.values()}) == 5, "the five moments differ"
    for t in times:
        for kind in KINDS:
            assert drawn[str(t)][kind] == seen[t][kind], f"{kind} at moment {times.index(t) + 1} differs"


async def test_the_runtime_recorder_saves_what_load_recording_reads(system: System, tmp_path: Path) -> None:
    rt = system.runtimes["worker-2"]
    path = rt.recorder.save(tmp_path / "w2.jsonl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    header = lines[0]
    assert header["format"] == "dynamo_nb.recording" and header["version"] == 1
    assert header["runtimes"] == [{"name": "worker-2", "profile": "seed", "backend": "embedded"}]
    assert "lifecycle" in header["kinds"] and "Healthy" in header["states"]
    assert [x["ts"] for x in lines[1:-1]] == sorted(x["ts"] for x in lines[1:-1]), "lines in time order"
    recording = dynamo_nb.load_recording(path)
    assert recording.runtimes == ("worker-2",) and len(recording) == len(rt.recorder.records)
    healthy_at = next(r.ts for r in rt.recorder.records if r.kind.value == "lifecycle"
                      and r.detail["state"] == "Healthy")
    assert "now Healthy" in dynamo_nb.diagram(recording, "lifecycle", at=healthy_at).text
    assert dynamo_nb.diagram(recording, "lifecycle").mermaid == dynamo_nb.diagram(rt, "lifecycle").mermaid
    before = dynamo_nb.diagram(recording, "hierarchy", at=recording.start - 1)
    assert "worker-2" not in before.mermaid, "before its first frame a runtime did not exist"


def test_files_that_are_not_recordings_of_this_version_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text('{"format": "dynamo_nb.recording", "version": 99}\n', encoding="utf-8")
    with pytest.raises(RecordingFormatError, match="version 99"):
        dynamo_nb.load_recording(other)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n", encoding="utf-8")
    with pytest.raises(RecordingFormatError, match="not a dynamo_nb recording"):
        dynamo_nb.load_recording(junk)


async def test_at_needs_the_object_not_one_drawn_moment(system: System) -> None:
    drawn = dynamo_nb.diagram(system.all, "hierarchy")
    with pytest.raises(ValueError, match="at="):
        dynamo_nb.diagram(drawn, at=time.time())


async def test_at_a_state_s_history_time_the_figure_shows_that_state(make_runtime: Any) -> None:
    """The history and the lifecycle records carry one timestamp per transition, so ``at=`` it is the new state."""
    worker = await make_runtime(name="worker", lease_ttl=60)
    served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
    await served.wait_for_state("Healthy", timeout=5)
    await served.stop()
    records = [r.ts for r in worker.recorder.select("lifecycle")]
    assert records == [ts for _, ts in served.history]
    for state, ts in served.history:
        assert f"now {state.value}" in dynamo_nb.diagram(served, "lifecycle", at=ts).text, state


async def test_the_timeline_steps_through_every_event_and_exports_one_offline_page(
        system: System, tmp_path: Path) -> None:
    served = system.served["worker-2"]
    timeline = dynamo_nb.Timeline([served, system.runtimes["processor"]], kind="lifecycle")
    assert len(timeline) == len(timeline.events) > 10
    states = [(i, e.record.detail["state"]) for i, e in enumerate(timeline.events)
              if e.record.kind.value == "lifecycle" and e.runtime == "worker-2"]
    for i, state in states:  # at each transition the figure marks the state it just entered
        assert f"now {state}" in timeline.diagram(i).text, (i, state)
    assert timeline.step == len(timeline) - 1
    page = timeline.export_html(tmp_path / "story.html")
    text = page.read_text(encoding="utf-8")
    frames = re.findall(r'<div class="frame" id="f(\d+)" hidden><svg', text)
    assert len(frames) == len({timeline.diagram(i).dot for i in range(len(timeline))}) >= len(states)
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=", text), "the page fetches nothing"
    captions = json.loads(re.search(r"const captions = (.*);", text).group(1))  # type: ignore[union-attr]
    assert len(captions) == len(timeline) and "lifecycle" in captions[states[0][0]]


async def test_a_stop_in_the_turn_of_a_call_is_drawn_at_its_own_steps(make_runtime: Any) -> None:
    """A frame is the state a turn of the loop left, stamped at the turn's first record: a call and a stop in one
    turn would draw the instance already unserved at the call. The stop frames what came before it, and its own
    Stopping state, so each step draws what was true then."""
    worker = await make_runtime(name="worker", lease_ttl=60)
    served = await worker.endpoint("dynamo.Worker.generate").endpoint_builder().handler(tokens).start()
    client = await worker.endpoint("dynamo.Worker.generate").client()
    await client.wait_for_instances(timeout=5)
    await served.wait_for_state("Healthy", timeout=5)
    await (await client.round_robin({"prompt": "a b"})).collect()  # on the embedded backend, one turn with the stop
    await served.stop()
    timeline = dynamo_nb.Timeline(worker, kind="hierarchy")
    step = {e.record.detail.get("state") or e.record.kind.value: i for i, e in enumerate(timeline.events)}
    instance = f"instance {served.lease_id:x} · "
    assert f"{instance}Healthy · worker" in timeline.diagram(step["response"]).text
    assert f"{instance}Stopping · worker" in timeline.diagram(step["Stopping"]).text


def test_a_timeline_needs_something_recorded() -> None:
    with pytest.raises(ValueError, match="nothing was recorded"):
        dynamo_nb.Timeline(Recording([_empty_state()]))


def _empty_state() -> Any:
    from dynamo_nb.core.snapshot import RuntimeSnap, RuntimeState

    return RuntimeState(RuntimeSnap("idle"))


# ------------------------------------------------------------------------------------------- the seed's language
@pytest.mark.parametrize("kind", list(KINDS))
async def test_every_kind_in_chinese_matches_its_golden(system: System, kind: str) -> None:
    drawn = dynamo_nb.diagram(target(system, kind), kind, lang="zh")
    lint_mermaid(drawn.mermaid)
    path = GOLDEN / "zh" / f"{kind}.mmd"
    got = normalize(drawn.mermaid, system)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), f"zh/{path.name} differs (DYNAMO_NB_UPDATE_GOLDEN=1 rewrites)"


async def test_the_chinese_figures_use_the_seeds_terms(system: System) -> None:
    zh = {k: dynamo_nb.diagram(target(system, k), k, lang="zh").mermaid for k in KINDS}
    assert "命名空间: dynamo" in zh["hierarchy"] and "组件 Worker" in zh["hierarchy"]
    assert "端点 generate" in zh["hierarchy"] and "实例 " in zh["hierarchy"]
    assert "注册中心" in zh["registry"] and "共享 Watcher" in zh["registry"]
    assert "并行执行" in zh["startup"] and "端点就绪" in zh["startup"]
    for words in ("注册到 etcd", "启动服务", "健康检查通过", "持续运行", "收到停止信号", "从 etcd 注销"):
        assert words in zh["lifecycle"], words
    assert "Revoke Lease" in zh["sequence"] and "收到停止信号" in zh["sequence"]
    for english in ("Namespace:", "Component Worker", "no live instance", "in parallel", "stop signal",
                    "health check passed"):
        for kind, text in zh.items():
            body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("+", "-")))
            assert english not in body, f"{english!r} left in English in {kind}"
    assert "Endpoint generate" not in zh["hierarchy"] + zh["reference"]
    # names, keys and subjects stay exactly as etcd and NATS spell them
    assert "dynamo/components/Worker/generate:<worker-1-lease>" in normalize(zh["startup"], system)


async def test_a_figure_s_title_and_a_timeline_s_events_speak_the_language(system: System, tmp_path: Path) -> None:
    runtimes = [system.runtimes["frontend"], system.runtimes["processor"]]
    assert dynamo_nb.diagram(runtimes, "hierarchy").text.splitlines()[0] == \
        "hierarchy · runtime frontend, runtime processor"
    assert dynamo_nb.diagram(runtimes, "hierarchy", lang="zh").text.splitlines()[0] == \
        "Component 系统层级 (hierarchy) · 运行时 frontend、运行时 processor"
    served = system.served["worker-2"]
    title = dynamo_nb.diagram(served, "sequence", lang="zh").title
    assert title.startswith("完整生命周期 (sequence) · dynamo.Worker.generate 的实例 "), title
    en = dynamo_nb.Timeline(served, kind="lifecycle")
    zh = dynamo_nb.Timeline(served, kind="lifecycle", lang="zh")
    i = next(i for i, e in enumerate(zh.events) if e.record.kind.value == "lifecycle")
    assert " · lifecycle · " in en.caption(i) and " · 生命周期 (lifecycle) · " in zh.caption(i)
    page = zh.export_html(tmp_path / "zh.html").read_text(encoding="utf-8")
    assert "▶ 播放" in page and "状态转换 (lifecycle)" in page and 'lang="zh-CN"' in page


def test_the_language_comes_from_the_argument_then_set_language_then_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "zh_CN")
    try:
        assert language() == "zh"
        assert set_language("en") == "en" and language() == "en" and language("zh") == "zh"
        assert set_language() == "zh"
        monkeypatch.delenv(ENV)
        assert language() == "en"
        with pytest.raises(ValueError, match="unknown language"):
            set_language("fr")
    finally:
        set_language()
    assert dynamo_nb.set_language is set_language


def test_a_label_keeps_names_and_translates_phrases() -> None:
    assert say("Component Registry of worker-1") == "worker-1 的 Component 注册中心"
    assert say("Component Worker · contains many endpoints") == "组件 Worker · 包含多个端点"
    assert say("+3 more instances") == "另有 3 个实例"
    assert say("lease id 1a2b") == "Lease ID 1a2b"
    assert say("Namespace: instance") == "命名空间: instance", "a name is never translated"
    assert say("Healthy · worker-1", "en") == "Healthy · worker-1"


def test_every_colour_key_entry_speaks_chinese() -> None:
    """The key beside the figures: each meaning in the seed's language, a state's own name excepted."""
    from dynamo_nb.core.lifecycle import State
    from dynamo_nb.display.kinds import STYLE_MEANING

    for meaning in STYLE_MEANING.values():
        if meaning not in {s.value for s in State}:
            assert any("\u4e00" <= ch <= "\u9fff" for ch in say(meaning)), meaning


def test_a_lease_reading_and_a_fault_speak_chinese_whole() -> None:
    """Lines the hierarchy draws in notebooks 10 and 11: no English left around the seed's words."""
    assert say("lease 1a2b: 12 s left at 07:52:03") == "租约 1a2b: 07:52:03 时剩余 12 秒"
    assert say("generate 1a2b: lease: 9 s left at 07:52:01") == "generate 1a2b: 租约: 07:52:01 时剩余 9 秒"
    assert say("no answer at 07:52:03: key outlived its process") == "07:52:03 时无应答: 键比它的进程活得更久"
    assert say("Healthy · w-1 · in etcd\n⚠ keep-alive paused: lease ends 07:52:05\n⚠ slow: +0.3 s per item") == \
        "Healthy · w-1 · 在 etcd 中\n⚠ Keep-Alive 已暂停: 租约于 07:52:05 结束\n⚠ 变慢: 每项 +0.3 秒"
    assert say("⚠ fault: cut off from NATS, its key stays in etcd") == "⚠ 故障: 与 NATS 断开, 键仍在 etcd 中"
