"""Speech and audio playback on a call (VoxEngine ``Call.say``, ``startPlayback``,
``stopPlayback``), as a mixin of :class:`gateway.runtime.call.Call`.

Each is a :class:`~gateway.runtime.player.Player` sent to the call. A call plays one
at a time: a second ``say()`` (or ``start_playback()``) stops the first, as in
VoxEngine. When the player finishes, ``CallEvents.PlaybackFinished`` fires on the
call (``error`` set when it failed).
"""

from __future__ import annotations

from typing import Any

from gateway.runtime.constants import CallEvents
from gateway.runtime.player import Player, PlayerEvents, tts_source, url_source
from gateway.speech import TTSProvider, create_tts


def make_tts_player(text: str, *, voice: str | None = None, tts: str | TTSProvider | None = None,
                    progressive_playback: bool = True, on_pause: bool = False,
                    owner: Any = None, **tts_options: Any) -> Player:
    """A player speaking ``text`` (VoxEngine ``createTTSPlayer``).

    Args:
        voice: the provider's voice ("en-us" for espeak-ng, "alloy" for OpenAI ...).
        tts: None (espeak-ng, shared), a provider name ("espeak", "openai",
            "elevenlabs") or a provider object.
        progressive_playback: start speaking on the first synthesised audio.
        on_pause: create paused (``resume()`` starts it).
        tts_options: options for a provider created by name (``api_key`` ...).

    Raises:
        PlayerError: the session's player limit is reached.
        ValueError: unknown provider name.
    """
    provider = create_tts(tts or "espeak", **tts_options)
    return Player(tts_source(provider, text, voice), provider.output_format,
                  progressive=progressive_playback, paused=on_pause, owner=owner)


def make_url_player(url: str, *, loop: bool = False, progressive_playback: bool = True,
                    on_pause: bool = False, owner: Any = None) -> Player:
    """A player for a WAV/MP3/OGG file at ``url`` (VoxEngine ``createURLPlayer``).

    Raises:
        PlayerError: the session's player limit is reached.
    """
    from gateway.runtime.player import URL_FORMAT

    return Player(url_source(str(url)), URL_FORMAT, loop=loop,
                  progressive=progressive_playback, paused=on_pause, owner=owner)


class CallPlayback:
    """``say`` / ``start_playback`` / ``stop_playback`` for a call (mixin)."""

    _player: Player | None = None

    def say(self, text: str, voice: str | None = None, *, progressive_playback: bool = True,
            tts: str | TTSProvider | None = None, **tts_options: Any) -> Player:
        """Speak ``text`` to the remote side; replaces what this call was playing.

        ``CallEvents.PlaybackFinished`` fires when it has been said. Synthesis runs off
        the event loop; with ``progressive_playback`` speech starts before it ends.

        Returns:
            The player (pause, resume, markers, events).
        """
        return self._play(make_tts_player(text, voice=voice, tts=tts,
                                          progressive_playback=progressive_playback,
                                          owner=self._session, **tts_options))

    def start_playback(self, url: str, loop: bool = False, *,
                       progressive_playback: bool = True) -> Player:
        """Play a WAV/MP3/OGG file (http, https or a local path) to the remote side;
        replaces what this call was playing. ``CallEvents.PlaybackFinished`` follows."""
        return self._play(make_url_player(url, loop=loop,
                                          progressive_playback=progressive_playback,
                                          owner=self._session))

    def stop_playback(self) -> None:
        """Stop what ``say``/``start_playback`` is playing (no PlaybackFinished)."""
        player, self._player = self._player, None
        if player is not None:
            player.stop()

    def _play(self, player: Player) -> Player:
        self.stop_playback()
        self._player = player
        player.add_event_listener(PlayerEvents.PlaybackFinished,
                                  lambda ev: self._playback_done(player, ev))
        player.send_media_to(self)  # type: ignore[arg-type]
        return player

    def _playback_done(self, player: Player, ev: Any) -> None:
        if self._player is not player:
            return
        self._player = None
        error = getattr(ev, "error", None)
        self._ev(CallEvents.PlaybackFinished, player=player,  # type: ignore[attr-defined]
                 **({"error": error} if error else {}))

    # provided by Call
    _session: Any
