"""The object model: runtime, namespaces, components, endpoints, registry, lifecycle, serving, clients, events."""
