"""A test package with a written ``bots.py``: the two demos under their own slugs, with
callbacks taken from ``demo`` (experiments/demo)."""
