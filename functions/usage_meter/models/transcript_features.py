"""Which fields of an AssemblyAI transcript change its price, and the add-ons they record.

Every top-level field of the API spec's ``Transcript`` schema is classified here, once:
``ADD_ON_FIELDS`` record an add-on when set, ``NOT_ADD_ONS`` do not (each with the reason). A test
walks a vendored copy of the spec's fields (``tests/fixtures/assemblyai_transcript_fields.json``)
and fails on a field in neither, so a new billable option cannot slip through unpriced.

Sources: AssemblyAI API spec ``openapi.yml`` schema ``Transcript`` (AssemblyAI/assemblyai-api-spec);
docs "Billing and Pricing" (model rate x duration, add-ons "billed separately at their own hourly
rates"; failed requests are not charged); docs "Speech Understanding" (tasks requested as
``speech_understanding.request.<task>``, answered in ``speech_understanding.response.<task>``
with ``status: "success"``).
"""

from __future__ import annotations

from typing import Any

# Boolean options that run a priced model over the whole audio when true.
BOOLEAN_ADD_ONS = (
    "auto_chapters",
    "auto_highlights",
    "content_safety",
    "entity_detection",
    "filter_profanity",
    "iab_categories",
    "redact_pii",
    "redact_pii_audio",
    "sentiment_analysis",
    "speaker_labels",
    "summarization",
)
# Valued options: recorded when non-empty. ``domain`` records its value (``domain:medical-v1``).
VALUED_ADD_ONS = ("domain", "keyterms_prompt", "prompt")
SPEECH_UNDERSTANDING = "speech_understanding"
SPEECH_UNDERSTANDING_DONE = "success"
ADD_ON_FIELDS = frozenset((*BOOLEAN_ADD_ONS, *VALUED_ADD_ONS, SPEECH_UNDERSTANDING))

# Fields that never record an add-on, with the reason (results, identifiers, free options).
NOT_ADD_ONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "auto_highlights_result",
            "chapters",
            "confidence",
            "content_safety_labels",
            "entities",
            "iab_categories_result",
            "sentiment_analysis_results",
            "summary",
            "text",
            "translated_texts",
            "utterances",
            "words",
            "language_confidence",
            "throttled",
            "error",
        ),
        "a result or state, not an option",
    ),
    **dict.fromkeys(
        ("id", "status", "audio_url", "webhook_url", "webhook_auth", "webhook_auth_header_name"),
        "identity or delivery, not billed",
    ),
    "webhook_status_code": "delivery, not billed",
    "audio_duration": "the billed quantity itself (models/transcript.py)",
    "audio_channels": "multiplies the billed seconds (multichannel), read by models/transcript.py",
    "multichannel": "multiplies the billed seconds (per channel), read by models/transcript.py",
    "speech_model_used": "selects the model price (models/transcript.py)",
    "speech_models": "the requested models; speech_model_used is what is billed",
    "speech_model": "deprecated, replaced by speech_models; read as a fallback for the model",
    "language_code": "recorded for information; the model price does not depend on it",
    "language_codes": "code switching: part of the model, no add-on price published",
    "language_detection": "part of transcription: no language-detection add-on is published",
    "language_detection_options": "options of language_detection",
    "language_confidence_threshold": "options of language_detection",
    "audio_start_from": "trims the audio: audio_duration is what is billed",
    "audio_end_at": "trims the audio: audio_duration is what is billed",
    "custom_spelling": "text post-processing, no add-on price published",
    "disfluencies": "transcription option, no add-on price published",
    "format_text": "transcription option, no add-on price published",
    "punctuate": "transcription option, no add-on price published",
    "speakers_expected": "option of speaker_labels (billed there)",
    "speech_threshold": "rejects audio before transcription, no price of its own",
    "redact_pii_audio_options": "option of redact_pii_audio (billed there)",
    "redact_pii_audio_quality": "option of redact_pii_audio (billed there)",
    "redact_pii_policies": "option of redact_pii (billed there)",
    "redact_pii_sub": "option of redact_pii (billed there)",
    "summary_model": "option of summarization (billed there)",
    "summary_type": "option of summarization (billed there)",
    "remove_audio_tags": "output option of the model, no add-on price published",
    "temperature": "model option, no add-on price published",
    "acoustic_model": "spec: no functionality attached",
    "custom_topics": "spec: no functionality attached",
    "language_model": "spec: no functionality attached",
    "speed_boost": "spec: no functionality attached",
    "topics": "spec: no functionality attached",
}


def speech_understanding_add_ons(value: Any) -> list[str]:
    """``speech_understanding:<task>`` for each task whose response says ``status: "success"``.

    A task requested but not answered with success is not recorded: AssemblyAI charges only
    completed work ("If a request errors, you aren't charged for it"). A successful task this
    code has never seen is still recorded under its own name, so the price table, not this
    code, decides: unknown to the table, the row is unpriced with the reason."""
    if not isinstance(value, dict):
        return []
    response = value.get("response")
    if not isinstance(response, dict):
        return []
    return [
        f"{SPEECH_UNDERSTANDING}:{task}"
        for task, result in response.items()
        if isinstance(result, dict) and result.get("status") == SPEECH_UNDERSTANDING_DONE
    ]


def transcript_add_ons(payload: dict[str, Any]) -> tuple[str, ...]:
    """The add-ons a transcript's JSON records, sorted (names as keyed in the price table)."""
    features = [name for name in BOOLEAN_ADD_ONS if payload.get(name) is True]
    for name in VALUED_ADD_ONS:
        value = payload.get(name)
        if name == "domain" and value and isinstance(value, str):
            features.append(f"domain:{value}")
        elif name != "domain" and value and isinstance(value, str | list):
            features.append(name)
    features.extend(speech_understanding_add_ons(payload.get(SPEECH_UNDERSTANDING)))
    return tuple(sorted(set(features)))
