"""The ``vgw`` command (typer).

``vgw serve`` runs the gateway. ``vgw keys create``, ``vgw scenarios push FILE --rule
NAME``, ``vgw start RULE --data JSON`` and ``vgw history`` call the platform_api of a
running gateway (``$VGW_URL``), authenticated by ``$VGW_ACCOUNT_ID`` + ``$VGW_API_KEY``
or a service-account credentials file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import typer

from gateway.cli_client import ApiError, PlatformClient
from gateway.settings import Settings

app = typer.Typer(help="voice-gateway: self-hosted Voice AI orchestration gateway.",
                  no_args_is_help=True)


@app.callback()
def main() -> None:
    """voice-gateway command line."""


@app.command()
def serve() -> None:
    """Run the gateway: HTTP management API, SIP over UDP+TCP, scenarios. Settings: VGW_* env."""
    from gateway.server import Gateway

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        gw = Gateway(settings)
        await gw.start()
        # Startup objects (SQLAlchemy, FastAPI, SDK types) never die: keep them out of
        # the collector's way so full collections do not stall the 20 ms media clock.
        gc.collect()
        gc.freeze()
        for line in gw.banner():
            typer.echo(line)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        typer.echo("shutting down: ending sessions")
        await gw.stop()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


# -- management subcommands (platform_api over HTTP) ------------------------------------

_URL = typer.Option(None, "--url", help="Gateway base URL (default $VGW_URL or "
                    "http://127.0.0.1:8080).")
_CREDS = typer.Option(None, "--credentials", help="Service-account credentials JSON "
                      "(default $VGW_CREDENTIALS; else $VGW_ACCOUNT_ID + $VGW_API_KEY).")

keys_app = typer.Typer(help="Service-account keys.", no_args_is_help=True)
scenarios_app = typer.Typer(help="Scenarios.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(scenarios_app, name="scenarios")


def _client(url: str | None, credentials: str | None) -> PlatformClient:
    try:
        return PlatformClient.from_env(url, credentials)
    except ApiError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except ApiError as exc:
        typer.echo(f"vgw: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(f"vgw: cannot reach the gateway: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("create")
def keys_create(
    description: str = typer.Option("", help="What the key is for."),
    role: str | None = typer.Option(None, help="Role name to give the key."),
    out: Path | None = typer.Option(None, help="Write the credentials JSON here (mode 0600) "
                                    "instead of printing it."),
    url: str | None = _URL, credentials: str | None = _CREDS,
) -> None:
    """CreateKey: make a service-account key; prints Voximplant's credentials JSON once."""
    client = _client(url, credentials)

    def go() -> None:
        reply = client.call("CreateKey", description=description, role_name=role)
        creds = reply["result"]
        if isinstance(creds, list):
            creds = creds[0]
        text = json.dumps(creds, indent=2)
        if out is None:
            typer.echo(text)
        else:
            out.touch(mode=0o600, exist_ok=True)
            out.chmod(0o600)
            out.write_text(text + "\n")
            typer.echo(f"key {creds.get('key_id')} written to {out}")

    _run(go)


@scenarios_app.command("push")
def scenarios_push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Scenario .py file."),
    rule: str = typer.Option(..., "--rule", help="Rule to bind the scenario to (created "
                             "if missing)."),
    application: str = typer.Option("default", help="Application of the rule."),
    pattern: str | None = typer.Option(None, help="Pattern for a new rule (default: the "
                                       "rule name, literally)."),
    name: str | None = typer.Option(None, help="Scenario name (default: the file name "
                                    "without .py)."),
    url: str | None = _URL, credentials: str | None = _CREDS,
) -> None:
    """Create or update a scenario from FILE and bind it to RULE."""
    client = _client(url, credentials)
    scenario_name = name or file.stem

    def go() -> None:
        script = file.read_text(encoding="utf-8")
        sc = client.call("AddScenario", scenario_name=scenario_name, scenario_script=script,
                         rewrite=True)
        scenario_id = sc.get("scenario_id")
        if scenario_id is None:
            found = client.call("GetScenarios", scenario_name=scenario_name)["result"]
            scenario_id = found[0]["scenario_id"]
        apps = client.call("GetApplications", application_name=application)["result"]
        app_id = (apps[0]["application_id"] if apps else
                  client.call("AddApplication", application_name=application)["application_id"])
        rules = client.call("GetRules", application_id=app_id, rule_name=rule,
                            with_scenarios=True)["result"]
        if not rules:
            added = client.call("AddRule", application_id=app_id, rule_name=rule,
                                rule_pattern=pattern or re.escape(rule),
                                scenario_id=[scenario_id])
            typer.echo(f"scenario {scenario_name!r} ({scenario_id}) pushed; new rule {rule!r} "
                       f"({added['rule_id']}) in application {application!r}")
            return
        bound = [s.get("scenario_id") for s in rules[0].get("scenarios", [])]
        if scenario_id not in bound:
            client.call("BindScenario", scenario_id=scenario_id, rule_id=rules[0]["rule_id"],
                        application_id=app_id, bind=True)
        typer.echo(f"scenario {scenario_name!r} ({scenario_id}) pushed and bound to rule "
                   f"{rule!r} ({rules[0]['rule_id']})")

    _run(go)


@app.command("start")
def start(
    rule: str = typer.Argument(..., help="Rule name."),
    data: str = typer.Option("", "--data", help="script_custom_data (usually JSON)."),
    application: str = typer.Option("default", help="Application of the rule."),
    url: str | None = _URL, credentials: str | None = _CREDS,
) -> None:
    """StartScenarios: start a session of RULE; prints its access URL."""
    client = _client(url, credentials)

    def go() -> None:
        reply = client.call("StartScenarios", rule_name=rule, application_name=application,
                            script_custom_data=data or None)
        typer.echo(reply["media_session_access_url"])
        typer.echo(f"call_session_history_id={reply['call_session_history_id']} "
                   f"secure_url={reply['media_session_access_secure_url']}", err=True)

    _run(go)


@app.command("history")
def history(
    count: int = typer.Option(20, help="How many sessions."),
    calls: bool = typer.Option(False, "--calls", help="Show each session's calls."),
    url: str | None = _URL, credentials: str | None = _CREDS,
) -> None:
    """GetCallHistory: the latest sessions, newest first."""
    from rich.console import Console
    from rich.table import Table

    client = _client(url, credentials)

    def go() -> None:
        reply = client.call("GetCallHistory", count=count, with_calls=calls, desc_order=True)
        table = Table("id", "start (UTC)", "rule", "duration s", "finish", "calls")
        for s in reply["result"]:
            calls_text = ", ".join(
                f"{c.get('remote_number')} {c.get('finish_reason')} {c.get('duration')}s"
                for c in s.get("calls", []))
            table.add_row(str(s["call_session_history_id"]), str(s.get("start_date")),
                          str(s.get("rule_name")), str(s.get("duration")),
                          str(s.get("finish_reason")), calls_text)
        Console(width=160).print(table)
        typer.echo(f"{reply.get('count')} of {reply.get('total_count')} sessions")

    _run(go)


if __name__ == "__main__":
    app()
