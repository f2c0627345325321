"""Processes the command line starts run on uvloop when it is installed; the kernel's loop is never replaced."""

from __future__ import annotations

import asyncio


from dynamo_nb import loops


async def _which() -> str:
    return loops.loop_name()


def test_processes_of_ours_run_on_uvloop_unless_declined(monkeypatch):
    import uvloop  # noqa: F401  # the dev extra installs it (via "fast"): its absence is a failure, not a skip
    monkeypatch.delenv("DYNAMO_NB_LOOP", raising=False)
    assert loops.run(_which()) == "uvloop"
    monkeypatch.setenv("DYNAMO_NB_LOOP", "asyncio")
    assert loops.run(_which()) == "asyncio"


def test_the_command_line_and_the_workers_choose_their_loop_through_loops_run(monkeypatch):
    from dynamo_nb.cli import main
    from dynamo_nb.sdk import child

    ran = []

    def fake_run(coro):
        ran.append(coro.__qualname__)
        coro.close()
        return 0

    monkeypatch.setattr(loops, "run", fake_run)
    assert main(["ls"]) == 0
    assert child.main(["mod:Entry", "Service", "0"]) == 0
    assert len(ran) == 2


async def test_importing_dynamo_nb_leaves_the_running_loop_alone():
    import dynamo_nb  # noqa: F401 - importing is the point

    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    assert loops.loop_name() == "asyncio"
