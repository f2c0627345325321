"""The seed's service SDK (§3.2, §7.2, §7.3): decorate classes, configure them in YAML, serve them as a graph.

::

    @service(dynamo={"namespace": "dynamo"})
    class Processor:
        worker = depends(VllmWorker)

        @dynamo_endpoint()
        async def generate(self, request):
            async for item in self.worker.generate(request):
                yield item

    graph = await serve(Processor, config="config.yaml")   # or: dynamo-nb serve module:Processor -f config.yaml
"""

from __future__ import annotations

from .decorators import async_on_start, depends, dynamo_endpoint, endpoint, service
from .serve import ServiceGraph, serve
from .worker import Worker

__all__ = ["service", "dynamo_endpoint", "endpoint", "depends", "async_on_start", "serve", "ServiceGraph", "Worker"]
