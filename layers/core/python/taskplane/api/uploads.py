"""``POST /v1/uploads``: a presigned URL for a payload too large to send in a request."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from taskplane import wiring
from taskplane.api.common import json_response, tenant_of
from taskplane.domain.errors import Unavailable

router = Router()


@router.post(
    "/v1/uploads",
    summary="Get a URL to upload a large payload",
    description=(
        "Answers upload_id and upload_url: PUT the payload there as JSON (Content-Type: "
        "application/json, at most max_bytes) before expires_at, then submit the task with "
        '"payload_ref": upload_id instead of "payload". An upload no task names is deleted after a day.'
    ),
    tags=["tasks"],
    responses={201: {"description": "created"}},
)
def create_upload() -> Response[dict[str, Any]]:
    uploads = wiring.platform().uploads
    if uploads is None:
        raise Unavailable("this deployment has no bucket for large payloads")
    return json_response(uploads.create(tenant_of(router.current_event)), 201)
