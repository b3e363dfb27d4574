"""A headless peer on the seed prototype's stack, for the end-to-end benchmark: one UDP socket,
JSON messages (type, name, timestamp, text, id) encrypted with cryptography's Fernet, a listener
thread that decrypts, logs and prints each message, and the main thread reading stdin lines
and sending them — the seed's design (a listener thread beside the input loop). Like p2pchat's
headless mode it logs every message to a file before printing it (append, flush) and answers
each with an encrypted ack, and prints one JSON object per line: {"event": "message", "from",
"text"}. Used by benches/e2e/driver.py beside two `p2pchat chat --headless` processes.
"""

import argparse
import json
import socket
import sys
import threading
import time

from cryptography.fernet import Fernet


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", required=True, help="HOST:PORT")
    parser.add_argument("--peer", required=True, help="HOST:PORT")
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    fernet = Fernet(args.key.encode())
    host, port = args.bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    peer_host, peer_port = args.peer.rsplit(":", 1)
    peer = (peer_host, int(peer_port))
    log = open(args.log, "a", encoding="utf-8")
    lock = threading.Lock()

    def emit(value):
        with lock:
            sys.stdout.write(json.dumps(value) + "\n")
            sys.stdout.flush()

    def write_log(message):
        with lock:
            log.write(json.dumps(message) + "\n")
            log.flush()

    def listener():
        while True:
            data, source = sock.recvfrom(65536)
            try:
                message = json.loads(fernet.decrypt(data))
            except Exception:
                continue
            if message.get("type") != "message":
                continue
            write_log(message)
            emit({"event": "message", "from": message["name"], "text": message["text"]})
            ack = {"type": "ack", "id": message["id"]}
            sock.sendto(fernet.encrypt(json.dumps(ack).encode()), source)

    threading.Thread(target=listener, daemon=True).start()
    emit({"event": "ready", "local": args.bind})
    for seq, line in enumerate(sys.stdin):
        message = {
            "type": "message",
            "name": args.name,
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
            "text": line.rstrip("\n"),
            "id": seq,
        }
        write_log(message)
        sock.sendto(fernet.encrypt(json.dumps(message).encode()), peer)


if __name__ == "__main__":
    main()
