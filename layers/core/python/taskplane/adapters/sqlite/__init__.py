"""The SQLite adapter set: the same ports as the DynamoDB/SQS/EventBridge adapters, on one SQLite
database (``db.Database``), for the local runtime. Chosen by wiring only; services never know."""
