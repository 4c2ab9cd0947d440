"""Operator commands around the flows: dead letters, replay, backfill and reconcile.

Each command is an I/O shell (Kafka, the Dynamics APIs, a rich console) around small pure
functions, and reaches Kafka only through the seams in :mod:`bridge.ops.ports`, implemented
once in :mod:`bridge.kafka.ops`. See ``docs/operations.md``.
"""
