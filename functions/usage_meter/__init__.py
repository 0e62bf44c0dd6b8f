"""Usage meter for AssemblyAI: per-customer usage metering for resellers of speech-to-text.

Layout (imports flow one way: handlers -> logic -> adapters; models and settings underneath):
- ``handlers/``  one module per Lambda function: decorators, parse, one logic call, map the outcome.
- ``logic/``     the domain: validation, billing rules, exactly-once recording decisions.
- ``adapters/``  the only code that knows DynamoDB keys, SQS, Secrets Manager, the AssemblyAI SDK.
- ``models/``    typed pydantic models at every boundary.
- ``settings``   one model of environment variables per function (plain dataclasses;
                 ``settings_base``: the shared parsers and the webhook intake's model).
"""
