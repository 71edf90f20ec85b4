"""boto3's DynamoDB attribute-value codec, made on first use.

``boto3.dynamodb.types`` imports boto3 itself (its session, botocore's loaders: about 80 ms). The
adapters that marshal items with it are imported by the API's route modules, so importing it with
them would put that cost into the API handler module's import; the first call pays it instead (and
by then building the platform has imported boto3 anyway).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer


@cache
def _serializer() -> TypeSerializer:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


@cache
def _deserializer() -> TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def serialize_value(value: Any) -> Any:
    """A Python value as a DynamoDB attribute value (``{"S": ...}``, ``{"N": ...}``, ...)."""
    return _serializer().serialize(value)


def deserialize_value(value: Any) -> Any:
    """A DynamoDB attribute value as a Python value (numbers as ``Decimal``)."""
    return _deserializer().deserialize(value)


def utf8_json(value: Any) -> str:
    """Compact JSON as UTF-8 text, for a string attribute: the byte limits the API applies (payload,
    result, labels, target) are then the bytes the item holds, where ``\\uXXXX`` escapes would grow an
    emoji from 4 bytes to 12 and take an item at those limits past DynamoDB's 400 KB. Text UTF-8
    cannot hold (a lone surrogate in an event from an external bus) is kept escaped."""
    import json

    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def binary(data: bytes) -> Binary:
    """``data`` as a DynamoDB binary attribute."""
    from boto3.dynamodb.types import Binary

    return Binary(data)
