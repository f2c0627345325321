"""How objects draw themselves in Jupyter: diagrams (pure text builders), display hooks, live views."""
