"""Helpers the tests share: the scripted endpoint, real servers, the venv's commands, the floors."""
