"""The `dddp` server: gevent, WebSocket transport, sessions, method workers.

Importing this package imports neither gevent nor Django: the entry point
(`dddp.server.main.main`) monkey-patches first and imports them after.
"""
