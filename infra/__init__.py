"""The CDK app that deploys taskplane (see docs/DEPLOY.md)."""
