"""Domain logic: no boto3, no environment, no HTTP framework. Talks to the world through ports."""
