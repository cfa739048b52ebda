"""What test harnesses drive and read: the one clock (real or virtual), fault personas, the event
stream, Prometheus metrics and scenario files (`scenario/`).

Every edge may use these; nothing here imports the HTTP or USSD rooms (a scenario's private
server aside).
"""
