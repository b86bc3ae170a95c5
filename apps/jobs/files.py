"""Serving what we store for a team (results, originals, posters), to the web pages and the
API alike: from S3 by a short-lived signed link, so the bytes never pass through the web
server; from local disk streamed by the web server."""

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseBase
from django.shortcuts import redirect

from apps.jobs.models import Job
from apps.jobs.uploads import direct_to_bucket


def result_name(job: Job) -> str:
    if not job.has_result:
        raise Http404("This video has no result to download.")
    return str(job.result_file.name)


def serve_stored(
    name: str, filename: str, content_type: str, *, attachment: bool
) -> HttpResponseBase:
    disposition = "attachment" if attachment else "inline"
    if direct_to_bucket():
        url = default_storage.url(  # type: ignore[call-arg]  # S3Storage takes parameters
            name,
            parameters={
                "ResponseContentDisposition": f'{disposition}; filename="{filename}"',
                "ResponseContentType": content_type,
            },
        )
        return redirect(url)
    response = FileResponse(
        default_storage.open(name, "rb"),
        as_attachment=attachment,
        filename=filename,
        content_type=content_type,
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response
