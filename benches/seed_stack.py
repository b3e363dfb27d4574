"""The seed prototype's stack, written for the benchmark: one UDP socket per peer, JSON
messages (type, name, timestamp, text) encrypted with cryptography's Fernet, a listener that
decrypts and parses each datagram. The seed has no acknowledgements; this adds the smallest
one (an encrypted JSON ack per message) so the same figures as p2pchat's can be measured:

- one-way latency: from handing the text to the sender to the receiver holding the parsed
  message, sequential, each waiting for its ack (p50 and p99 of --samples);
- acknowledged messages per second: --batch messages with at most 64 unacknowledged.

The receiver runs in a separate process (no shared interpreter lock), on loopback; both read
the same monotonic clock. Prints one JSON object.
"""

import argparse
import json
import multiprocessing
import socket
import time

from cryptography.fernet import Fernet

TEXT = "a typical chat message, about sixty bytes of text in it"
WINDOW = 64


def receiver(key, port_queue):
    fernet = Fernet(key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port_queue.put(sock.getsockname()[1])
    while True:
        data, peer = sock.recvfrom(65536)
        message = json.loads(fernet.decrypt(data))
        shown = time.monotonic_ns()
        if message.get("type") == "stop":
            return
        ack = {"type": "ack", "id": message["id"], "shown": shown}
        sock.sendto(fernet.encrypt(json.dumps(ack).encode()), peer)


def send(sock, fernet, peer, seq):
    message = {
        "type": "message",
        "name": "alice",
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
        "text": TEXT,
        "id": seq,
    }
    sock.sendto(fernet.encrypt(json.dumps(message).encode()), peer)


def receive_ack(sock, fernet):
    data, _ = sock.recvfrom(65536)
    return json.loads(fernet.decrypt(data))


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[round((len(ordered) - 1) * p)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=20000)
    args = parser.parse_args()

    key = Fernet.generate_key()
    fernet = Fernet(key)
    ports = multiprocessing.Queue()
    process = multiprocessing.Process(target=receiver, args=(key, ports), daemon=True)
    process.start()
    peer = ("127.0.0.1", ports.get(timeout=10))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    latencies = []
    for seq in range(args.samples):
        sent = time.monotonic_ns()
        send(sock, fernet, peer, seq)
        ack = receive_ack(sock, fernet)
        latencies.append((ack["shown"] - sent) / 1000.0)

    start = time.monotonic()
    sent = acked = 0
    while acked < args.batch:
        while sent < args.batch and sent - acked < WINDOW:
            send(sock, fernet, peer, sent)
            sent += 1
        receive_ack(sock, fernet)
        acked += 1
    elapsed = time.monotonic() - start

    stop = {"type": "stop", "id": -1}
    sock.sendto(fernet.encrypt(json.dumps(stop).encode()), peer)
    process.join(timeout=5)
    print(json.dumps({
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
        "acked_per_s": args.batch / elapsed,
    }))


if __name__ == "__main__":
    main()
