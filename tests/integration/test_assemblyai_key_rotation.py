"""A rotated AssemblyAI API key: the adapter reads the key again once before giving up."""

from __future__ import annotations

import pytest

from usage_meter.adapters.assemblyai_api import AssemblyAITranscripts, RequestPacer
from usage_meter.logic.errors import PermanentFailure
from usage_meter.settings import ProjectConfig
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn, transcript


class RotatingKey:
    """The key secret as the adapter sees it: the cached value until a refresh is asked."""

    def __init__(self, cached: str, stored: str) -> None:
        self.cached, self.stored = cached, stored
        self.refreshes = 0

    def __call__(self, project: str, refresh: bool) -> str:
        if refresh:
            self.refreshes += 1
            self.cached = self.stored
        return self.cached


def _source(api: AssemblyAIStandIn, key: RotatingKey) -> AssemblyAITranscripts:
    config = ProjectConfig(api_key_secret_id="usage-meter/assemblyai/default", base_url=api.url)
    return AssemblyAITranscripts({"default": config}, key, 5.0, RequestPacer(1000))


def test_a_key_rotated_since_it_was_cached_is_read_again_and_used() -> None:
    with AssemblyAIStandIn() as api:
        # Given the key was rotated in Secrets Manager; AssemblyAI accepts only the new one
        api.state.api_keys = {"new-key"}
        api.state.add(transcript("t-1", webhook_url=None))
        key = RotatingKey(cached="old-key", stored="new-key")

        # When the transcript is fetched with the cached (old) key
        payload = _source(api, key).fetch("default", "t-1")

        # Then the 401 leads to one re-read of the secret and one more GET, which succeeds
        assert payload["id"] == "t-1"
        assert key.refreshes == 1
        assert len(api.state.requests) == 2


def test_a_refused_key_that_did_not_change_fails_after_one_get() -> None:
    with AssemblyAIStandIn() as api:
        api.state.api_keys = {"new-key"}
        api.state.add(transcript("t-1", webhook_url=None))
        key = RotatingKey(cached="revoked-key", stored="revoked-key")

        with pytest.raises(PermanentFailure, match=r"API key \(401\)"):
            _source(api, key).fetch("default", "t-1")

        assert (key.refreshes, len(api.state.requests)) == (1, 1)
