"""Kie's contract as the simulator answers it (shared/kie-api.md): the model, the envelope
codes and their messages, the envelope every answer comes in, and the checks of a createTask
body."""

import json

from apps.simulators.http import Reply

MODEL = "sora-watermark-remover"
CREDITS_PER_TASK = 10
RATE_WINDOW_SECONDS = 10.0
MAX_VIDEO_URL_LENGTH = 500
PAUSED_MESSAGE = "This interface is temporarily paused"

# The meaning of each envelope code in the contract table, as the message of a drill that
# forces a code (`forced_code`) without giving one.
CODE_MESSAGES = {
    400: "Bad request",
    401: "You do not have access permissions: the API key is missing or invalid",
    402: "Credits insufficient: top up your Kie account",
    404: "Not found",
    408: "Upstream gave no result for more than 10 minutes",
    422: "Validation error",
    429: "Rate limited: too many requests",
    433: "Sub-key usage limit exceeded",
    455: "Service under maintenance",
    500: "Internal server error",
    501: "Generation failed",
    505: "Feature disabled",
}


def validation_problem(request: object) -> str:
    """Kie's checks of a createTask body, in its order; "" when the request is valid."""
    if not isinstance(request, dict):
        return "The request body must be a JSON object"
    model = request.get("model")
    if not model:
        return "model is required"
    if model != MODEL:
        return f"model {model!r} is not supported: use {MODEL!r}"
    task_input = request.get("input")
    if not isinstance(task_input, dict) or not task_input.get("video_url"):
        return "input.video_url is required"
    video_url = task_input["video_url"]
    if not isinstance(video_url, str) or not video_url.startswith(
        ("https://sora.chatgpt.com", "sora.chatgpt.com")
    ):
        return "input.video_url must be a link that starts with sora.chatgpt.com"
    if len(video_url) > MAX_VIDEO_URL_LENGTH:
        return f"input.video_url must be at most {MAX_VIDEO_URL_LENGTH} characters"
    if task_input.get("upload_method", "s3") not in ("s3", "oss"):
        return "input.upload_method must be s3 or oss"
    callback_url = request.get("callBackUrl")
    if callback_url is not None and (
        not isinstance(callback_url, str) or not callback_url.startswith(("http://", "https://"))
    ):
        return "callBackUrl must be an http(s) URL"
    return ""


def envelope(code: int, msg: str, data: object = None) -> Reply:
    # Kie answers most failures with HTTP 200: the envelope code is what counts.
    return Reply(200, json.dumps({"code": code, "msg": msg, "data": data}).encode())
