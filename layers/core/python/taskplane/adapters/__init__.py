"""Every boto3 call lives here; clients are injected or made lazily, never at import."""
