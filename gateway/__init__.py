"""voice-gateway: a self-hosted Voice AI orchestration gateway (SIP legs, scenarios, Voice AI)."""

__version__ = "0.1.0"
