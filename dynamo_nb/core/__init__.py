"""The object model: runtime, namespaces, components, endpoints, registry, lifecycle, serving, clients, events."""

__all__: list[str] = []  # the submodules are the interface; nothing is re-exported here
