"""Gateway settings, read from the environment with the prefix ``VGW_`` (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of one gateway process.

    Environment variables are the field names upper-cased with the ``VGW_`` prefix,
    for example ``VGW_SIP_PORT=5080``. Secrets are ``SecretStr`` so they never print.
    """

    model_config = SettingsConfigDict(env_prefix="VGW_", env_file=None, extra="ignore")

    http_host: str = "0.0.0.0"
    http_port: int = 8080
    #: Base URL put in media_session_access_url; default ``http://<advertised host>:<port>``.
    public_url: str | None = None
    sip_host: str = "0.0.0.0"
    sip_port: int = 5060
    #: Address written into Via/Contact/SDP; default: sip_host, or 127.0.0.1 for 0.0.0.0.
    advertised_host: str | None = None
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    #: Jitter buffer depth for RTP in, in 20 ms frames.
    jitter_depth_frames: int = Field(default=3, ge=1, le=50)
    database_url: str = "sqlite:///./voice-gateway.db"
    #: Session logs: one file per session under ``<logs_dir>/<account_id>/``.
    logs_dir: str = "./logs"
    account_id: int | None = None
    account_name: str = "default"
    api_key: SecretStr | None = None
    sip_trunk_uri: str | None = None
    sip_trunk_user: str | None = None
    sip_trunk_password: SecretStr | None = None
    #: Seconds a session may live with no calls before it ends.
    session_idle_timeout: float = 60.0
    #: Seconds an outbound call may stay unanswered before it fails with 408.
    call_answer_timeout: float = 60.0
    #: Seconds an AppEvents.HttpRequest handler has before the caller gets 504.
    http_handler_timeout: float = 5.0
    #: Maximum size of StartScenarios' script_custom_data, in bytes (Voximplant documents 200).
    custom_data_max_bytes: int = 4096
    log_level: str = "INFO"
    #: PEM certificate (chain) file; with ``tls_key`` the HTTP API is served over HTTPS.
    tls_cert: str | None = None
    #: PEM private key file of ``tls_cert``.
    tls_key: str | None = None
    #: Key that encrypts secret values at rest (Fernet key, or any long random string).
    #: Unset: values are stored in plain text in the database.
    secrets_key: SecretStr | None = None
    #: On an account with no application, create "default" / rule "inbound" (".*")
    #: running scenarios/inbound_ai.py, so a fresh install answers calls at once.
    bootstrap_inbound: bool = True
    #: Speech recognition worker processes shared by every call (PocketSphinx model
    #: copies; the offline cascade and ASR use them). Unset: one per CPU core.
    speech_workers: int | None = Field(default=None, ge=1)
    #: StartScenarios answers HTTP 429 while an account has this many sessions in flight.
    max_sessions_per_account: int = Field(default=200, ge=1)
    # -- scenario runtime limits (VoxEngine parity) -------------------------------------
    #: Seconds scenario code may hold the event loop in one go (a handler, one step of an
    #: async handler, a timer callback) before the watchdog interrupts it and ends its
    #: session with an error in its log (VoxEngine: 1 s). 0 turns the watchdog off.
    handler_time_limit: float = Field(default=1.0, ge=0)
    #: StartScenarios refuses script_custom_data over 200 bytes (UTF-8) as Voximplant
    #: does (error 9005); false raises the limit to custom_data_max_bytes, our own.
    custom_data_voximplant_limit: bool = True
    #: Recordings (``call.record()``, ``VoxEngine.create_recorder()``): one file each under
    #: ``<recordings_dir>/<account_id>/<session_id>/``, served at ``/records/<id>``.
    recordings_dir: str = "./recordings"

    def sip_advertised_host(self) -> str:
        """Host to put in SIP and SDP headers."""
        if self.advertised_host:
            return self.advertised_host
        return "127.0.0.1" if self.sip_host in ("0.0.0.0", "") else self.sip_host

    def http_base_url(self) -> str:
        """Base URL of the HTTP server as callers reach it (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "") else self.http_host
        scheme = "https" if self.tls_enabled() else "http"
        return f"{scheme}://{host}:{self.http_port}"

    def tls_enabled(self) -> bool:
        """Whether the HTTP server serves HTTPS (both ``tls_cert`` and ``tls_key`` set)."""
        return bool(self.tls_cert and self.tls_key)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment."""
    return Settings()
