"""Lowerings of the IR to runtimes."""
