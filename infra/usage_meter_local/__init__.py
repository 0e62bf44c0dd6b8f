"""The local stack: the whole service on one machine with no AWS account, no AssemblyAI key and no
Docker. moto's server mode stands in for AWS, a small HTTP server for AssemblyAI's API; resources
are created from what template.yaml declares, so there is no second copy of names or key schemas.

- ``template``: reads template.yaml, provisions its tables/queues/buckets, resolves environments.
- ``moto_server``: AWS on localhost; ``assemblyai_standin``: AssemblyAI's transcript API.
- ``worker`` / ``function_pool``: one process per Lambda function, invoked over a pipe.
- ``http_front``: the HttpApi routes as API Gateway (payload 2.0) events.
- ``sqs_poller``: the SQS event source mapping (batches, partial failures, redelivery).
- ``stack``: all of it wired together; ``cli`` (``python -m usage_meter_local``): demo, serve,
  invoke; ``scenario`` / ``demo`` / ``report``: the fixture data, the scripted demo, its tables.
"""
