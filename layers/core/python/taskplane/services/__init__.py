"""Use cases that join the domain and the adapters."""
