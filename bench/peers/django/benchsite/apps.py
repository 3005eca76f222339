"""Puts every SQLite connection in WAL mode with Latch's pragmas."""
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def use_wal(sender, connection, **kwargs):
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # as Latch


class BenchsiteConfig(AppConfig):
    name = "benchsite"

    def ready(self):
        connection_created.connect(use_wal)
