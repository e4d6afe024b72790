"""Configuration, read from the environment.

Every setting has an ``SCM_`` environment variable (``SECRET_KEY`` too). ``SCM_ENV`` picks the
class: ``development`` (default for ``make run``), ``testing`` or ``production``.
"""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("SCM_INSTANCE_PATH", BASE_DIR / "instance"))

DEFAULT_SECRET_KEY = "dev-only-not-secret"


def _env(name, default=None):
    return os.environ.get(name, default)


def _env_int(name, default):
    return int(os.environ.get(name, default))


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = "base"
    SECRET_KEY = _env("SECRET_KEY", DEFAULT_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = _env("SCM_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'scm.sqlite3'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}

    # Uploaded files live in the database (file_blobs), which every web node shares. The old upload
    # folder is read only by the migration 0008_file_store (which moves its files into the database)
    # and by the restore of a backup made before it.
    UPLOAD_FOLDER = _env("SCM_UPLOAD_FOLDER", str(INSTANCE_DIR / "uploads"))
    MAX_UPLOAD_BYTES = _env_int("SCM_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    # The whole request may be a little larger than the largest upload (a 20 MB usage report)
    # plus the form fields; anything bigger is cut off with a 413 page before Flask reads it.
    MAX_CONTENT_LENGTH = _env_int("SCM_MAX_REQUEST_BYTES", 21 * 1024 * 1024)

    # Sessions: HttpOnly, SameSite, idle timeout (refreshed on each request).
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SCM_SESSION_COOKIE_SECURE", False)
    SESSION_COOKIE_NAME = "scm_session"
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=_env_int("SCM_IDLE_TIMEOUT_MINUTES", 30))
    SESSION_REFRESH_EACH_REQUEST = True
    REMEMBER_COOKIE_HTTPONLY = True
    # Strict-Transport-Security max-age (0: not sent). Production sends a year: it runs behind HTTPS.
    HSTS_SECONDS = _env_int("SCM_HSTS_SECONDS", 0)

    # Operations. TRUSTED_PROXIES: how many reverse proxies stand in front (nginx: 1); their
    # X-Forwarded-For/-Proto/-Host and X-Request-ID are believed, nobody else's.
    TRUSTED_PROXIES = _env_int("SCM_TRUSTED_PROXIES", 0)
    LOG_FORMAT = _env("SCM_LOG_FORMAT", "text")  # "json" (one object a line) or "text"
    LOG_LEVEL = _env("SCM_LOG_LEVEL", "INFO")
    # /metrics (Prometheus) answers only these client networks (comma-separated CIDRs) or a
    # scraper sending "Authorization: Bearer SCM_METRICS_TOKEN"; anyone else gets a 404.
    METRICS_ALLOW = _env("SCM_METRICS_ALLOW", "127.0.0.1/32,::1/128")
    METRICS_TOKEN = _env("SCM_METRICS_TOKEN")
    # API rate limit per token (Flask-Limiter notation), counted in RATELIMIT_STORAGE_URI:
    # memory (one process) by default, redis://host:6379/0 so that every node counts together.
    API_RATE_LIMIT = _env("SCM_API_RATE_LIMIT", "3000 per minute")
    RATELIMIT_STORAGE_URI = _env("SCM_RATELIMIT_STORAGE_URL", "memory://")

    # Werkzeug's password hash method. scrypt everywhere but in the test suite, which would
    # otherwise spend most of its time hashing the passwords its factories create.
    PASSWORD_HASH_METHOD = "scrypt"

    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session, which has its own idle timeout

    # Login throttling: LOGIN_MAX_FAILURES failures within LOGIN_WINDOW_MINUTES lock the
    # account name for LOGIN_LOCK_MINUTES, whether or not such a user exists.
    LOGIN_MAX_FAILURES = _env_int("SCM_LOGIN_MAX_FAILURES", 5)
    LOGIN_WINDOW_MINUTES = _env_int("SCM_LOGIN_WINDOW_MINUTES", 15)
    LOGIN_LOCK_MINUTES = _env_int("SCM_LOGIN_LOCK_MINUTES", 15)

    # Mail: "log" writes mail to the application log, "smtp" sends it.
    MAIL_BACKEND = _env("SCM_MAIL_BACKEND", "log")
    MAIL_SERVER = _env("SCM_MAIL_SERVER", "localhost")
    MAIL_PORT = _env_int("SCM_MAIL_PORT", 25)
    MAIL_USE_TLS = _env_bool("SCM_MAIL_USE_TLS", False)
    MAIL_USERNAME = _env("SCM_MAIL_USERNAME")
    MAIL_PASSWORD = _env("SCM_MAIL_PASSWORD")
    MAIL_SENDER = _env("SCM_MAIL_SENDER", "SCM Meterai <no-reply@scm-meterai.local>")
    MAIL_TIMEOUT_SECONDS = _env_int("SCM_MAIL_TIMEOUT_SECONDS", 5)
    # Try to deliver right after the action commits; failures stay in the outbox for a retry.
    MAIL_SEND_ON_COMMIT = _env_bool("SCM_MAIL_SEND_ON_COMMIT", True)
    # Base URL used in links inside emails (the private correction link).
    PUBLIC_BASE_URL = _env("SCM_PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    CORRECTION_LINK_DAYS = _env_int("SCM_CORRECTION_LINK_DAYS", 14)
    # Forgotten password: a link works once, for PASSWORD_RESET_LINK_MINUTES; at most
    # PASSWORD_RESET_MAX_LINKS links per email (and per client address, times ten) within
    # PASSWORD_RESET_WINDOW_MINUTES; further requests get the same answer and no mail.
    PASSWORD_RESET_LINK_MINUTES = _env_int("SCM_PASSWORD_RESET_LINK_MINUTES", 60)
    PASSWORD_RESET_MAX_LINKS = _env_int("SCM_PASSWORD_RESET_MAX_LINKS", 3)
    PASSWORD_RESET_WINDOW_MINUTES = _env_int("SCM_PASSWORD_RESET_WINDOW_MINUTES", 60)

    BABEL_DEFAULT_LOCALE = "id"
    BABEL_DEFAULT_TIMEZONE = "Asia/Jakarta"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    LANGUAGES = ("id", "en")

    # Ordering: the default price of one e-Meterai (a contract may agree another) and the
    # largest quantity one purchase request may ask for.
    DEFAULT_UNIT_PRICE = _env_int("SCM_DEFAULT_UNIT_PRICE", 10_000)
    PR_MAX_QUANTITY = _env_int("SCM_PR_MAX_QUANTITY", 1_000_000)

    # Stamping: a reservation not committed within this time is released by the scheduler.
    RESERVATION_MINUTES = _env_int("SCM_RESERVATION_MINUTES", 15)
    # The stamp time window: a reported stamp time may be at most this many minutes in the future,
    # and not before the first day of the (WIB) month this many months back (2: in November, from
    # 1 September 00:00 WIB on). Older stamps only by the distributor admin's deliberate import.
    STAMP_MAX_FUTURE_MINUTES = _env_int("SCM_STAMP_MAX_FUTURE_MINUTES", 5)
    STAMP_LOOKBACK_MONTHS = _env_int("SCM_STAMP_LOOKBACK_MONTHS", 2)
    API_MAX_BODY_BYTES = _env_int("SCM_API_MAX_BODY_BYTES", 1024 * 1024)
    API_MAX_BATCH = 1000
    DOCUMENT_TYPES = tuple(
        t.strip() for t in _env(
            "SCM_DOCUMENT_TYPES",
            "surat_perjanjian,surat_keterangan,akta_notaris,akta_ppat,surat_berharga,efek,cek,bilyet_giro,"
            "dokumen_lelang,dokumen_transaksi,dokumen_lain",
        ).split(",") if t.strip()
    )

    # Billing: defaults until DIST_ADMIN saves the billing settings and contract terms.
    DISTRIBUTOR_NAME = _env("SCM_DISTRIBUTOR_NAME", "PT Distributor Meterai Nusantara")
    DISTRIBUTOR_ADDRESS = _env("SCM_DISTRIBUTOR_ADDRESS", "Jl. Jenderal Sudirman Kav. 52-53, Jakarta Selatan 12190")
    DISTRIBUTOR_NPWP = _env("SCM_DISTRIBUTOR_NPWP", "")
    DISTRIBUTOR_BANK_NAME = _env("SCM_DISTRIBUTOR_BANK_NAME", "")
    DISTRIBUTOR_BANK_ACCOUNT = _env("SCM_DISTRIBUTOR_BANK_ACCOUNT", "")
    DISTRIBUTOR_BANK_HOLDER = _env("SCM_DISTRIBUTOR_BANK_HOLDER", "")
    MONTHLY_MINIMUM = _env_int("SCM_MONTHLY_MINIMUM", 1000)
    PAYMENT_DUE_DAY = _env_int("SCM_PAYMENT_DUE_DAY", 10)

    BOOTSTRAP_SERVE_LOCAL = True
    PAGE_SIZE = _env_int("SCM_PAGE_SIZE", 25)
    # The task queue (Huey) that runs heavy work in the background: sqlite:///PATH (embedded, one
    # machine), redis://host:6379/0 (several machines), or "immediate" (run where started: tests).
    QUEUE_URL = _env("SCM_QUEUE_URL", f"sqlite:///{INSTANCE_DIR / 'queue.sqlite3'}")
    QUEUE_NAME = _env("SCM_QUEUE_NAME", "scm")
    # A worker holds its task for this long and renews it with every progress step; a task whose
    # worker died is put back on the queue by requeue-tasks (every TASK_SWEEP_SECONDS).
    TASK_LEASE_SECONDS = _env_int("SCM_TASK_LEASE_SECONDS", 120)
    TASK_SWEEP_SECONDS = _env_int("SCM_TASK_SWEEP_SECONDS", 60)
    TASK_RESULT_HOURS = _env_int("SCM_TASK_RESULT_HOURS", 72)  # how long a produced file can be downloaded
    EXPORT_INLINE_ROWS = _env_int("SCM_EXPORT_INLINE_ROWS", 5000)  # bigger exports are prepared in the queue
    TASK_STEP_DELAY = float(_env("SCM_TASK_STEP_DELAY", "0"))  # testing only: seconds slept per progress step

    # Retention (the daily prune-records job): job runs older than this are deleted (each job's last
    # run is kept), and sent mail older than this loses its body (the row stays). The audit log is
    # never pruned.
    JOB_RUN_RETENTION_DAYS = _env_int("SCM_JOB_RUN_RETENTION_DAYS", 90)
    OUTBOX_RETENTION_DAYS = _env_int("SCM_OUTBOX_RETENTION_DAYS", 180)


class DevelopmentConfig(Config):
    ENV_NAME = "development"


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    MAIL_BACKEND = "smtp"
    SERVER_NAME = None
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1"  # cheap: tests hash thousands of passwords
    QUEUE_URL = _env("SCM_QUEUE_URL", "immediate")  # tasks run where they start (the worker tests set a queue)
    # A complete invoice header, so that tests can issue invoices without saving settings first.
    DISTRIBUTOR_NPWP = "013000666091000"
    DISTRIBUTOR_BANK_NAME = "Bank Mandiri"
    DISTRIBUTOR_BANK_ACCOUNT = "1230009876543"
    DISTRIBUTOR_BANK_HOLDER = "PT Distributor Meterai Nusantara"


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = _env_bool("SCM_SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = True
    HSTS_SECONDS = _env_int("SCM_HSTS_SECONDS", 365 * 24 * 3600)
    LOG_FORMAT = _env("SCM_LOG_FORMAT", "json")
    METRICS_ALLOW = _env("SCM_METRICS_ALLOW", "")  # closed unless the operator opens it
    MAIL_BACKEND = _env("SCM_MAIL_BACKEND", "smtp")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
