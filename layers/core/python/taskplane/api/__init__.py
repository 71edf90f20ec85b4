"""HTTP routes (Powertools routers) that functions/api/handler.py composes into one API."""
