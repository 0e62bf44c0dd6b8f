"""The local stack: the whole service on one machine with no AWS account, no AssemblyAI key and no
Docker. moto's server mode stands in for AWS, a small HTTP server for AssemblyAI's API; resources
are created from what template.yaml declares, so there is no second copy of names or key schemas.
"""
