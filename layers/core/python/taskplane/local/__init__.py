"""In-process stand-ins for AWS pieces, used by the local runtime and tests."""
