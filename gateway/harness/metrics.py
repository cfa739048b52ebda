"""Prometheus metrics of one server process (a registry per app, so tests can run several).

Under `serve --workers N` every worker writes its values to PROMETHEUS_MULTIPROC_DIR (the
library's multiprocess mode) and `render` adds up all the workers' files, so any worker's
/metrics covers the whole server.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "ussdsim_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "ussdsim_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ussd_sessions = Counter(
            "ussdsim_ussd_sessions", "USSD sessions opened by route", ["route"], registry=r
        )
        self.ussd_steps = Counter(
            "ussdsim_ussd_steps",
            "USSD screens sent, by whether they ended the session",
            ["end"],
            registry=r,
        )
        self.ussd_released = Counter(
            "ussdsim_ussd_released", "USSD sessions released, by cause", ["cause"], registry=r
        )
        self.ussd_app_errors = Counter(
            "ussdsim_ussd_app_errors",
            "USSD applications that gave no usable answer, by route and reason",
            ["route", "reason"],
            registry=r,
        )
        self.ussd_open = Gauge(
            "ussdsim_ussd_open_sessions",
            "USSD sessions open in the store",
            registry=r,
            multiprocess_mode="mostrecent",  # every worker reads the same store figure
        )
        self.sms = Counter(
            "ussdsim_sms", "SMS by direction and encoding", ["direction", "encoding"], registry=r
        )
        self.sms_segments = Counter(
            "ussdsim_sms_segments", "SMS segments by direction", ["direction"], registry=r
        )
        self.ledger_ops = Counter(
            "ussdsim_ledger_operations",
            "Ledger operations by name and outcome",
            ["op", "outcome"],
            registry=r,
        )
        self.smpp_pdus = Counter(
            "ussdsim_smpp_pdus",
            "SMPP PDUs by direction (in/out), command and command_status",
            ["direction", "command", "status"],
            registry=r,
        )
        self.smpp_queue_dropped = Counter(
            "ussdsim_smpp_queue_dropped",
            "deliver_sm not queued or not sent: reason queue_full (an MO refused at"
            " smpp.mo_queue_max) or expired (older than smpp.mo_validity_s)",
            ["account", "reason"],
            registry=r,
        )

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROC_ENV)
        if not shared:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path=shared)  # type: ignore[no-untyped-call]
        return generate_latest(everyone)
