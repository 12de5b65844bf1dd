"""The collector's core, free of any web framework: the ingest pipeline and source tracking."""
