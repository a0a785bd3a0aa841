"""The execute node's machinery."""
