"""Unmark's own remover as a provider: the engine (`apps.removal.engine`, no Django) run by the
workers, in processes of their own, on the CPU."""
