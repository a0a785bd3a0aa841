"""Helpers the tests share: scripted models and endpoints, servers started from packages."""
