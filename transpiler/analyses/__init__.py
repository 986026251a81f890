"""Analyses: read-only facts about the IR and the checks built on them."""
