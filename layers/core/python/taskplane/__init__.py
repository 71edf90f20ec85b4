"""taskplane: a serverless, multi-tenant task platform on AWS."""

__version__ = "0.1.0"
