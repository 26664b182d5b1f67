"""The bytes of an image sent to `POST /classify`: a multipart form's `file` field (`curl -F
file=@photo.jpg`, the page's file picker, any HTML form) or the raw body (`curl --data-binary`).

Both are read through one size cap while they arrive, so a large upload is refused before it is
held; a multipart file part beyond Starlette's 1 MiB spool goes to a temporary file, not memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

FILE_FIELD = "file"
# A form with the file and a few small fields (an HTML form's submit button, a CSRF token).
MAX_FORM_FIELDS = 8


class UploadError(Exception):
    """An upload that cannot be classified: its HTTP status and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _capped(request: Request, max_bytes: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise UploadError(413, f"upload larger than {max_bytes} bytes")
        yield chunk


async def read_upload(request: Request, max_bytes: int) -> bytes:
    """The uploaded image's bytes, or UploadError (413 too large, 400 empty or malformed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(413, f"upload larger than {max_bytes} bytes")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form_file(request, max_bytes)
    body = bytearray()
    async for chunk in _capped(request, max_bytes):
        body += chunk
    if not body:
        raise UploadError(
            400,
            "empty body: send the image as the body (curl --data-binary @x.jpg) or as a "
            f"form's {FILE_FIELD!r} field (curl -F {FILE_FIELD}=@x.jpg)",
        )
    return bytes(body)


async def _form_file(request: Request, max_bytes: int) -> bytes:
    parser = MultiPartParser(
        request.headers, _capped(request, max_bytes), max_files=1, max_fields=MAX_FORM_FIELDS
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise UploadError(400, f"unreadable multipart form: {error.message}") from None
    try:
        upload = form.get(FILE_FIELD)
        if not isinstance(upload, UploadFile):
            raise UploadError(
                400, f"the form has no {FILE_FIELD!r} file field (curl -F {FILE_FIELD}=@x.jpg)"
            )
        encoded = await upload.read()
    finally:
        await form.close()
    if not encoded:
        raise UploadError(400, f"the form's {FILE_FIELD!r} file is empty")
    return encoded
