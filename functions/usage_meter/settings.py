"""Environment settings: one pydantic model per function, read once through a cached getter.

This is the only module that reads ``os.environ``. Every field's alias is the environment variable
name; tests check that template.yaml sets each of them for the functions that use the model.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

DEFAULT_BASE_URL = "https://api.assemblyai.com"


class ProjectConfig(BaseModel):
    """Where to find one AssemblyAI project: its API key secret and its API base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_secret_id: Annotated[str, Field(min_length=1)]
    base_url: HttpUrl = HttpUrl(DEFAULT_BASE_URL)


class _EnvModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @classmethod
    def env_names(cls) -> set[str]:
        return {f.alias or name for name, f in cls.model_fields.items()}


class IntakeSettings(_EnvModel):
    """Webhook intake: authenticate, validate, enqueue. Never calls AssemblyAI."""

    usage_queue_url: str = Field(alias="USAGE_QUEUE_URL", min_length=1)
    webhook_secret_id: str = Field(alias="WEBHOOK_SECRET_ID", min_length=1)
    webhook_auth_header_name: str = Field(
        alias="WEBHOOK_AUTH_HEADER_NAME", default="X-Usage-Meter-Webhook-Secret", min_length=1
    )
    secrets_cache_seconds: int = Field(alias="SECRETS_CACHE_SECONDS", default=300, ge=0)
    max_body_bytes: int = Field(alias="WEBHOOK_MAX_BODY_BYTES", default=4096, ge=256)
    max_dimensions: int = Field(alias="WEBHOOK_MAX_DIMENSIONS", default=8, ge=0, le=32)

    @field_validator("webhook_auth_header_name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # API Gateway HTTP APIs deliver header names in lower case


class ProcessorSettings(_EnvModel):
    """Usage processor: fetch each transcript from AssemblyAI and record its usage once."""

    table_name: str = Field(alias="USAGE_TABLE_NAME", min_length=1)
    usage_queue_url: str = Field(alias="USAGE_QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="USAGE_DLQ_URL", min_length=1)
    projects: dict[str, ProjectConfig] = Field(alias="ASSEMBLYAI_PROJECTS", min_length=1)
    base_url_override: HttpUrl | None = Field(alias="ASSEMBLYAI_BASE_URL_OVERRIDE", default=None)
    http_timeout_seconds: float = Field(
        alias="ASSEMBLYAI_HTTP_TIMEOUT_SECONDS", default=10.0, gt=0, le=60
    )
    max_requests_per_second: float = Field(
        alias="ASSEMBLYAI_MAX_REQUESTS_PER_SECOND", default=10.0, gt=0
    )
    secrets_cache_seconds: int = Field(alias="SECRETS_CACHE_SECONDS", default=300, ge=0)

    @field_validator("projects", mode="before")
    @classmethod
    def _parse_projects(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("base_url_override", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def project(self, name: str) -> ProjectConfig | None:
        config = self.projects.get(name)
        if config is None or self.base_url_override is None:
            return config
        return config.model_copy(update={"base_url": self.base_url_override})


@lru_cache(maxsize=1)
def intake_settings() -> IntakeSettings:
    return IntakeSettings.model_validate(dict(os.environ))


@lru_cache(maxsize=1)
def processor_settings() -> ProcessorSettings:
    return ProcessorSettings.model_validate(dict(os.environ))
