"""How requests and responses travel: TwoPart frames, the control header, and the naming/codec profile."""

__all__: list[str] = []  # the submodules are the interface; nothing is re-exported here
