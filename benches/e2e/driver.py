"""End-to-end round trip through whole processes, as users and bots run them: two peers on
loopback, each reading lines on stdin and printing JSON lines on stdout; the driver writes a
line into A, waits for B to print it, writes a reply into B and waits for A to print that.
The same driver, pipes and message sizes for both stacks, in one run:

- p2pchat: two `p2pchat chat --headless` processes in direct mode (the release binary);
- the seed's stack: two benches/e2e/seed_peer.py processes (Python, cryptography's Fernet).

Each pair runs --samples round trips after --warmup; the stacks take turns (--rounds times) so a
noisy neighbour on the VM touches both alike. Prints a line per round and one JSON object with
the p50 and p99 of each stack and their ratios (p2pchat / seed), and the CPU time both peers of
each stack spent per round trip (median over rounds; on two cores most of a round trip runs one
process after another, so this is most of its length).
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TEXT = "a typical chat message, about sixty bytes of text in it"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, bufsize=0,
        )
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def say(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, pred, within=20.0):
        deadline = time.monotonic() + within
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if pred(value):
                    return value
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise TimeoutError("no matching line within %.0f s" % within)
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("the peer exited")
            self.buffer += chunk

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def p2pchat_pair(binary, key, workdir):
    ports = (free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2PCHAT_")}
    env["P2PCHAT_CONFIG"] = "/dev/null"
    env["P2PCHAT_KEY"] = key
    peers = []
    for i, name in enumerate(("alice", "bob")):
        argv = [
            binary, "chat", "--headless", "--name", name,
            "--bind", "127.0.0.1:%d" % ports[i], "--peer", "127.0.0.1:%d" % ports[1 - i],
            "--data-dir", os.path.join(workdir, name),
        ]
        peers.append(Peer(argv, env))
    for peer in peers:
        peer.expect(lambda v: v.get("event") == "peer_online")
    return peers


def seed_pair(python, key, workdir):
    ports = (free_port(), free_port())
    here = os.path.dirname(os.path.abspath(__file__))
    peers = []
    for i, name in enumerate(("alice", "bob")):
        argv = [
            python, os.path.join(here, "seed_peer.py"), "--name", name, "--key", key,
            "--bind", "127.0.0.1:%d" % ports[i], "--peer", "127.0.0.1:%d" % ports[1 - i],
            "--log", os.path.join(workdir, name + ".jsonl"),
        ]
        peers.append(Peer(argv))
    for peer in peers:
        peer.expect(lambda v: v.get("event") == "ready")
    return peers


def cpu_ns(pid):
    """CPU time so far of every thread of process `pid` (Linux schedstat: ns on a CPU)."""
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended meanwhile
    return total


def round_trips(pair, count):
    a, b = pair
    times = []
    for i in range(count):
        there, back = "%d %s" % (i, TEXT), "%d re: %s" % (i, TEXT)
        started = time.perf_counter_ns()
        a.say(there)
        b.expect(lambda v: v.get("event") == "message" and v.get("text") == there)
        b.say(back)
        a.expect(lambda v: v.get("event") == "message" and v.get("text") == back)
        times.append((time.perf_counter_ns() - started) / 1000.0)
    return times


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[round((len(ordered) - 1) * p)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--p2pchat", required=True, help="the release binary")
    parser.add_argument("--python", default=sys.executable, help="with cryptography installed")
    parser.add_argument("--key", required=True, help="a Fernet key (p2pchat keygen)")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {"p2pchat": [], "seed": []}
    # CPU time both peers spent per round trip, per round.
    cpu_per_trip = {"p2pchat": [], "seed": []}
    for round_no in range(args.rounds):
        for stack in ("p2pchat", "seed"):
            workdir = tempfile.mkdtemp(prefix="p2pchat-e2e-")
            try:
                if stack == "p2pchat":
                    pair = p2pchat_pair(args.p2pchat, args.key, workdir)
                else:
                    pair = seed_pair(args.python, args.key, workdir)
                round_trips(pair, args.warmup)
                cpu_before = sum(cpu_ns(peer.proc.pid) for peer in pair)
                times = round_trips(pair, args.samples)
                cpu = (sum(cpu_ns(peer.proc.pid) for peer in pair) - cpu_before) / 1000.0
                cpu_per_trip[stack].append(cpu / args.samples)
                for peer in pair:
                    peer.stop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            results[stack].extend(times)
            print(
                "round %d %-8s p50 %8.1f us  p99 %8.1f us  CPU of both peers %6.1f us a round trip" % (
                    round_no + 1, stack, percentile(times, 0.5), percentile(times, 0.99),
                    cpu_per_trip[stack][-1]),
                file=sys.stderr,
            )
    summary = {}
    for stack, times in results.items():
        summary[stack] = {
            "p50_us": percentile(times, 0.5), "p99_us": percentile(times, 0.99),
            "cpu_us_per_round_trip": percentile(cpu_per_trip[stack], 0.5),
        }
    summary["ratio_p50"] = summary["p2pchat"]["p50_us"] / summary["seed"]["p50_us"]
    summary["ratio_p99"] = summary["p2pchat"]["p99_us"] / summary["seed"]["p99_us"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
