"""Backends: the embedded in-process world, and real etcd + NATS servers, behind the interfaces of ``base``."""
