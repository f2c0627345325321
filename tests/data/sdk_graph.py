"""The seed's §7.2 service (a stand-in engine for the model) behind a Processor and a Frontend, for the SDK tests
and the ``dynamo-nb serve`` process tests (``sdk_graph:Frontend``)."""

from __future__ import annotations

import asyncio
import os

from dynamo_nb.sdk import async_on_start, depends, dynamo_endpoint, service

__all__ = ["StandInEngine", "VllmWorker", "Processor", "Frontend"]


class StandInEngine:
    """Streams the prompt back word by word, as a model would stream tokens."""

    def __init__(self, model: str) -> None:
        self.model = model

    async def generate(self, request: dict):
        for word in str(request.get("prompt", "")).split():
            await asyncio.sleep(float(request.get("delay", 0)))
            yield word


@service(dynamo={"namespace": "production"}, workers=1, resources={"gpu": 0})
class VllmWorker:
    @async_on_start
    async def load(self):
        self.engine = StandInEngine(self.config.get("model", "stand-in"))

    @dynamo_endpoint()
    async def generate(self, request):
        async for token in self.engine.generate(request):
            yield {"token": token, "model": self.engine.model, "pid": os.getpid(), "who": f"{os.getpid()}:{id(self)}",
                   "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                   "prefix_caching": self.config.get("enable-prefix-caching")}


@service(dynamo={"namespace": "production"})
class Processor:
    worker = depends(VllmWorker)

    @dynamo_endpoint()
    async def generate(self, request, context):
        async for item in self.worker.generate(request):
            yield {**item, "via": "Processor", "request_id": context.id()}


@service(dynamo={"namespace": "production"})
class Frontend:
    processor = depends(Processor)

    @dynamo_endpoint(name="chat/completions")
    async def chat(self, request):
        async for item in self.processor.generate(request):
            yield item


Frontend.link(Processor).link(VllmWorker)
