"""A real SMTP server on loopback (aiosmtpd) for the reminder tests.

`smtp_server` (import `smtp_server_fixture` into the test module) starts one on
a free port and points Django's SMTP backend at it.
Set `inbox.refuse = "451 4.3.0 Try again later"` to make it refuse messages
(with `inbox.refuse_after = n`: once it has accepted n messages, as a server
failing mid-way), or call `inbox.stop()` to take it away (connection refused).
"""

import email
import email.policy
import socket
import threading

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []
        self.refused = 0
        self.refuse: str | None = None
        self.refuse_after = 0
        self.controller: Controller | None = None
        self.port = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            if self.refuse and len(self.messages) >= self.refuse_after:
                self.refused += 1
                return self.refuse
            self.messages.append((sorted(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def text(self, index: int = -1) -> str:
        return self.messages[index][1].get_body(("plain",)).get_content()

    def html(self, index: int = -1) -> str:
        return self.messages[index][1].get_body(("html",)).get_content()

    def to(self, index: int = -1) -> list[str]:
        return self.messages[index][0]

    def start(self):
        # A stopped controller's loop is closed: a restart needs a new one.
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


@pytest.fixture(name="smtp_server")
def smtp_server_fixture(settings):
    inbox = Inbox()
    inbox.port = port = free_port()
    inbox.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    yield inbox
    inbox.controller.stop(no_assert=True)


def restore_reference_data() -> None:
    """Re-create what the data migrations put in the database (the default
    follow-up protocol, the beat entry). A transactional test by anyone flushes
    every table, and serialized_rollback clashes with the content types that
    flush re-creates, so transactional reminder tests call this instead."""
    import importlib

    from django.apps import apps

    for module, function in (("0002_default_protocol", "create_default"),
                             ("0003_reminders_beat_schedule", "create_beat_entry"),
                             ("0012_proms", "create_default_proms"),
                             ("0013_data_management", "create_beat_entry")):
        getattr(importlib.import_module(f"registry.migrations.{module}"), function)(apps, None)
