"""Dashboard routes: the page at ``/`` and its static files at ``/ui/<name>`` (no API key)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from taskplane import dashboard
from taskplane.domain.errors import NotFound

router = Router()


def _file(name: str) -> Response[str]:
    found = dashboard.asset(name)
    if found is None:
        raise NotFound(f"no dashboard file {name!r}")
    content_type, text = found
    return Response(status_code=200, content_type=content_type, body=text, headers=dashboard.SECURITY_HEADERS)


@router.get("/", summary="The web dashboard", tags=["dashboard"], include_in_schema=False)
def index() -> Response[str]:
    return _file(dashboard.INDEX)


@router.get("/ui/<name>", summary="A dashboard file", tags=["dashboard"], include_in_schema=False)
def static_file(name: str) -> Response[str]:
    return _file(name)
