"""Reading template.yaml (with CloudFormation's short-form tags) and creating what it declares.

Only the resources the functions talk to are provisioned locally: DynamoDB tables (key schema,
GSIs), SQS queues (with their redrive policies), S3 buckets, EventBridge buses and the rules on
them with their SQS targets (moto's EventBridge delivers to SQS). Everything else (IAM, alarms,
log groups, target retry policies) has no local meaning. A resource whose ``Condition`` is false
for the parameters is left out, as CloudFormation would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"


@dataclass(frozen=True)
class Tag:
    """An unresolved intrinsic function such as ``!Ref X`` or ``!GetAtt X.Arn``."""

    name: str
    value: Any


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # yaml has no stubs here
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


_Loader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict (intrinsic functions as ``Tag``). Parsed once per version of the
    file (path, size and modification time); each call gets its own copy to change freely."""
    stat = path.stat()
    document: dict[str, Any] = _copy(
        _parse_template(path.resolve(), stat.st_mtime_ns, stat.st_size)
    )
    return document


def _copy(value: Any) -> Any:
    """A deep copy of parsed YAML (dicts, lists, scalars, Tags), several times faster than
    ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, Tag):
        return Tag(value.name, _copy(value.value))
    return value  # str, int, float, bool, None, dates: immutable


@lru_cache(maxsize=8)
def _parse_template(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    text = path.read_text()
    document: dict[str, Any] = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return document


@dataclass
class LocalResources:
    """Physical names of the provisioned resources, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    max_receive_counts: dict[str, int] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)  # logical id -> bus name
    rules: dict[str, str] = field(default_factory=dict)  # logical id -> rule name

    def ref(self, logical_id: str) -> str:
        for mapping in (self.tables, self.queue_urls, self.buckets, self.event_buses):
            if logical_id in mapping:
                return mapping[logical_id]
        raise KeyError(logical_id)


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec.get("Default", ""))
        for name, spec in (template.get("Parameters") or {}).items()
    }


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource.get("Properties") or {}
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def condition_holds(
    template: dict[str, Any], logical_id: str, parameters: dict[str, str] | None = None
) -> bool:
    """Whether a resource exists for these parameters (its ``Condition``, if any, holds)."""
    name = template["Resources"][logical_id].get("Condition")
    if name is None:
        return True
    values = {**parameter_defaults(template), **(parameters or {})}
    return _condition(name, values, template.get("Conditions") or {})


def resolve_number(value: Any, parameters: dict[str, str]) -> int:
    if isinstance(value, Tag) and value.name == "Ref":
        return int(parameters[value.value])
    return int(value)


def provision(
    template: dict[str, Any],
    dynamodb: Any,
    sqs: Any,
    s3: Any | None = None,
    prefix: str = "",
    *,
    parameters: dict[str, str] | None = None,
    events: Any | None = None,
) -> LocalResources:
    """Create the template's tables, queues, buckets, event buses and rules (SQS targets) through
    the given boto3 clients (template parameters take their defaults unless ``parameters`` gives a
    value; the EventBridge client defaults to one at the DynamoDB client's endpoint and region)."""
    parameters = {**parameter_defaults(template), **(parameters or {})}
    out = LocalResources()
    for logical_id, props in resources_of(template, "AWS::DynamoDB::Table").items():
        name = f"{prefix}{logical_id}"
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**kwargs)
        out.tables[logical_id] = name

    queues = {
        q: props
        for q, props in resources_of(template, "AWS::SQS::Queue").items()
        if condition_holds(template, q, parameters)
    }
    # Dead-letter targets first, so their ARNs exist when a redrive policy names them.
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q])
    for logical_id in ordered:
        props = queues[logical_id]
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if key in props:
                attributes[key] = str(resolve_number(props[key], parameters))
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]
            target_id = target.value.split(".")[0] if isinstance(target, Tag) else target
            count = resolve_number(redrive["maxReceiveCount"], parameters)
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": out.queue_arns[target_id], "maxReceiveCount": count}
            )
            out.max_receive_counts[logical_id] = count
        url = sqs.create_queue(QueueName=f"{prefix}{logical_id}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        out.queue_urls[logical_id] = url
        out.queue_arns[logical_id] = arn

    if s3 is not None:
        for logical_id in resources_of(template, "AWS::S3::Bucket"):
            name = f"{prefix}{logical_id}".lower()
            region = s3.meta.region_name
            location = (
                {}
                if region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            s3.create_bucket(Bucket=name, **location)
            out.buckets[logical_id] = name
    if events is None and resources_of(template, "AWS::Events::EventBus"):
        import boto3

        endpoint = dynamodb.meta.endpoint_url
        events = boto3.client(
            "events",
            region_name=dynamodb.meta.region_name,
            # A local endpoint serves every service; AWS's own is per service.
            endpoint_url=None if "amazonaws.com" in endpoint else endpoint,
        )
    if events is not None:
        _provision_events(template, events, prefix, parameters, out)
    return out


def _provision_events(
    template: dict[str, Any],
    events: Any,
    prefix: str,
    parameters: dict[str, str],
    out: LocalResources,
) -> None:
    """Event buses, then the rules on them with their SQS targets (other targets are skipped)."""
    for logical_id in resources_of(template, "AWS::Events::EventBus"):
        if condition_holds(template, logical_id, parameters):
            name = f"{prefix}{logical_id}"
            events.create_event_bus(Name=name)
            out.event_buses[logical_id] = name
    conditions = template.get("Conditions") or {}
    for logical_id, props in resources_of(template, "AWS::Events::Rule").items():
        if not condition_holds(template, logical_id, parameters) or "EventPattern" not in props:
            continue
        bus = _resolve_value(props.get("EventBusName", "default"), parameters, out, conditions)
        name = f"{prefix}{logical_id}"
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]))
        targets = []
        for target in props.get("Targets") or []:
            arn = target["Arn"]
            queue = arn.value.split(".")[0] if isinstance(arn, Tag) else None
            if queue in out.queue_arns:
                targets.append({"Id": str(target["Id"]), "Arn": out.queue_arns[queue]})
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        out.rules[logical_id] = name


def function_environment(
    template: dict[str, Any],
    logical_id: str,
    resources: LocalResources,
    overrides: dict[str, str] | None = None,
    parameters: dict[str, str] | None = None,
) -> dict[str, str]:
    """A function's environment as the template sets it, with references resolved locally
    (template parameters take their defaults unless ``parameters`` gives a value)."""
    parameters = {**parameter_defaults(template), **(parameters or {})}
    merged: dict[str, Any] = dict(
        ((template.get("Globals") or {}).get("Function") or {})
        .get("Environment", {})
        .get("Variables", {})
    )
    props = template["Resources"][logical_id]["Properties"]
    merged.update((props.get("Environment") or {}).get("Variables") or {})
    conditions = template.get("Conditions") or {}
    env = {
        name: _resolve_value(value, parameters, resources, conditions)
        for name, value in merged.items()
    }
    env.update(overrides or {})
    return env


def _condition(value: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> bool:
    """Evaluate the condition functions the template uses (Not, Equals, And, Or, Condition)."""
    if isinstance(value, str):
        return _condition(conditions[value], parameters, conditions)
    if not isinstance(value, Tag):
        raise ValueError(f"cannot evaluate condition {value!r} locally")
    args = value.value
    if value.name == "Not":
        return not _condition(args[0], parameters, conditions)
    if value.name == "And":
        return all(_condition(a, parameters, conditions) for a in args)
    if value.name == "Or":
        return any(_condition(a, parameters, conditions) for a in args)
    if value.name == "Condition":
        return _condition(conditions[args], parameters, conditions)
    if value.name == "Equals":
        left, right = (
            parameters[a.value] if isinstance(a, Tag) and a.name == "Ref" else str(a) for a in args
        )
        return left == right
    raise ValueError(f"cannot evaluate !{value.name} locally")


LOCAL_STACK_NAME = "usage-meter-local"  # what ${AWS::StackName} is locally


def _resolve_value(
    value: Any,
    parameters: dict[str, str],
    resources: LocalResources,
    conditions: dict[str, Any] | None = None,
) -> str:
    """Resolve an environment value. ``!Sub`` placeholders that name no parameter (the API's
    own URL, say) are left in place for the local stack to override."""
    if not isinstance(value, Tag):
        return str(value)
    if value.name == "If":
        name, when_true, when_false = value.value
        chosen = when_true if _condition(name, parameters, conditions or {}) else when_false
        return _resolve_value(chosen, parameters, resources, conditions)
    if value.name == "Ref":
        if value.value in parameters:
            return parameters[value.value]
        return resources.ref(value.value)
    if value.name == "Sub" and isinstance(value.value, str):
        text = value.value.replace("${AWS::StackName}", LOCAL_STACK_NAME)
        for name, param in parameters.items():
            text = text.replace("${" + name + "}", param)
        return text
    if value.name == "GetAtt" and str(value.value).endswith(".Arn"):
        target = str(value.value).split(".")[0]
        if target in resources.queue_arns:
            return resources.queue_arns[target]
    raise ValueError(f"cannot resolve !{value.name} {value.value!r} locally")


@dataclass(frozen=True)
class FunctionSpec:
    """What it takes to run one function locally, as the template declares it."""

    logical_id: str
    handler: str  # module.function
    code_dir: Path
    timeout_seconds: int
    memory_mb: int


def function_spec(
    template: dict[str, Any],
    logical_id: str,
    parameters: dict[str, str] | None = None,
    template_dir: Path = ROOT,
) -> FunctionSpec:
    """A function's handler, code directory, timeout and memory (its own value, else Globals)."""
    functions = resources_of(template, "AWS::Serverless::Function")
    if logical_id not in functions:
        known = ", ".join(sorted(functions)) or "none"
        raise KeyError(f"no function {logical_id!r} in the template (functions: {known})")
    parameters = {**parameter_defaults(template), **(parameters or {})}
    merged = {**((template.get("Globals") or {}).get("Function") or {}), **functions[logical_id]}
    return FunctionSpec(
        logical_id=logical_id,
        handler=str(merged["Handler"]),
        code_dir=(template_dir / str(merged.get("CodeUri", "."))).resolve(),
        timeout_seconds=resolve_number(merged.get("Timeout", 3), parameters),
        memory_mb=resolve_number(merged.get("MemorySize", 128), parameters),
    )


def function_handlers(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> handler path (``module.function``) of every function in the template."""
    return {
        name: props["Handler"]
        for name, props in resources_of(template, "AWS::Serverless::Function").items()
    }


def http_routes(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function logical id, for every HttpApi event in the template."""
    routes: dict[tuple[str, str], str] = {}
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                p = event["Properties"]
                routes[(str(p["Method"]).upper(), str(p["Path"]))] = name
    return routes


def _logical_id(value: Any) -> str:
    """The logical id behind ``!Ref X`` / ``!GetAtt X.Arn`` (or a plain string)."""
    text = value.value if isinstance(value, Tag) else value
    if isinstance(text, list):
        text = text[0]
    return str(text).split(".")[0]


def sqs_subscriptions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function logical id -> SQS event properties (queue logical id, batch size, ...), from SAM
    ``SQS`` events and from ``AWS::Lambda::EventSourceMapping`` resources on an SQS queue."""
    out: dict[str, dict[str, Any]] = {}
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "SQS":
                p = dict(event["Properties"])
                p["QueueLogicalId"] = _logical_id(p["Queue"])
                out[name] = p
    queues = resources_of(template, "AWS::SQS::Queue")
    for props in resources_of(template, "AWS::Lambda::EventSourceMapping").values():
        queue = _logical_id(props.get("EventSourceArn"))
        if queue in queues:
            p = {k: v for k, v in props.items() if k not in ("FunctionName", "EventSourceArn")}
            p["QueueLogicalId"] = queue
            out[_logical_id(props["FunctionName"])] = p
    return out
