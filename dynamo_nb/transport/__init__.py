"""How requests and responses travel: TwoPart frames, the control header, and the naming/codec profile."""
