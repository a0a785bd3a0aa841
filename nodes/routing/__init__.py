"""Routing: which skill a task gets — the hybrid score, the learned model, its training, and the
live service the route_skill node calls through the seams in `seams.py`."""
