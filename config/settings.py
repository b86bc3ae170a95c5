"""Unmark settings: one module, driven by the environment.

`DJANGO_ENV` picks the mode:
- `local` (default): the embedded stack of `make run` — SQLite in WAL mode, django-q2's ORM
  broker, files under `var/`, console email, the Kie simulator. No outside account needed.
- `test`: like local, tuned for the test suite (set by pytest-env).
- `production`: every secret must come from the environment; safe defaults throughout.

Any mode switches to PostgreSQL with `DATABASE_URL`, to Redis (broker + cache) with `REDIS_URL`
and to S3 storage with `AWS_STORAGE_BUCKET_NAME`. The README lists every variable.
"""

import hashlib
import hmac
import os
import secrets
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_micros,
    env_required,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DJANGO_ENV = env_choice("DJANGO_ENV", ("local", "test", "production"), "local")
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"
LOCAL = DJANGO_ENV == "local"

VAR_DIR = Path(env_str("VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must stay off in production: it leaks settings and data.")


def _local_secret_key() -> str:
    """A key generated once per checkout, so local sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY")
elif TESTING:
    SECRET_KEY = env_str("SECRET_KEY") or "test-only-secret-key-not-for-production-use-" + "x" * 20
else:
    SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()

if PRODUCTION:
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("Set ALLOWED_HOSTS to the host names the app is served on.")
else:
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

PORT = env_int("PORT", 8000, minimum=1)
# The address the outside world (Kie's callbacks, links in emails) reaches the app on. Local
# runs default to the loopback address, which is where the local Kie simulator calls back;
# set it empty to run without callbacks (the worker then polls Kie).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", f"http://127.0.0.1:{PORT}" if LOCAL else "").rstrip(
    "/"
)
# The product's name and the address people open it at, as emails and pages name them (never
# the host a request happened to come in on). SITE_URL defaults to PUBLIC_BASE_URL.
PRODUCT_NAME = env_str("PRODUCT_NAME", "Unmark")
SITE_URL = (env_str("SITE_URL") or PUBLIC_BASE_URL or f"http://127.0.0.1:{PORT}").rstrip("/")
if PRODUCTION and not (env_str("SITE_URL") or PUBLIC_BASE_URL):
    raise ImproperlyConfigured("Set SITE_URL (or PUBLIC_BASE_URL): links in emails need it.")

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "apps.accounts.apps.UnmarkAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "django_htmx",
    "django_q",
    # Its Swagger UI assets and template, served from our own origin for /api/docs.
    "ninja",
    "apps.accounts",
    "apps.billing",
    "apps.removal",
    # Content Credentials: checks the signing keys as each process starts.
    "apps.provenance",
    "apps.jobs",
    "apps.privacy",
    "apps.webhooks",
    "apps.ops",
    "apps.api",
    # The stand-ins for the outside providers and `make run`'s command; production code never
    # imports them (import-linter), and their commands refuse to run in production.
    "apps.simulators",
]

MIDDLEWARE = [
    "config.request_id.request_id_middleware",
    "config.health.healthz_middleware",
    "apps.ops.metrics.metrics_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.viewer_timezone.viewer_timezone_middleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
ADMIN_URL = env_str("ADMIN_URL", "admin/").strip("/") + "/"

SITE_TEMPLATES = [Path(folder)] if (folder := env_str("SITE_TEMPLATES_DIR")) else []
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # An operator's own texts (Terms, Privacy, Contact: legal/*.html) or any other template
        # placed in SITE_TEMPLATES_DIR replace the bundled ones of the same name.
        "DIRS": [*SITE_TEMPLATES, BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.accounts.context_processors.teams",
                "apps.billing.context_processors.balance",
                "config.context_processors.brand",
            ],
            "builtins": ["django_htmx.templatetags.django_htmx", "apps.sizes"],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
# Production runs web and workers on several machines: they must share a real database, Redis
# and object storage, so none of the embedded defaults is accepted there.
DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL")
        if PRODUCTION
        else env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock
        # at BEGIN so two writers queue up instead of failing mid-transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory: tests that run a real worker process share the test database.
    # One per test run, so two runs in one checkout never share (or delete) each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    # A database that stops answering must fail a connection attempt, not hang it: a worker
    # that cannot reach its database hands its tasks back and stops (apps.jobs.queue).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and task queue -------------------------------------------------------------------
REDIS_URL = env_required("REDIS_URL") if PRODUCTION else env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "unmark"),
        }
    }
else:
    # Web and worker processes share rate-limit counters and locks: without Redis, the
    # database is what they share.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "unmark_cache",
        }
    }

Q_CLUSTER: dict[str, object] = {
    "name": "unmark",
    # Tasks mostly wait on the network, so more processes than cores keep throughput up.
    "workers": env_int("Q_WORKERS", 4, minimum=1),
    # A task may stream a large video; the broker re-delivers only after `retry` seconds.
    "timeout": 600,
    "retry": 660,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    # Job timelines are the record of what happened; keeping every successful task too only
    # slows the cluster's monitor (failures are always kept).
    "save_limit": -1,
    # The ORM broker can hand several waiting tasks to the workers per poll.
    "bulk": 10,
    "label": "Task queue",
}
# The job pipeline's sends and checks have a queue and worker processes of their own per worker
# (`apps.taskqueue.SENDS`), so they never wait behind emails and webhooks: one of them is often
# the poller (up to 55 s at a time), the others make short calls to providers.
Q_SEND_WORKERS = env_int("Q_SEND_WORKERS", 3, minimum=2)
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.1

# `manage.py worker` serves its processes' counters and histograms (provider calls, webhook
# deliveries) at http://WORKER_METRICS_ADDRESS:WORKER_METRICS_PORT/metrics when the port is set
# (0: any free port, logged), for Prometheus to scrape each worker machine. No token there:
# loopback by default; bind it wider only on a private network (compose: 0.0.0.0, unpublished).
WORKER_METRICS_PORT = (
    env_int("WORKER_METRICS_PORT", 0, minimum=0) if env_str("WORKER_METRICS_PORT") else None
)
WORKER_METRICS_ADDRESS = env_str("WORKER_METRICS_ADDRESS", "127.0.0.1")

# --- Kie.ai, the watermark-removal provider (contract: shared/kie-api.md) ------------------
KIE_SIMULATOR_PORT = env_int("KIE_SIMULATOR_PORT", 8765, minimum=1)
# The key the simulator started by `make run` accepts; it opens nothing anywhere else.
KIE_SIMULATOR_API_KEY = "simulator-key"
KIE_API_KEY = env_required("KIE_API_KEY") if PRODUCTION else env_str("KIE_API_KEY")
# Without a key, local and test runs talk to the Kie simulator on loopback; the job pipeline
# then also accepts result links on the simulator's loopback address.
KIE_SIMULATOR = not PRODUCTION and not KIE_API_KEY
if KIE_SIMULATOR:
    KIE_API_KEY = KIE_SIMULATOR_API_KEY
    KIE_BASE_URL = f"http://127.0.0.1:{KIE_SIMULATOR_PORT}"
else:
    KIE_BASE_URL = (env_str("KIE_BASE_URL") or "https://api.kie.ai").rstrip("/")
# Set when the Kie account has a webhook HMAC key: callbacks must then be signed with it.
KIE_WEBHOOK_HMAC_KEY = env_str("KIE_WEBHOOK_HMAC_KEY")
KIE_CALLBACK_MAX_AGE_SECONDS = env_int("KIE_CALLBACK_MAX_AGE_SECONDS", 300, minimum=1)
KIE_UPLOAD_METHOD = env_choice("KIE_UPLOAD_METHOD", ("s3", "oss"), "s3")
KIE_TIMEOUT_SECONDS = env_int("KIE_TIMEOUT_SECONDS", 30, minimum=1)
# Kie accepts 20 new tasks per 10 s per account; raise only for an account with a higher limit
# (or a simulator started with a higher --rate-limit, as the pipeline benchmark does).
KIE_CREATE_LIMIT = env_int("KIE_CREATE_LIMIT", 20, minimum=1)
# What one Kie task costs us (its fixed price per remover run), in millionths of a dollar.
KIE_COST_MICROS = env_int("KIE_COST_MICROS", 50_000, minimum=0)


# --- SoraWatermarkCleaner servers, the pool that cleans uploaded files --------------------
def _swc_servers(raw: str) -> list[dict[str, str]]:
    """`SWC_SERVERS`: comma-separated server addresses, each optionally followed by `|` and the
    `Authorization` header of the reverse proxy in front of it (SWC itself has no auth):
    `http://10.0.0.5:5344,https://gpu2.internal|Bearer s3cret`. Being operator configuration,
    private addresses are allowed here (and only here)."""
    servers: list[dict[str, str]] = []
    for entry in raw.split(","):
        url, _, authorization = entry.strip().partition("|")
        url = url.strip().rstrip("/")
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ImproperlyConfigured(f"SWC_SERVERS: {url!r} is not an http(s) server address.")
        if any(server["url"] == url for server in servers):
            raise ImproperlyConfigured(f"SWC_SERVERS names {url} twice.")
        servers.append({"url": url, "authorization": authorization.strip()})
    return servers


SWC_SERVERS = _swc_servers(env_str("SWC_SERVERS"))
# Outside production, SWC_SIMULATOR=1 without servers makes `make run` start two simulators on
# these ports and send files to them (Unmark's own remover cleans files without them).
SWC_SIMULATOR_PORTS = [int(port) for port in env_list("SWC_SIMULATOR_PORTS", ["5344", "5345"])]
SWC_SIMULATOR = not PRODUCTION and not SWC_SERVERS and env_bool("SWC_SIMULATOR")
if SWC_SIMULATOR:
    SWC_SERVERS = [
        {"url": f"http://127.0.0.1:{port}", "authorization": ""} for port in SWC_SIMULATOR_PORTS
    ]
# Each server runs one video at a time; two in flight lets the next upload overlap the run.
SWC_MAX_IN_FLIGHT = env_int("SWC_MAX_IN_FLIGHT", 2, minimum=1)
# A task whose percentage has not moved for this long (while it should be running) is sent
# to another server.
SWC_STALL_SECONDS = env_int("SWC_STALL_SECONDS", 180, minimum=5)
SWC_TIMEOUT_SECONDS = env_int("SWC_TIMEOUT_SECONDS", 10, minimum=1)
SWC_UPLOAD_TIMEOUT_SECONDS = env_int("SWC_UPLOAD_TIMEOUT_SECONDS", 300, minimum=10)
# How long one video takes on one server, for admission control (how long a batch would wait):
# the simulators' speed locally, a 60-second clip on a mid-range GPU otherwise.
SWC_SECONDS_PER_VIDEO = env_int("SWC_SECONDS_PER_VIDEO", 2 if SWC_SIMULATOR else 120, minimum=1)
# Sends of one job (the first and re-sends after a lost, stalled or failed task) before it fails.
SWC_MAX_SENDS = env_int("SWC_MAX_SENDS", 4, minimum=1)
# SWC's ERROR gives no reason; a video that fails on this many servers is not tried again.
SWC_MAX_ERRORS = 2
# Asked this often while running (due by the dispatcher's next round, which is every second).
SWC_POLL_SECONDS = 0.5
# What an hour of one server's GPU costs us, in dollars: a video's cost is its processing time
# at this price (kept as whole millionths of a dollar).
SWC_PRICE_PER_GPU_HOUR_MICROS = env_micros("SWC_PRICE_PER_GPU_HOUR", "0.80")
# Once a new file would wait longer than this for a server of the pool (or a process of our
# remover), it overflows to the next file provider of the routing policy (when one is enabled
# and healthy).
SWC_OVERFLOW_WAIT_SECONDS = env_int("SWC_OVERFLOW_WAIT_SECONDS", 60, minimum=0)

# --- Unmark's own remover: files cleaned on the CPU of the worker machines ------------------------
# Removal processes one worker machine runs at once: each takes up to ~400 MB and a core.
REMOVER_PROCESSES = env_int("REMOVER_PROCESSES", 1, minimum=0)
# How long one video takes in one process, for admission control and the overflow wait (a 10 s
# clip: about 7 s).
REMOVER_SECONDS_PER_VIDEO = env_int("REMOVER_SECONDS_PER_VIDEO", 30, minimum=1)
# What an hour of one core costs us, in dollars: a video's cost is its CPU time at this price.
REMOVER_PRICE_PER_CPU_HOUR_MICROS = env_micros("REMOVER_PRICE_PER_CPU_HOUR", "0.04")

# --- Routing: which providers take each kind of input, in order of preference -----------------
# A job goes to the first one that is enabled (configured, not switched off by staff), healthy
# and has room; names are checked against the provider registry when the app starts. Without
# SWC servers the pool takes nothing, so Unmark's own remover comes first.
FILE_PROVIDERS = env_list("FILE_PROVIDERS", ["swc", "local", "replicate"])
LINK_PROVIDERS = env_list("LINK_PROVIDERS", ["kie"])

# --- Replicate: the same remover hosted, elastic capacity for files (shared/providers.md) ----
REPLICATE_SIMULATOR_PORT = env_int("REPLICATE_SIMULATOR_PORT", 5346, minimum=1)
# The token the simulator started by `make run` accepts; it opens nothing anywhere else.
REPLICATE_SIMULATOR_API_TOKEN = "simulator-token"  # noqa: S105 (opens only the simulator)
# Optional capacity: production runs without Replicate unless a token is set (never required).
REPLICATE_API_TOKEN = env_str("REPLICATE_API_TOKEN")
# Outside production, REPLICATE_SIMULATOR=1 without a token makes local runs talk to the
# Replicate simulator on loopback (`make run` starts it).
REPLICATE_SIMULATOR = not PRODUCTION and not REPLICATE_API_TOKEN and env_bool("REPLICATE_SIMULATOR")
if REPLICATE_SIMULATOR:
    REPLICATE_API_TOKEN = REPLICATE_SIMULATOR_API_TOKEN
    REPLICATE_BASE_URL = f"http://127.0.0.1:{REPLICATE_SIMULATOR_PORT}"
else:
    REPLICATE_BASE_URL = (env_str("REPLICATE_BASE_URL") or "https://api.replicate.com").rstrip("/")
# `owner/name:version` (a pinned version, sent to POST /v1/predictions) or `owner/name` (the
# model's current version, POST /v1/models/owner/name/predictions). The default pins the
# version whose input schema this client was written against (input `video`, a file URL).
REPLICATE_MODEL = env_str(
    "REPLICATE_MODEL",
    "uglyrobot/sora2-watermark-remover:"
    "7b636d39f482f129dfa3429fdc7c5c2d4f4ef36e4cbc6d919b701c1d39162797",
)
if REPLICATE_MODEL.count("/") != 1 or not all(REPLICATE_MODEL.split(":")[0].split("/")):
    raise ImproperlyConfigured(
        f"REPLICATE_MODEL={REPLICATE_MODEL!r} must be owner/name or owner/name:version."
    )
# The account's webhook signing secret (`whsec_…`); when empty it is fetched from
# GET /v1/webhooks/default/secret and cached.
REPLICATE_WEBHOOK_SECRET = env_str("REPLICATE_WEBHOOK_SECRET")
# What a second of `predict_time` costs on the model's hardware, in dollars (the model page
# names its GPU; Replicate's price list gives the rate). Recorded as each job's cost.
try:
    REPLICATE_PRICE_PER_SECOND = Decimal(env_str("REPLICATE_PRICE_PER_SECOND") or "0.000975")
except ArithmeticError:
    raise ImproperlyConfigured("REPLICATE_PRICE_PER_SECOND must be a decimal number.") from None
if not REPLICATE_PRICE_PER_SECOND.is_finite() or REPLICATE_PRICE_PER_SECOND < 0:
    raise ImproperlyConfigured("REPLICATE_PRICE_PER_SECOND must not be negative.")
REPLICATE_TIMEOUT_SECONDS = env_int("REPLICATE_TIMEOUT_SECONDS", 30, minimum=1)
# Replicate takes 600 new predictions a minute per account.
REPLICATE_CREATE_LIMIT = env_int("REPLICATE_CREATE_LIMIT", 600, minimum=1)
# How long the link to an original that Replicate fetches stays valid: long enough for a cold
# start (the model fetches its input when it starts), short enough to be worthless later.
REPLICATE_INPUT_URL_SECONDS = env_int("REPLICATE_INPUT_URL_SECONDS", 1800, minimum=60)

# --- Outgoing webhooks (apps/webhooks) ----------------------------------------------------------
# A team's endpoints are vetted like result downloads: never private, loopback or link-local
# addresses, and https only in production (plain http is allowed locally to try a receiver).
WEBHOOK_HTTPS_ONLY = PRODUCTION or env_bool("WEBHOOK_HTTPS_ONLY", False)
# Lets endpoints on loopback through (a receiver on the same machine). Tests turn it on for
# their own receivers; production refuses it.
WEBHOOK_ALLOW_LOOPBACK = env_bool("WEBHOOK_ALLOW_LOOPBACK", False)
if PRODUCTION and WEBHOOK_ALLOW_LOOPBACK:
    raise ImproperlyConfigured("WEBHOOK_ALLOW_LOOPBACK must stay off in production (SSRF).")
# The longest one delivery may take, connecting and answering included.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 15, minimum=1)
# An endpoint that has failed every delivery for this long is turned off and its team told.
WEBHOOK_DISABLE_AFTER_DAYS = env_int("WEBHOOK_DISABLE_AFTER_DAYS", 5, minimum=1)
# Delivery logs are kept this long, then deleted by the minute sweep.
WEBHOOK_LOG_RETENTION_DAYS = env_int("WEBHOOK_LOG_RETENTION_DAYS", 30, minimum=1)
# After a rotation, deliveries are signed with the old secret too for this long.
WEBHOOK_ROTATION_OVERLAP_HOURS = env_int("WEBHOOK_ROTATION_OVERLAP_HOURS", 24, minimum=0)

# --- Jobs ---------------------------------------------------------------------------------------
MAX_LINKS_PER_SUBMIT = env_int("MAX_LINKS_PER_SUBMIT", 50, minimum=1)
RESULT_RETENTION_DAYS = env_int("RESULT_RETENTION_DAYS", 7, minimum=1)
RESULT_MAX_BYTES = env_int("RESULT_MAX_MB", 1024, minimum=1) * 1024 * 1024
# Partial downloads live here until complete; on the media disk, finished files are moved
# into place rather than copied.
DOWNLOAD_TEMP_DIR = env_str("DOWNLOAD_TEMP_DIR") or str(VAR_DIR / "tmp")
# Uploaded videos: refused while still arriving once over the size cap, then judged by their
# content (PyAV) against the length and resolution caps. Originals are deleted this long after
# their job ends (or after being uploaded and never submitted).
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 500 * 1024 * 1024, minimum=1)
UPLOAD_MAX_SECONDS = env_int("UPLOAD_MAX_SECONDS", 60, minimum=1)
# Longest side of the picture, so portrait and landscape exports are treated alike.
UPLOAD_MAX_SIDE = env_int("UPLOAD_MAX_SIDE", 1920, minimum=16)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 20, minimum=1)
ORIGINAL_RETENTION_HOURS = env_int("ORIGINAL_RETENTION_HOURS", 24, minimum=1)
# With S3 storage the browser sends files straight to the bucket on a presigned POST this long.
UPLOAD_PRESIGN_SECONDS = env_int("UPLOAD_PRESIGN_SECONDS", 600, minimum=30)
# Every upload streams to a temporary file on disk, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = DOWNLOAD_TEMP_DIR
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_HANDLERS = ["apps.jobs.uploads.CappedUploadHandler"]
JOB_GIVE_UP_SECONDS = env_int("JOB_GIVE_UP_SECONDS", 15 * 60, minimum=60)
# A worker step that has not reported for this long is presumed dead and is run again.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60, minimum=5)
MAX_SEND_ATTEMPTS = 5
MAX_DOWNLOAD_ATTEMPTS = 3
POLLER_RUN_SECONDS = 55
POLLER_INTERVAL_SECONDS = 1.0
POLLER_HORIZON_SECONDS = 10
# While a provider takes no work (maintenance, paused…), how often a cheap call asks if it is back.
PROVIDER_PROBE_SECONDS = env_int("PROVIDER_PROBE_SECONDS", 15, minimum=1)

# --- The public API (/api/v1/) ----------------------------------------------------------------
# API keys are stored as an HMAC of the key under this secret: the database alone opens nothing.
# Production sets its own; elsewhere it is derived from SECRET_KEY.
if PRODUCTION:
    API_KEY_HASH_KEY = env_required("API_KEY_HASH_KEY")
else:
    API_KEY_HASH_KEY = (
        env_str("API_KEY_HASH_KEY")
        or hmac.new(SECRET_KEY.encode(), b"unmark.api-key-hash", hashlib.sha256).hexdigest()
    )
# Requests per key per minute; more are answered 429 with Retry-After.
API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 120, minimum=1)
# How long the answer to a POST with an Idempotency-Key is kept (at least a day).
API_IDEMPOTENCY_HOURS = env_int("API_IDEMPOTENCY_HOURS", 24, minimum=24)
# How long a signed result link from the API stays valid.
API_RESULT_URL_SECONDS = env_int("API_RESULT_URL_SECONDS", 300, minimum=30)

# --- Auth and accounts ----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = (
    "mandatory"
    if PRODUCTION
    else env_choice("ACCOUNT_EMAIL_VERIFICATION", ("none", "optional", "mandatory"), "optional")
)
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_ADAPTER = "apps.billing.welcome.SignupAdapter"
ACCOUNT_FORMS = {
    "login": "apps.accounts.forms.LoginForm",
    "signup": "apps.accounts.forms.SignupForm",
    "change_password": "apps.accounts.forms.ChangePasswordForm",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PRODUCT_NAME}] "
# allauth's login and signup rate limits stay on in every mode (its defaults).
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/300s/key"}
# Behind the load balancer every request comes from its address: per-IP limits must read the
# client's address from the proxies we run, or one attacker would lock everybody out.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1 if PRODUCTION else 0, minimum=0)

# Two-factor: authenticator apps, recovery codes, security keys and passkeys (WebAuthn).
MFA_ADAPTER = "apps.accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = "Unmark"
# Phones' clocks drift: a code from the window just before or after is accepted too.
MFA_TOTP_TOLERANCE = 1
# The WebAuthn "relying party": the site's domain that keys are bound to. A key registered for
# one domain never works on another, so production names it once instead of trusting the Host
# header; local runs and tests use the host they are opened on (browsers accept
# http://localhost as secure, never a bare IP address).
_public_host = urlsplit(PUBLIC_BASE_URL).hostname
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID") or (_public_host if PRODUCTION else None)
if PRODUCTION and not WEBAUTHN_RP_ID:
    raise ImproperlyConfigured("Set WEBAUTHN_RP_ID (or PUBLIC_BASE_URL) to the site's domain.")
WEBAUTHN_RP_NAME = "Unmark"
# Staff see every team's money and jobs: in production the admin refuses them until they have
# two-factor set up.
STAFF_REQUIRE_MFA = env_bool("STAFF_REQUIRE_MFA", PRODUCTION)
# The sessions page lists each session's address and browser as of its sign-in. Tracking them
# on every request (USERSESSIONS_TRACK_ACTIVITY) would write a row on each live refresh.

# --- Email ----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Unmark <no-reply@unmark.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if env_str("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": env_str("EMAIL_HOST"),
                "port": env_int("EMAIL_PORT", 587, minimum=1),
                "username": env_str("EMAIL_HOST_USER"),
                "password": env_str("EMAIL_HOST_PASSWORD"),
                "use_tls": env_bool("EMAIL_USE_TLS", True),
                "timeout": 10,
            },
        }
    }
elif PRODUCTION:
    raise ImproperlyConfigured("Set EMAIL_HOST (SMTP) so verification emails can be delivered.")
else:
    # Locally every email is written under var/mail/ and named by one printed line.
    MAILERS = {
        "default": {
            "BACKEND": "config.local_mail.LocalMailBackend",
            "OPTIONS": {"folder": VAR_DIR / "mail"},
        }
    }

# --- Credits and Stripe ---------------------------------------------------------------------
# Credits are whole numbers; money is computed from them on the server, in integer cents.
SIGNUP_CREDITS = env_int("SIGNUP_CREDITS", 30, minimum=0)
CREDITS_PER_VIDEO = 10
USD_PER_CREDIT = Decimal("0.005")
MIN_TOPUP_CREDITS = env_int("MIN_TOPUP_CREDITS", 1000, minimum=1)
try:
    CREDIT_PACKS = sorted({int(n) for n in env_list("CREDIT_PACKS", ["1000", "5000", "20000"])})
except ValueError:
    raise ImproperlyConfigured("CREDIT_PACKS must be whole numbers of credits.") from None
if not CREDIT_PACKS or min(CREDIT_PACKS) < MIN_TOPUP_CREDITS:
    raise ImproperlyConfigured(f"Every credit pack must be at least {MIN_TOPUP_CREDITS} credits.")
if any((credits * USD_PER_CREDIT * 100) % 1 for credits in CREDIT_PACKS):
    raise ImproperlyConfigured("Every credit pack must cost a whole number of cents.")
# Where people write to (the Contact page, frozen credits, payments not set up).
SUPPORT_EMAIL = env_str("SUPPORT_EMAIL", "support@unmark.localhost")
# Who runs this service, as the Terms, Privacy and Contact pages name them.
OPERATOR_NAME = env_str("OPERATOR_NAME", PRODUCT_NAME)
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
if PRODUCTION and STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    # Without it no payment could be verified, so no top-up would ever be credited.
    raise ImproperlyConfigured(
        "Set STRIPE_WEBHOOK_SECRET (or _FILE) when STRIPE_SECRET_KEY is set."
    )

# --- Static files and media -----------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
if not PRODUCTION:
    # WhiteNoise warns when the collected-files folder is missing, even though local runs
    # serve from the source folders; an empty one keeps the logs clean.
    STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Local runs serve straight from the source folders; production serves the hashed,
# compressed copies that `collectstatic` made at image build time.
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"

AWS_STORAGE_BUCKET_NAME = (
    env_required("AWS_STORAGE_BUCKET_NAME") if PRODUCTION else env_str("AWS_STORAGE_BUCKET_NAME")
)
if AWS_STORAGE_BUCKET_NAME:
    _default_storage: dict[str, object] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
            "signature_version": "s3v4",
            # Download links are handed out one at a time, after a team check.
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 300, minimum=30),
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", *env_list("CSP_MEDIA_SRC")],
    "media-src": [CSP.SELF, "blob:", *env_list("CSP_MEDIA_SRC")],
    # The bucket's origin, when browsers upload straight to S3.
    "connect-src": [CSP.SELF, *env_list("CSP_CONNECT_SRC")],
    "form-action": [CSP.SELF, "https://checkout.stripe.com"],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: one line per event, key=value pairs (or a JSON object) with `extra` -----------
# `LOG_FORMAT=json` writes one JSON object per line (time, level, logger, message, request_id,
# job and the rest of `extra`), for log collectors; the default reads well in a terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", ("keyvalue", "json"), "keyvalue")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "keyvalue": {"()": "config.logfmt.KeyValueFormatter"},
        "json": {"()": "config.logfmt.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Metrics and errors -----------------------------------------------------------------------
# `/metrics` (Prometheus) answers only requests bearing this token; without one it is 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Errors go to Sentry when a DSN is given. No personal data (addresses, cookies, users) is sent
# unless SENTRY_SEND_PII says so; traces only at the sample rate asked for (none by default).
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    try:
        _traces_sample_rate = float(env_str("SENTRY_TRACES_SAMPLE_RATE", "0"))
    except ValueError:
        raise ImproperlyConfigured(
            "SENTRY_TRACES_SAMPLE_RATE must be a number from 0 to 1."
        ) from None
    if not 0 <= _traces_sample_rate <= 1:
        raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE must be a number from 0 to 1.")
    _send_pii = env_bool("SENTRY_SEND_PII", False)
    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration()],
        environment=env_str("SENTRY_ENVIRONMENT", DJANGO_ENV),
        release=env_str("SENTRY_RELEASE") or None,
        send_default_pii=_send_pii,
        traces_sample_rate=_traces_sample_rate,
        # Events carry each frame's local variables: the names our secrets go by are filtered
        # out wherever they sit (recursive: template contexts and kwargs hold them too).
        event_scrubber=EventScrubber(
            denylist=[
                *DEFAULT_DENYLIST,
                "raw_key",  # an API key, whole (apps/api/keys.py)
                "new_key",  # the same, shown once on the team's key page
                "new_secret",  # a webhook endpoint's signing secret, shown once
                "previous_secret",  # the one it replaced, still valid for a while
                "signing_secrets",
                "ticket",  # upload tickets stand in for the key that asked for them
                "dsn",
            ],
            recursive=True,
            send_default_pii=_send_pii,
        ),
    )

# --- Content Credentials (C2PA): apps/provenance ---------------------------------------------
# Every delivered result carries a signed C2PA manifest: the original as its parent, what was
# done to it (watermark removed), by which product, and that the picture is AI-made. While
# C2PA_SIGNING is on, a result that cannot be signed is never delivered (the job fails and is
# refunded); an operator may turn it off to deliver results as the provider made them.
C2PA_SIGNING = env_bool("C2PA_SIGNING", True)
# The operator's signing certificate chain (PEM: the signing certificate first, then its
# intermediates) and its private key (PEM, EC P-256: ES256). Production needs both while
# signing is on; `apps.provenance.check_signing_keys()` refuses to start without them, or with
# keys c2pa would refuse. Elsewhere, without them, a local test CA and signer are made under
# C2PA_LOCAL_DIR on first use: untrusted by every verifier, for development only.
C2PA_CERT_CHAIN = env_str("C2PA_CERT_CHAIN")
C2PA_PRIVATE_KEY = env_str("C2PA_PRIVATE_KEY")
C2PA_LOCAL_DIR = VAR_DIR / "c2pa"
# An RFC 3161 timestamp authority, so signatures stay valid after the certificate expires.
# Each signing then waits on it (and fails, with the job, when it does not answer); none by
# default.
C2PA_TIMESTAMP_URL = env_str("C2PA_TIMESTAMP_URL")
if C2PA_TIMESTAMP_URL and urlsplit(C2PA_TIMESTAMP_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(
        f"C2PA_TIMESTAMP_URL={C2PA_TIMESTAMP_URL!r} must be an http(s) address."
    )
# Root certificates (PEM) whose signatures read as "trusted" (for example the C2PA trust
# list). Without them every signature, ours included, reads as valid but untrusted.
C2PA_TRUST_ANCHORS = env_str("C2PA_TRUST_ANCHORS")
# --- end of Content Credentials ------------------------------------------------------------------
