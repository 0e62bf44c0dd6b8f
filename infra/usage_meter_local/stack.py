"""The local stack, wired together: ``with LocalStack(StackConfig()) as stack: ...``.

1. AWS: moto's server on localhost; the tables, queues and buckets template.yaml declares; every
   secret a function's ``*_SECRET_ID`` variable names (as ``{"current", "previous"}``, with local
   values) and one API key secret per AssemblyAI project.
2. AssemblyAI: the stand-in, with the fixture transcripts and the projects' API keys.
3. One worker process per function, with the environment the template gives it (the functions
   with an HTTP route or an SQS queue start at once, the others on their first invocation).
4. The HTTP front for the template's HttpApi routes, and an SQS event source per SQS event.
5. The application's own webhook endpoint (``AppReceiver``): unless ``ForwardUrl`` is given, the
   notifications are forwarded there (EventBridge bus -> rule -> forward queue -> forwarder).
6. The Stripe stand-in: unless ``StripeMeterEventName`` is given, the optional Stripe sink exists
   with the stand-in's meter, its API base URL and its key (no Stripe customer is mapped).

Everything started is stopped on exit, in reverse order, also after an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from usage_meter_local import scenario
from usage_meter_local.app_receiver import AppReceiver
from usage_meter_local.assemblyai_standin import AssemblyAIStandIn
from usage_meter_local.function_pool import FunctionPool, FunctionWorker, Invocation
from usage_meter_local.http_front import HttpFront
from usage_meter_local.moto_server import DEFAULT_REGION, AwsClients, MotoServer, aws_environment
from usage_meter_local.ports import bind
from usage_meter_local.sqs_poller import EventSourceConfig, SqsEventSource
from usage_meter_local.stripe_standin import StripeStandIn
from usage_meter_local.template import (
    ROOT,
    TEMPLATE_PATH,
    LocalResources,
    condition_holds,
    function_environment,
    function_spec,
    http_routes,
    load_template,
    parameter_defaults,
    provision,
    resources_of,
    sqs_subscriptions,
)

DEFAULT_LOG_DIR = ROOT / ".local-stack" / "logs"
SECRET_ID_SUFFIX = "_SECRET_ID"  # noqa: S105 - names the variables that name secrets
WEBHOOK_SECRET_VARIABLE = "WEBHOOK_SECRET_ID"  # noqa: S105 - a variable name
AUTH_HEADER_VARIABLE = "WEBHOOK_AUTH_HEADER_NAME"
BASE_URL_OVERRIDE_VARIABLE = "ASSEMBLYAI_BASE_URL_OVERRIDE"
WEBHOOK_BASE_URL_PARAMETER = "WebhookBaseUrl"
FORWARD_URL_PARAMETER = "ForwardUrl"
FORWARD_SIGNING_VARIABLE = "FORWARD_SIGNING_SECRET_ID"
FORWARD_AUTH_VARIABLE = "FORWARD_AUTH_SECRET_ID"
STRIPE_METER_PARAMETER = "StripeMeterEventName"
STRIPE_SECRET_VARIABLE = "STRIPE_SECRET_ID"  # noqa: S105 - a variable name
STRIPE_BASE_OVERRIDE_VARIABLE = "STRIPE_API_BASE_OVERRIDE"
LOCAL_STRIPE_METER = "assemblyai_audio_seconds"  # a meter the Stripe stand-in knows


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    aws_port: int = 0  # 0 = any free port
    api_port: int = 0
    assemblyai_port: int = 0
    app_port: int = 0  # the local application's webhook endpoint (forwarding target)
    region: str = DEFAULT_REGION
    template_path: Path = TEMPLATE_PATH
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    functions: tuple[str, ...] | None = None  # logical ids to run; None = all
    http: bool = True
    event_sources: bool = True
    retry_delay_cap: int | None = 2  # seconds; None = SQS's real visibility timeouts
    log_dir: Path | None = DEFAULT_LOG_DIR  # None = function logs go to this process's stderr
    # Values of the rotating secrets named by the functions' *_SECRET_ID variables (current,
    # previous); a variable not listed gets a generated local value (scenario.local_secret).
    secrets: dict[str, tuple[str, str]] = field(
        default_factory=lambda: dict(scenario.LOCAL_SECRETS)
    )


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.template = load_template(self.config.template_path)
        defaults = parameter_defaults(self.template)
        self.projects = scenario.projects(
            defaults["AssemblyAIProjects"], defaults.get("SecretsPrefix", "usage-meter")
        )
        self.parameters = {
            "AssemblyAIProjects": json.dumps(self.projects),
            **self.config.parameters,
        }
        self._exit = contextlib.ExitStack()
        self.aws: MotoServer
        self.clients: AwsClients
        self.resources: LocalResources
        self.assemblyai: AssemblyAIStandIn
        self.pool: FunctionPool
        self.http: HttpFront | None = None
        self.app: AppReceiver
        self.stripe: StripeStandIn
        self.event_sources: list[SqsEventSource] = []
        self.environments: dict[str, dict[str, str]] = {}  # logical id -> resolved environment
        self.secrets: dict[str, str] = {}  # secret name -> the variable that names it

    # -- start and stop -------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        config = self.config
        # Bind every port first, so a taken port is reported before anything slow happens.
        self.aws = MotoServer(config.host, config.aws_port)
        self._exit.callback(self.aws.stop)
        self.assemblyai = bind(
            config.assemblyai_port,
            "--assemblyai-port",
            lambda: AssemblyAIStandIn(config.host, config.assemblyai_port),
        ).start()
        self._exit.callback(self.assemblyai.stop)
        self.app = AppReceiver(config.host, config.app_port).start()
        self._exit.callback(self.app.stop)
        self.app.state.signing_secret = self.secret_values(FORWARD_SIGNING_VARIABLE)[0]
        if FORWARD_URL_PARAMETER in parameter_defaults(self.template):
            self.parameters.setdefault(FORWARD_URL_PARAMETER, self.app.url)
        self.stripe = self._exit.enter_context(StripeStandIn(config.host))
        if STRIPE_METER_PARAMETER in parameter_defaults(self.template):
            self.parameters.setdefault(STRIPE_METER_PARAMETER, LOCAL_STRIPE_METER)
        if config.http:
            self.http = HttpFront(
                http_routes(self.template),
                self.invoke,
                config.host,
                config.api_port,
                functions=frozenset(self.function_ids()),
            )
            self._exit.callback(self.http.stop)
        self.aws.start()
        if WEBHOOK_BASE_URL_PARAMETER in parameter_defaults(self.template):
            # The webhook URL the fixture transcripts were "submitted" with (reconciliation
            # recognises our own transcripts by it).
            self.parameters.setdefault(WEBHOOK_BASE_URL_PARAMETER, self.webhook_url)

        self.clients = AwsClients(self.aws.url, config.region)
        self.resources = provision(
            self.template,
            self.clients.dynamodb,
            self.clients.sqs,
            self.clients.s3,
            parameters=self.parameters,
            events=self.clients.events,
        )
        self.environments = self._environments()
        self._create_secrets()
        self._seed_assemblyai()
        self.pool = self._function_pool()
        self.pool.start(self.triggered_functions())  # the others start when first invoked
        self._exit.callback(self._stop_functions)
        if self.http is not None:
            self.http.start()
            self._exit.callback(self.http.stop)  # runs before the workers stop (LIFO)
        if config.event_sources:
            for source in self._event_sources():
                self.event_sources.append(source.start())

    def _stop_functions(self) -> None:
        # Event sources first (no new batches), then the workers (an invocation in progress
        # finishes or is cut short), then wait for the pollers to notice.
        for source in self.event_sources:
            source.begin_stop()
        self.pool.close()
        for source in self.event_sources:
            source.stop()

    # -- wiring ---------------------------------------------------------------------------------
    def triggered_functions(self) -> list[str]:
        """The running functions something calls by itself: HTTP routes and SQS event sources."""
        triggered = set(sqs_subscriptions(self.template)) if self.config.event_sources else set()
        if self.config.http:
            triggered |= set(http_routes(self.template).values())
        return [f for f in self.function_ids() if f in triggered]

    def function_ids(self) -> list[str]:
        declared = [
            f
            for f in resources_of(self.template, "AWS::Serverless::Function")
            if condition_holds(self.template, f, self.parameters)
        ]
        wanted = self.config.functions
        if wanted is None:
            return declared
        unknown = sorted(set(wanted) - set(declared))
        if unknown:
            raise KeyError(
                f"no function {', '.join(unknown)} in the template "
                f"(functions: {', '.join(declared)})"
            )
        return [f for f in declared if f in wanted]

    def _function_pool(self) -> FunctionPool:
        workers = []
        aws_env = aws_environment(self.aws.url, self.config.region)
        for logical_id in self.function_ids():
            spec = function_spec(
                self.template, logical_id, self.parameters, self.config.template_path.parent
            )
            runtime = {
                "AWS_LAMBDA_FUNCTION_NAME": logical_id,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{logical_id}",
                "_HANDLER": spec.handler,
                "TZ": "UTC",
                "LANG": "C.UTF-8",
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
            env = {**runtime, **aws_env, **self.environments[logical_id]}
            workers.append(FunctionWorker(spec, env, self._log_file(logical_id)))
        return FunctionPool(workers)

    def _log_file(self, logical_id: str) -> IO[str] | None:
        if self.config.log_dir is None:
            return None
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.config.log_dir / f"{logical_id}.log").open("w", encoding="utf-8")
        self._exit.callback(handle.close)
        return handle

    def _environments(self) -> dict[str, dict[str, str]]:
        """Every function's environment as the template sets it, resolved against the local
        resources; the AssemblyAI SDK's base URL points at the stand-in."""
        out = {}
        for logical_id in resources_of(self.template, "AWS::Serverless::Function"):
            if not condition_holds(self.template, logical_id, self.parameters):
                continue
            env = function_environment(
                self.template, logical_id, self.resources, parameters=self.parameters
            )
            if BASE_URL_OVERRIDE_VARIABLE in env:
                env[BASE_URL_OVERRIDE_VARIABLE] = self.assemblyai.url
            if STRIPE_BASE_OVERRIDE_VARIABLE in env:
                env[STRIPE_BASE_OVERRIDE_VARIABLE] = self.stripe.url
            out[logical_id] = env
        return out

    def template_variable(self, name: str) -> str:
        """The value the template gives an environment variable (first function that sets it)."""
        for env in self.environments.values():
            if name in env:
                return env[name]
        raise KeyError(f"no function in the template sets {name}")

    @property
    def auth_header_name(self) -> str:
        return self.template_variable(AUTH_HEADER_VARIABLE)

    @property
    def webhook_secrets(self) -> tuple[str, str]:
        """The (current, previous) values AssemblyAI may send in the auth header."""
        return self.secret_values(WEBHOOK_SECRET_VARIABLE)

    def secret_values(self, variable: str) -> tuple[str, str]:
        """The local (current, previous) values of the secret a ``*_SECRET_ID`` variable names."""
        if variable == FORWARD_SIGNING_VARIABLE and variable not in self.config.secrets:
            return scenario.LOCAL_FORWARD_SIGNING_SECRETS
        return self.config.secrets.get(variable) or scenario.local_secret(variable)

    @property
    def stripe_secret(self) -> dict[str, str]:
        """The Stripe sink's secret, locally: the stand-in's key."""
        return {"api_key": self.stripe.state.api_key}

    def secret_shown(self, variable: str) -> str:
        """What the banner shows for a secret: the current value, or the forward-auth JSON."""
        if variable == FORWARD_AUTH_VARIABLE:
            return json.dumps(scenario.LOCAL_APP_AUTH_HEADER)
        if variable == STRIPE_SECRET_VARIABLE:
            return json.dumps(self.stripe_secret)
        return self.secret_values(variable)[0]

    def _create_secrets(self) -> None:
        sm = self.clients.secretsmanager
        for env in self.environments.values():
            self.secrets.update(
                (value, name) for name, value in env.items() if name.endswith(SECRET_ID_SUFFIX)
            )
        for secret_name, variable in sorted(self.secrets.items()):
            if variable == FORWARD_AUTH_VARIABLE:  # the application's own header, not rotating
                sm.create_secret(
                    Name=secret_name, SecretString=json.dumps(scenario.LOCAL_APP_AUTH_HEADER)
                )
                continue
            if variable == STRIPE_SECRET_VARIABLE:  # the stand-in's key, in the sink's shape
                sm.create_secret(Name=secret_name, SecretString=json.dumps(self.stripe_secret))
                continue
            current, previous = self.secret_values(variable)
            sm.create_secret(
                Name=secret_name,
                SecretString=json.dumps({"current": current, "previous": previous}),
            )
        for project, project_config in self.projects.items():
            sm.create_secret(
                Name=project_config["api_key_secret_id"],
                SecretString=json.dumps({"api_key": scenario.local_api_key(project)}),
            )

    def _seed_assemblyai(self) -> None:
        state = self.assemblyai.state
        state.api_keys = {
            scenario.local_api_key(p) for p in self.projects if p not in scenario.REVOKED_PROJECTS
        }
        for item in scenario.fixture_transcripts(self.webhook_url):
            state.add(item)

    def _event_sources(self) -> list[SqsEventSource]:
        sources = []
        running = set(self.pool.workers)
        for logical_id, props in sqs_subscriptions(self.template).items():
            if logical_id not in running:
                continue
            queue = props["QueueLogicalId"]
            config = EventSourceConfig(
                function=logical_id,
                queue_url=self.resources.queue_urls[queue],
                queue_arn=self.resources.queue_arns[queue],
                region=self.config.region,
                batch_size=int(props.get("BatchSize", 10)),
                batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in (props.get("FunctionResponseTypes") or []),
                retry_delay_cap=self.config.retry_delay_cap,
            )
            sources.append(SqsEventSource(config, self.clients.sqs, self.invoke))
        return sources

    # -- using it -------------------------------------------------------------------------------
    def invoke(self, logical_id: str, event: dict[str, Any]) -> Invocation:
        return self.pool.invoke(logical_id, event)

    @property
    def webhook_url(self) -> str:
        base = self.http.url if self.http else scenario.PLACEHOLDER_API_URL
        return base + scenario.WEBHOOK_PATH

    def subscribed_queue_urls(self) -> list[str]:
        return [s.config.queue_url for s in self.event_sources]

    def wait_until_drained(self, timeout_seconds: float = 30.0) -> bool:
        """Wait until every subscribed queue is empty (nothing visible, in flight or delayed)."""
        deadline = time.monotonic() + timeout_seconds
        quiet = 0
        while time.monotonic() < deadline:
            pending = sum(self.queue_depth(url) for url in self.subscribed_queue_urls())
            busy = any(s.busy for s in self.event_sources)
            quiet = quiet + 1 if pending == 0 and not busy else 0
            if quiet >= 2:
                return True
            time.sleep(0.2)
        return False

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())
