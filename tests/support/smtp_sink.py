#!/usr/bin/python3
"""A real SMTP server on loopback for the tests (Debian's python3-aiosmtpd).

Usage: smtp_sink.py DIR [MODE] [PORT]  -- prints "PORT <n>" once listening (on PORT, or a free
port without one); writes each message it accepts to DIR/<n>.eml (the raw message, with
X-Rcpt-To and X-Mail-From headers first). Runs until killed. MODE says how it answers:
  accept         250 to everything (the default)
  tempfail-once  451 to the first RCPT TO it is sent, as a greylisting server does; then 250
  reject         550 to every RCPT TO, as for an address that does not exist
  hang           accepts connections and never says a word, not even the greeting; each
                 connection it holds is a file DIR/connection-<n>
"""
import os
import signal
import socket
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, mode):
        self.directory = directory
        self.mode = mode
        self.count = 0
        self.refused = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "reject":
            return "550 5.1.1 No such user here"
        if self.mode == "tempfail-once" and self.refused == 0:
            self.refused += 1
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, "%d.eml" % self.count)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(("X-Mail-From: %s\r\n" % envelope.mail_from).encode())
            f.write(("X-Rcpt-To: %s\r\n" % ",".join(envelope.rcpt_tos)).encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, path)  # appears whole, never half-written
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hang(directory, port):
    """Holds every connection open, silent, until killed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    held = []

    def accept():
        while True:
            conn, _ = listener.accept()
            held.append(conn)
            open(os.path.join(directory, "connection-%d" % len(held)), "w").close()

    threading.Thread(target=accept, daemon=True).start()


def main():
    directory = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "accept"
    port = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "0" else free_port()
    controller = None
    if mode == "hang":
        hang(directory, port)
    else:
        controller = Controller(Sink(directory, mode), hostname="127.0.0.1", port=port)
        controller.start()
    print("PORT %d" % port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        if controller:
            controller.stop()


if __name__ == "__main__":
    main()
