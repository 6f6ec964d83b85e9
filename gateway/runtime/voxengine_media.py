"""``VoxEngine.create_*`` for media units: players, ASR, conferences, recorders (a mixin of
:class:`gateway.runtime.voxengine.VoxEngineFacade`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.runtime.asr import ASR
    from gateway.runtime.conference import Conference
    from gateway.runtime.player import Player
    from gateway.runtime.recorder import Recorder
    from gateway.runtime.session import Session
    from gateway.speech import ASRProvider, TTSProvider


class MediaFactories:
    """Media units a scenario creates; each belongs to the session and ends with it."""

    _session: Session

    def create_tts_player(self, text: str, voice: str | None = None, *,
                          tts: str | TTSProvider | None = None,
                          progressive_playback: bool = True, on_pause: bool = False,
                          **tts_options: Any) -> Player:
        """A player speaking ``text`` (VoxEngine ``createTTSPlayer``); attach it with
        ``player.send_media_to(call)``. It starts at once unless ``on_pause``.

        Args:
            voice: the provider's voice (espeak-ng: "en-us", "en-gb" ...).
            tts: None (espeak-ng), "openai", "elevenlabs" or a provider object.
            progressive_playback: speak before synthesis ends.
            tts_options: options of a provider created by name (``api_key`` ...).

        Raises:
            PlayerError: 10 players are alive in this session.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.create_tts_player")
        from gateway.runtime.call_playback import make_tts_player

        return make_tts_player(text, voice=voice, tts=tts,
                               progressive_playback=progressive_playback,
                               on_pause=on_pause, owner=self._session, **tts_options)

    def create_url_player(self, url: str, loop: bool = False, *,
                          progressive_playback: bool = True, on_pause: bool = False) -> Player:
        """A player for a WAV/MP3/OGG file at ``url`` (http, https or a local path;
        VoxEngine ``createURLPlayer``). Downloads are limited in size and time.

        Raises:
            PlayerError: 10 players are alive in this session.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.create_url_player")
        from gateway.runtime.call_playback import make_url_player

        return make_url_player(url, loop=loop, progressive_playback=progressive_playback,
                               on_pause=on_pause, owner=self._session)

    def create_asr(self, profile: str | ASRProvider = "pocketsphinx", language: str = "en-US",
                   *, interim_results: bool = False, vad: dict[str, Any] | None = None) -> ASR:
        """A speech recogniser (VoxEngine ``createASR``); feed it with
        ``call.send_media_to(asr)``. ``ASREvents.Result`` carries ``text`` and ``confidence``.

        Args:
            profile: "pocketsphinx" (offline), "openai", "deepgram" or a provider object.
            language: recognition language.
            interim_results: fire ``ASREvents.InterimResult`` while the caller speaks.
            vad: turn detector options (``stop_ms`` ...).

        Raises:
            ValueError: an unknown profile.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.create_asr")
        from gateway.runtime.asr import ASR

        return ASR(profile, language=language, interim_results=interim_results, vad=vad,
                   owner=self._session)

    def create_conference(self, parameters: dict[str, Any] | None = None, *,
                          hd_audio: bool | None = None, sample_rate: int | None = None,
                          name: str | None = None) -> Conference:
        """Create a :class:`gateway.runtime.conference.Conference` in this session
        (VoxEngine ``createConference(ConferenceParameters)``); ``ConferenceEvents.Started``
        follows. Join units with ``send_media_between(call, conference)`` or
        ``conference.add(call=...)``; the session stops the conference when it ends.

        With ``name`` the conference is shared by the account's sessions (the gateway's
        stand-in for VoxEngine's conference rule + ``callConference(conferenceId)``): the
        first session that asks creates it, later ones get the same object; each session's
        endpoints leave when it ends and the conference closes when the last session
        holding it ends (:mod:`gateway.runtime.conference`, "Named conferences").

        Args:
            parameters: ``{"hd_audio": bool}`` (VoxEngine) and/or ``{"sample_rate": Hz}``.
            hd_audio: mix at 48 kHz instead of VoxEngine's narrowband 8 kHz.
            sample_rate: mix at this rate (8000-48000 Hz), overriding ``hd_audio``.
            name: share the conference under this name within the account.

        Raises:
            ValueError: an unknown parameter, a bad rate or an empty name.
            ConferenceError: the named conference exists at another explicit rate.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.create_conference")
        from gateway.runtime.conference import (  # numpy: load on use
            create_conference,
            named_conference,
        )

        if name is not None:
            return named_conference(self._session, name, parameters, hd_audio=hd_audio,
                                    sample_rate=sample_rate)
        return create_conference(parameters, hd_audio=hd_audio, sample_rate=sample_rate,
                                 owner=self._session)

    def create_recorder(self, parameters: dict[str, Any] | None = None, *,
                        format: str | None = None, sample_rate: int | None = None,
                        hd_audio: bool | None = None, name: str | None = None) -> Recorder:
        """A recorder (VoxEngine ``createRecorder(RecorderParameters)``) that writes whatever
        is sent to it: ``call.send_media_to(recorder)``, ``conference.send_media_to(recorder)``
        (the full mix), a player, an AI client. ``RecorderEvents.Started`` (``url``) fires
        once its file is open; ``recorder.stop()`` (or the end of the session) finishes it,
        registers it in the call history and fires ``RecorderEvents.Stopped`` (``url``,
        ``duration`` in seconds). The file is downloaded from ``url`` with the account's
        credentials.

        Args:
            parameters: ``{"name", "hd_audio", "lossless"}`` (VoxEngine; storage and
                transcription keys are ignored) and/or ``{"format", "sample_rate"}``.
            format: "wav" (default) or "mp3".
            sample_rate: 8000 (default), 16000, 24000 or 48000 Hz.
            hd_audio: record at 48 kHz (VoxEngine's HD audio).
            name: the record's name in the call history.

        Raises:
            ValueError: an unknown parameter, format or rate.
            RecorderError: the gateway has no recordings directory.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.create_recorder")
        from gateway.runtime.recorder import create_recorder

        return create_recorder(parameters, format=format, sample_rate=sample_rate,
                               hd_audio=hd_audio, name=name, owner=self._session)
