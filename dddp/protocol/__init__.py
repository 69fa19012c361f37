"""The sans-IO DDP core: messages, EJSON, errors and connection state.

Nothing in this package imports Django, gevent or sockets: data in, events and
message texts out, so it can be tested (and reused) without any I/O.
"""
