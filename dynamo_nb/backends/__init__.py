"""Backends: the embedded in-process world, and real etcd + NATS servers, behind the interfaces of ``base``."""

__all__: list[str] = []  # the submodules are the interface; nothing is re-exported here
