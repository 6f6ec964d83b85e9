"""The ``vgw`` command (typer): ``vgw serve`` runs the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

import typer

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


if __name__ == "__main__":
    app()
