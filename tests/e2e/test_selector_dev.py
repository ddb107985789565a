"""`geomesh dev` runs a 3-node selector cluster with GeoDNS; edges register
with it; a participant placed by the selector joins the edge it was given."""

import asyncio
import json
import os
import socket
import struct
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from clients import WhipPublisher, wait_until
from conftest import http_get, wait_for


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def dns_a(server, name, subnet=None):
    """A minimal DNS A query (RFC 1035), optionally with EDNS Client Subnet (RFC 7871)."""
    qid = int.from_bytes(os.urandom(2), "big")
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    arcount = 1 if subnet else 0
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, arcount) + labels + struct.pack("!HH", 1, 1)
    if subnet:
        ip, prefix = subnet
        addr = socket.inet_aton(ip)[: (prefix + 7) // 8]
        opt = struct.pack("!HBB", 1, prefix, 0) + addr
        msg += b"\0" + struct.pack("!HHIH", 41, 4096, 0, 4 + len(opt)) + struct.pack("!HH", 8, len(opt)) + opt
    host, port = server.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(msg, (host, int(port)))
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    rid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    assert rid == qid
    # Skip the question, read A answers (name compression pointer or labels).
    i = 12
    while data[i] != 0:
        i += 1 + data[i]
    i += 5
    answers = []
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i] != 0:
                i += 1 + data[i]
            i += 1
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", data[i:i + 10])
        i += 10
        if rtype == 1:
            answers.append((socket.inet_ntoa(data[i:i + rdlen]), ttl))
        i += rdlen
    return flags & 0xF, answers


def test_dev_runs_a_selector_cluster_and_edges_register(mesh):
    sels = mesh.state["selectors"]
    assert len(sels) == 3
    for s in sels:
        assert s["url"].startswith("http://127.0.0.1:") and s["pid"] > 0 and ":" in s["dns"]
    roles = []
    for s in sels:
        _, body = http_get(s["url"] + "/healthz")
        h = json.loads(body)
        assert h["leader_id"] in {x["id"] for x in sels}, h
        roles.append(h["raft_role"])
    assert roles.count("leader") == 1 and roles.count("follower") == 2, roles
    for e in mesh.state["edges"]:
        h = json.loads(http_get(e["url"] + "/healthz")[1])
        assert h["registered"] is True, h
    _, body = http_get(sels[0]["url"] + "/v1/bridges")
    ids = {b["id"] for b in json.loads(body)["bridges"]} if isinstance(json.loads(body), dict) else {b["id"] for b in json.loads(body)}
    assert ids == {e["id"] for e in mesh.state["edges"]}


def test_selector_placement_token_admits_to_the_edge(mesh):
    sel = mesh.state["selectors"][1]["url"]
    # Open mode (geomesh dev): the selector assigns the participant id.
    status, placed = post_json(sel + "/v1/join", {"conference": "placed", "display_name": "Pat"})
    assert status == 200, placed
    pat = placed["participant"]
    # Loopback clients are in dev-eu by the topology's override.
    assert placed["edge"]["id"] == mesh.state["edges"][0]["id"], placed
    base = placed["edge"]["whip_url"].rsplit("/v1/whip/", 1)[0]

    def participant(conf_url):
        try:
            c = mesh.operator_get(conf_url)
        except urllib.error.HTTPError as e:
            assert e.code == 404, e  # the conference is gone with its last participant
            return None
        return next((p for p in c["participants"] if p["participant"] == pat), None)

    async def run():
        pub = await WhipPublisher(base, "placed", placed["token"]).start()
        conf_url = sel + "/v1/conferences/placed"
        await wait_until("the edge confirms the placement",
                         lambda: (participant(conf_url) or {}).get("confirmed") is True)
        assert await pub.stop() == 200
        await wait_until("the edge releases the placement", lambda: participant(conf_url) is None)

    asyncio.run(run())


def test_geodns_answers_the_meeting_host(mesh):
    dns = mesh.state["selectors"][0]["dns"]
    host = mesh.state["meeting_host"]
    rcode, answers = wait_for("a GeoDNS answer", lambda: (lambda r: r if r[1] else None)(dns_a(dns, host)))
    assert rcode == 0 and answers[0][0] == "127.0.0.1" and 0 < answers[0][1] <= 60, answers
    rcode, answers = dns_a(dns, host, subnet=("10.9.0.0", 24))
    assert rcode == 0 and answers, answers
    rcode, _ = dns_a(dns, "other." + host)
    assert rcode == 3, "NXDOMAIN for names outside the meeting host"


def test_geodns_answers_dig_over_udp_and_tcp_with_and_without_ecs(mesh):
    """What a resolver delegating the meeting zone to the selectors does:
    `dig` (BIND's client) over UDP and TCP (RFC 7766), with and without
    EDNS Client Subnet, for A, SOA and NS."""
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig not installed (Debian package dnsutils)")
    host, port = mesh.state["selectors"][0]["dns"].rsplit(":", 1)
    name = mesh.state["meeting_host"]

    def ask(*args):
        r = subprocess.run([dig, f"@{host}", "-p", port, "+time=2", "+tries=2", *args],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    for transport in ([], ["+tcp"]):
        for ecs in ([], ["+subnet=198.51.100.0/24"]):
            out = ask(*transport, *ecs, name, "A")
            assert "status: NOERROR" in out and "flags: qr aa" in out, out
            answers = [line.split() for line in out.splitlines() if line and not line.startswith(";")]
            a = [f[-1] for f in answers if len(f) >= 5 and f[3] == "A"]
            assert a and all(x == "127.0.0.1" for x in a), out
            if ecs:
                assert "CLIENT-SUBNET: 198.51.100.0/24/24" in out, out
        soa = ask(*transport, name, "SOA")
        assert "status: NOERROR" in soa and "SOA" in soa, soa
        ns = ask(*transport, name, "NS", "+short")
        assert len(ns.split()) == len(mesh.state["selectors"]), ns
    assert "status: NXDOMAIN" in ask("nothere." + name, "A")
    assert "status: REFUSED" in ask("example.org", "A")
