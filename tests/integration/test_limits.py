"""Plans and limits through the deployed shape (moto, template.yaml): allowances set through the
allowance API (versioned, audited), threshold events on the meter's EventBridge bus delivered to
an application queue exactly once, and the entitlement check agreeing with the usage API.

Terms follow metering products: OpenMeter *entitlements*, Lago *usage thresholds*, Stripe
*billing alerts* (an alert fires once per threshold and period).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from conftest import REGION, Stack, ops_json, sqs_event, usage_message_body, webhook_url
from usage_meter_local.app_subscription import subscribe_queue
from usage_meter_local.assemblyai_standin import transcript

OPERATOR = "arn:aws:iam::123456789012:user/ops-alice"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def api(route: str, params: dict[str, str], body: Any = None) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event, IAM-authorized as the operator."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": "/",
        "pathParameters": params,
        "requestContext": {"authorizer": {"iam": {"userArn": OPERATOR}}, "http": {}},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def app_queue(stack: Stack) -> str:
    """The application's subscription: a rule on the meter's bus delivering threshold events to
    an SQS queue (what a reseller's app would do)."""
    return subscribe_queue(
        boto3.client("sqs", region_name=REGION),
        boto3.client("events", region_name=REGION),
        stack.resources.event_buses["UsageEventBus"],
        "app-threshold-events",
        "thresholds-to-app",
    )


def received(stack: Stack, url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"])["detail"] for m in stack.queue_messages(url)]


def set_allowance(stack: Stack, customer: str, limits: Any, reason: str) -> dict[str, Any]:
    answer = stack.invoke(
        "AllowanceFunction",
        api(
            "PUT /customers/{customer_id}/allowance",
            {"customer_id": customer},
            {"limits": limits, "reason": reason},
        ),
    )
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def entitlement(stack: Stack, customer: str, product: str = "async") -> dict[str, Any]:
    answer = stack.invoke(
        "EntitlementFunction",
        {
            "routeKey": "GET /customers/{customer_id}/entitlement",
            "pathParameters": {"customer_id": customer},
            "queryStringParameters": {"product": product},
        },
    )
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def deliver(stack: Stack, customer: str, seconds_each: list[int], copies: int = 1) -> None:
    """Completed transcripts for ``customer``, each webhook delivered ``copies`` times in one
    SQS batch (AssemblyAI retries, SQS redelivers), through the real processor and SDK."""
    bodies = []
    for seconds in seconds_each:
        tid = f"{customer}-{len(stack.api.state.transcripts):04d}-0000-0000-000000000000"
        stack.api.state.add(
            transcript(tid, webhook_url=webhook_url(customer), audio_duration=seconds)
        )
        bodies += [usage_message_body(tid, customer, received_at=now_iso())] * copies
    assert stack.invoke_processor(sqs_event(bodies)) == {"batchItemFailures": []}


def test_small_plan_crosses_80_and_100_once_and_the_check_turns_to_no(stack: Stack) -> None:
    """Given a plan of 10 minutes of async a month and a customer on it; when usage arrives in
    duplicated deliveries, 6 min, then 3 min, then 2 min; then the application receives 50%,
    80% and 100% exactly once each, and the entitlement check answers yes, yes, then no."""
    url = app_queue(stack)
    plan = stack.invoke(
        "AllowanceFunction",
        api(
            "PUT /plans/{plan}/allowance",
            {"plan": "trial"},
            {"limits": [{"product": "async", "unit": "seconds", "amount": "600"}], "reason": "t"},
        ),
    )
    assert plan["statusCode"] == 200, plan
    assigned = stack.invoke(
        "AllowanceFunction",
        api(
            "PUT /customers/{customer_id}/plan",
            {"customer_id": "smallco"},
            {"plan": "trial", "reason": "signed up for the trial"},
        ),
    )
    assert assigned["statusCode"] == 200, assigned
    assert entitlement(stack, "smallco")["allowed"] is True

    deliver(stack, "smallco", [360], copies=3)  # 60%
    assert [e["threshold_percent"] for e in received(stack, url)] == [50]
    deliver(stack, "smallco", [180], copies=2)  # 90%
    check = entitlement(stack, "smallco")
    assert (check["allowed"], check["limits"][0]["remaining"]) == (True, "60")
    deliver(stack, "smallco", [120], copies=2)  # 110%

    events = received(stack, url)
    assert sorted(e["threshold_percent"] for e in events) == [50, 80, 100]
    assert {e["event_id"] for e in events} == {
        f"smallco/{datetime.now(UTC):%Y-%m}/async:seconds/{p}" for p in (50, 80, 100)
    }
    hundred = next(e for e in events if e["threshold_percent"] == 100)
    assert (hundred["used"], hundred["allowance"], hundred["allowance_source"]) == (
        "660",
        "600",
        "plan",
    )
    check = entitlement(stack, "smallco")
    assert (check["allowed"], check["limits"][0]["remaining"]) == (False, "0")
    assert check["reason"].startswith("hard limit reached")
    assert entitlement(stack, "smallco", "streaming")["allowed"] is True  # async-only limit


def test_allowance_change_mid_month_applies_from_the_change_on_and_is_audited(
    stack: Stack,
) -> None:
    """Given 1 h of usage against 2 h (50% published under version 1); when the operator lowers
    the allowance to 1 h 10 min (version 2); then 80% is published at the change with version 2's
    figures, 50% is not published again, the check says how much remains under version 2, and the
    audit trail and history hold both versions with actor and reason."""
    url = app_queue(stack)
    first = set_allowance(stack, "acme", [{"unit": "seconds", "amount": "7200"}], "pro plan")
    assert (first["version"], first["thresholds_published"]) == (1, [])
    deliver(stack, "acme", [3600])
    [fifty] = received(stack, url)
    assert (fifty["threshold_percent"], fifty["allowance_version"]) == (50, 1)

    second = set_allowance(stack, "acme", [{"unit": "seconds", "amount": "4200"}], "downgrade")

    assert second["version"] == 2
    month = f"{datetime.now(UTC):%Y-%m}"
    assert second["thresholds_published"] == [f"acme/{month}/all:seconds/80"]
    events = received(stack, url)
    assert sorted((e["threshold_percent"], e["allowance_version"]) for e in events) == [
        (50, 1),
        (80, 2),
    ]
    check = entitlement(stack, "acme")
    assert (check["allowed"], check["allowance_version"], check["limits"][0]["remaining"]) == (
        True,
        2,
        "600",
    )
    audit = [i for i in stack.items("audit") if i["action"] == "allowance.set"]
    assert [(a["actor"], a["reason"]) for a in audit] == [
        (OPERATOR, "pro plan"),
        (OPERATOR, "downgrade"),
    ]
    history = stack.invoke(
        "AllowanceFunction",
        api("GET /customers/{customer_id}/allowance", {"customer_id": "acme"}),
    )
    versions = json.loads(history["body"])["history"]
    assert [(v["version"], v["reason"], v["actor"]) for v in versions] == [
        (1, "pro plan", OPERATOR),
        (2, "downgrade", OPERATOR),
    ]


def test_entitlement_agrees_with_the_usage_api(stack: Stack) -> None:
    """Given async usage on priced and unpriced models and streaming usage; then the check's used
    seconds equal the usage API's rows for that product, its cost is the exact cost of those
    rows at the export's prices (before the invoice's per-line rounding to the cent), and
    unpriced rows are named, never guessed."""
    limits = [
        {"product": "async", "unit": "seconds", "amount": "100000"},
        {"product": "async", "unit": "cost", "amount": "50", "enforcement": "soft"},
        {"product": "all", "unit": "seconds", "amount": "200000"},
    ]
    set_allowance(stack, "globex", limits, "enterprise")
    received_at = now_iso()
    bodies = []
    for i, (seconds, model) in enumerate(
        [(754, "universal-3-pro"), (1201, "universal-2"), (77, "universal-4-preview")]
    ):
        tid = f"9a0b4f6e-2a3e-4f55-9c1c-0d3f5b0c1a{i:02d}"
        stack.api.state.add(
            transcript(
                tid,
                webhook_url=webhook_url("globex"),
                audio_duration=seconds,
                speech_model_used=model,
            )
        )
        bodies.append(usage_message_body(tid, "globex", received_at=received_at))
    assert stack.invoke_processor(sqs_event(bodies)) == {"batchItemFailures": []}

    usage = json.loads(
        stack.invoke(
            "UsageQueryFunction",
            {"pathParameters": {"customer_id": "globex"}, "queryStringParameters": {}},
        )["body"]
    )
    rows = [r for r in usage["rows"] if r["product"] == "async"]
    check = entitlement(stack, "globex", "async")
    by_key = {(x["product"], x["unit"]): x for x in check["limits"]}
    api_seconds = sum(Decimal(r["billable_seconds"]) for r in rows)
    priced = [r for r in rows if r["cost"] is not None]
    exact = sum(
        (Decimal(r["billable_seconds"]) * Decimal(r["price_per_hour"]) / 3600 for r in priced),
        Decimal(0),
    )
    invoice = sum(Decimal(r["cost"]) for r in priced)
    assert Decimal(by_key["async", "seconds"]["used"]) == api_seconds == Decimal(2032)
    assert Decimal(by_key["all", "seconds"]["used"]) == api_seconds
    # the exact cost of the priced rows; the invoice's rounded lines are within half a cent each
    used_cost = Decimal(by_key["async", "cost"]["used"])
    assert used_cost == exact.quantize(Decimal("0.000001")) > 0
    assert abs(used_cost - invoice) <= Decimal("0.005") * len(priced)
    assert "universal-4-preview" in by_key["async", "cost"]["unpriced"]
    assert check["allowed"] is True


def test_ops_cli_sets_plans_and_allowances_versioned_and_audited(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given the ops CLI; when a plan is set, a customer put on it, then given its own set; then
    the check follows each change, every version is kept and every action is audited."""
    bus = stack.resources.event_buses["UsageEventBus"]

    def ops(*argv: str) -> Any:
        return ops_json(capsys, "--table", stack.table, "--event-bus", bus, "limits", *argv)

    plan = ops("set", "--plan", "starter", "--limit", "async:2h:80/100", "--reason", "starter")
    assert (plan["version"], plan["limits"]["limits"][0]["amount"]) == (1, "7200")
    ops("plan", "--customer", "initech", "--plan", "starter", "--reason", "signed up")
    deliver(stack, "initech", [6000])
    check = ops("check", "--customer", "initech", "--product", "async")
    assert (check["allowed"], check["allowance_source"], check["limits"][0]["remaining"]) == (
        True,
        "plan",
        "1200",
    )
    raised = ops("set", "--plan", "starter", "--limit", "async:3h", "--reason", "more hours")
    assert raised["members_updated"] == 1
    own = ops("set", "--customer", "initech", "--limit", "all:6000s:soft", "--reason", "custom")
    assert own["version"] == 2  # the plan assignment was version 1 of initech's allowance
    check = ops("check", "--customer", "initech", "--product", "async")
    assert (check["allowed"], check["allowance_source"], check["limits"][0]["exhausted"]) == (
        True,  # soft: alerts only
        "customer",
        True,
    )
    shown = ops("show", "--customer", "initech")
    assert [(v["version"], v["change"], v["actor"]) for v in shown["history"]] == [
        (1, "plan_assigned", "alice@ops"),
        (2, "customer_allowance", "alice@ops"),
    ]
    assert shown["current"]["plan_version"] == 2  # the raised plan reached initech's copy
    actions = [i["action"] for i in stack.items("audit")]
    assert actions.count("allowance.set_plan") == 2
    assert actions.count("allowance.assign_plan") == 1
    assert actions.count("allowance.set") == 1


def test_reconciliation_and_late_usage_cross_thresholds_too(stack: Stack) -> None:
    """Given a 100-second allowance; when reconciliation recovers a lost 120 s transcript, the
    100% event of this month is published; and when a webhook first received last month is
    processed only now (late), it crosses last month's threshold, in last month."""
    url = app_queue(stack)
    set_allowance(stack, "recon-co", [{"unit": "seconds", "amount": "100"}], "tiny")
    now = datetime.now(UTC)
    stamp = (now - timedelta(hours=1)).replace(tzinfo=None, microsecond=0).isoformat()
    stack.api.state.add(
        transcript(
            "7ec0e1ed-0000-4000-8000-000000000001",
            webhook_url=webhook_url("recon-co"),
            audio_duration=120,
            created=stamp,
            completed=stamp,
        )
    )
    report = stack.invoke("ReconciliationFunction", {"project": "default"})
    assert report["reports"][0]["recovered"] == 1, report
    this_month = f"{now:%Y-%m}"
    assert sorted((e["month"], e["threshold_percent"]) for e in received(stack, url)) == [
        (this_month, 50),
        (this_month, 80),
        (this_month, 100),
    ]

    last_month_end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(
        seconds=1
    )
    tid = "7ec0e1ed-0000-4000-8000-000000000002"
    stack.api.state.add(transcript(tid, webhook_url=webhook_url("recon-co"), audio_duration=90))
    late = usage_message_body(
        tid, "recon-co", received_at=last_month_end.isoformat().replace("+00:00", "Z")
    )
    assert stack.invoke_processor(sqs_event([late])) == {"batchItemFailures": []}
    previous = f"{last_month_end:%Y-%m}"
    assert sorted(
        e["threshold_percent"] for e in received(stack, url) if e["month"] == previous
    ) == [50, 80]


def test_many_long_breakdowns_stay_storable_and_the_check_exact(stack: Stack) -> None:
    """Given a customer whose 60 transcripts each carry distinct 126-character Japanese team,
    department, site and unit names (~2.5 KB of percent-encoded breakdown each): one summary
    entry per breakdown passes DynamoDB's 400 KB item limit (AWS DynamoDB Developer Guide,
    "Constraints in Amazon DynamoDB", Items, attribute names included; moto enforces it) after
    ~50 of them, and every later write of that customer is refused (quarantined unstorable). The
    summary keeps price classes, so every transcript is billed, none quarantined, and the check's
    used seconds and exact cost equal the usage API's."""
    set_allowance(
        stack,
        "teams-co",
        [
            {"product": "async", "unit": "seconds", "amount": "100000"},
            {"product": "async", "unit": "cost", "amount": "1000", "enforcement": "soft"},
        ],
        "many teams",
    )
    received_at = now_iso()
    for batch in range(6):
        bodies = []
        for i in range(10):
            n = batch * 10 + i
            team = f"営業部{n:03d}" * 21  # 126 characters
            names = {"team": team, "department": team, "site": team, "unit": team}
            tid = f"3c0b4f6e-2a3e-4f55-9c1c-0d3f5b0c{n:04d}"
            stack.api.state.add(
                transcript(
                    tid,
                    webhook_url=webhook_url("teams-co", **names),
                    audio_duration=100 + n,
                    speech_model_used=("universal-3-pro", "universal-2")[n % 2],
                )
            )
            bodies.append(
                usage_message_body(tid, "teams-co", dimensions=names, received_at=received_at)
            )
        assert stack.invoke_processor(sqs_event(bodies)) == {"batchItemFailures": []}

    assert len(stack.items("ledger")) == 60
    assert stack.items("quarantine") == [] and stack.queue_messages(stack.dlq_url) == []
    [summary] = stack.items("usage_summary")
    assert len(summary) < 40  # two price classes, whatever the breakdowns
    rows: list[dict[str, Any]] = []
    page: str | None = "0"
    while page is not None:
        usage = json.loads(
            stack.invoke(
                "UsageQueryFunction",
                {"pathParameters": {"customer_id": "teams-co"}, "queryStringParameters": {}}
                | ({"queryStringParameters": {"page": page}} if page != "0" else {}),
            )["body"]
        )
        rows += usage["rows"]
        page = usage["next_page"]
    assert len(rows) == 60
    check = entitlement(stack, "teams-co", "async")
    by_key = {(x["product"], x["unit"]): x for x in check["limits"]}
    assert (
        Decimal(by_key["async", "seconds"]["used"])
        == sum((Decimal(r["billable_seconds"]) for r in rows), Decimal(0))
        == Decimal(sum(100 + n for n in range(60)))
    )
    exact = sum(
        (Decimal(r["billable_seconds"]) * Decimal(r["price_per_hour"]) / 3600 for r in rows),
        Decimal(0),
    )
    assert Decimal(by_key["async", "cost"]["used"]) == exact.quantize(Decimal("0.000001")) > 0
    assert Decimal(usage["totals"]["cost_unrounded"]) - exact < Decimal("0.0001")


def test_10000_breakdowns_of_one_customer_are_stored_and_the_check_stays_exact(
    stack: Stack,
) -> None:
    """The extreme: one customer with 10,000 distinct breakdowns in a month (a long team name
    each, three projects, three models, add-ons). The summary's own Updates - exactly what each
    ledger transaction carries (``usage_summary.summary_updates``), 50 usages per write like a
    processor batch - are applied by DynamoDB (moto, which enforces the 400 KB item limit:
    AWS DynamoDB Developer Guide, "Constraints in Amazon DynamoDB", Items); every write is
    accepted, and the check read through the production adapter (one BatchGetItem) equals the
    sums of the 10,000 usages: seconds exactly, cost exactly (``pricing.exact_cost`` of each
    usage's own row, summed)."""
    from usage_meter.adapters.limits_table import DynamoLimits
    from usage_meter.adapters.price_table import load_price_table
    from usage_meter.adapters.usage_keys import customer_key, readable_breakdown
    from usage_meter.adapters.usage_summary import summary_updates
    from usage_meter.logic.entitlement import check_entitlement
    from usage_meter.logic.pricing import exact_cost
    from usage_meter.models.billing import UsageAggregate
    from usage_meter.models.limits import AllowanceSet, Limit
    from usage_meter.models.usage import UsageRecord, UsageStatus

    client = boto3.client("dynamodb", region_name=REGION)
    limits = DynamoLimits(client, stack.table)
    assert limits.put_customer_change(
        "bigco",
        expected_version=0,
        own=AllowanceSet(
            limits=(
                Limit(product="async", unit="seconds", amount=Decimal(10**9)),
                Limit(product="async", unit="cost", amount=Decimal(10**6)),
            )
        ),
        plan=None,
        plan_limits=None,
        plan_version=0,
        change={"reason": "extreme"},
    )
    now = datetime.now(UTC)
    month = f"{now:%Y-%m}"
    models = ("universal-3-pro", "universal-2", "best")
    usages = [
        UsageRecord(
            source_id=f"t{i}",
            product="async",
            status=UsageStatus.BILLABLE,
            customer_id="bigco",
            project=("eu", "us", "default")[i % 3],
            month=month,
            billable_seconds=Decimal(i % 997) + Decimal("0.125"),
            model=models[i % 3],
            features=("speaker_labels",) if i % 2 else (),
            dimensions={"team": f"営業部{i:05d}" * 8},
            occurred_at=now,
        )
        for i in range(10_000)
    ]
    for start in range(0, len(usages), 50):
        changes = [
            (
                u.customer_id,
                customer_key(u.customer_id),
                u.month,
                readable_breakdown(u),
                u.addon_seconds(),
                1,
                u.billable_seconds,
                (0, 0),
            )
            for u in usages[start : start + 50]
        ]
        [update] = summary_updates(stack.table, changes)
        client.update_item(**update["Update"])

    answer = check_entitlement(
        "bigco", "async", limits, load_price_table("usage_meter/config/prices.json"), now=now
    )
    used = {(s.product, s.unit): s.used for s in answer.limits}
    prices = load_price_table("usage_meter/config/prices.json").for_month(month)
    exact = sum(
        (
            exact_cost(
                UsageAggregate(
                    customer_id="bigco",
                    month=month,
                    product="async",
                    project=u.project,
                    model=u.model,
                    dimensions=u.dimensions,
                    usage_count=1,
                    billable_seconds=u.billable_seconds,
                    addon_seconds=u.addon_seconds(),
                ),
                prices,
            )[0]
            or Decimal(0)
            for u in usages
        ),
        Decimal(0),
    )
    assert used["async", "seconds"] == sum((u.billable_seconds for u in usages), Decimal(0))
    assert used["async", "cost"] == exact.quantize(Decimal("0.000001")) > 0
    [summary] = stack.items("usage_summary")
    assert len(json.dumps(summary, default=str).encode()) < 2048


def test_the_check_is_one_dynamodb_request(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the customer's usage (async and streaming, several models and teams), the
    entitlement handler makes exactly one AWS request: the BatchGetItem of the allowance item and
    the month's summary."""
    import botocore.client

    set_allowance(stack, "onecall", [{"unit": "seconds", "amount": "100000"}], "one call")
    deliver(stack, "onecall", [60, 120, 30])
    entitlement(stack, "onecall")  # warm: clients and price table loaded
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    answer = entitlement(stack, "onecall")
    assert calls == ["BatchGetItem"]
    assert Decimal(answer["limits"][0]["used"]) == Decimal(210)
