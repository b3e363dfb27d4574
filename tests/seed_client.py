"""A chat client written from the seed notes: one UDP socket, JSON messages with type, name,
timestamp and text, encrypted with cryptography's Fernet. Used by the seed-compatibility test.

Usage: SEED_KEY=... python3 seed_client.py LOCAL_ADDR PEER_ADDR
Sends one seed-format message, then prints the first chat message it can decrypt as JSON.
"""

import json
import os
import socket
import sys

from cryptography.fernet import Fernet, InvalidToken


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main():
    fernet = Fernet(os.environ["SEED_KEY"].encode())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(addr(sys.argv[1]))
    sock.settimeout(10)
    peer = addr(sys.argv[2])
    message = {
        "type": "message",
        "name": "seedling",
        "timestamp": "2025-05-29 10:00:00",
        "text": "hello from the seed client",
    }
    sock.sendto(fernet.encrypt(json.dumps(message).encode()), peer)
    while True:
        data, _ = sock.recvfrom(65536)
        try:
            payload = json.loads(fernet.decrypt(data))
        except (InvalidToken, ValueError):
            continue
        # p2pchat also sends keepalive pings; a seed client only cares about messages.
        if payload.get("type") == "message":
            print(json.dumps(payload), flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main())
