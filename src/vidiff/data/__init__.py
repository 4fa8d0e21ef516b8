"""Data: video IO, datasets, synthetic generators, curation."""
