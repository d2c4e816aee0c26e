"""The output gate: its framing and size limit, who it acts for, and its signature on each request.

A real Unix socket, a real policy engine and audit log, real Ed25519 keys; the service runs in a
thread of the test process (so its peer is this same account; the separation by OS accounts is
tried in tests/integration/test_separation_of_duties.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from analysis.disclosure import FrequencyTable, list_requests
from analysis.disclosure.gate import (
    MAGIC,
    FrameError,
    GateService,
    encode_frame,
    pack_output,
    read_frame,
    unpack_output,
)
from analysis.disclosure.workflow import OfficerSigner, justify_request, release_output, submit_output
from ig_policies.demo import DEMO_OFFICER_KEY, DEMO_PASSPHRASE, DEMO_POLICY, DEMO_TRUST_STORE
from ig_policies.deployment import Deployment, PolicyPin
from ig_policies.engine import PolicyEngine
from ig_policies.errors import InputError, PolicyRefused, TamperedError
from ig_policies.gate_keys import (
    GateSettings,
    create_demo_gate,
    demo_gate_directory,
    load_gate_key,
    verify_request,
)
from ig_policies.identity import Identity, account_name
from ig_policies.workspace import Workspace

RESEARCHER, OFFICER = "demo-researcher", "demo-ig-officer"


def age_table(counts: list[int]) -> FrequencyTable:
    df = pd.DataFrame({"age_band": ["16-24", "25-49", "50-64"], "count": counts})
    return FrequencyTable(df, ("age_band",), "analysis/clients", "Clients by age band", population="all")


def _frame_through_socket(data: bytes, max_body: int | None = None) -> tuple[dict, bytes]:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)
        return read_frame(right) if max_body is None else read_frame(right, max_body=max_body)


def test_a_frame_carries_a_header_and_bytes_and_refuses_anything_else() -> None:
    header, body = _frame_through_socket(encode_frame({"request": "output", "name": "age"}, b"\x00\x01" * 10))
    assert header == {"name": "age", "request": "output"} and body == b"\x00\x01" * 10
    with pytest.raises(FrameError, match="not a request to the output gate"):
        _frame_through_socket(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n")
    with pytest.raises(FrameError, match="closed before the whole request"):
        _frame_through_socket(encode_frame({"request": "output"}, b"12345")[:-2])
    with pytest.raises(FrameError, match="not JSON"):
        _frame_through_socket(MAGIC + (5).to_bytes(4, "big") + (0).to_bytes(8, "big") + b"{nope")


def test_a_caller_trickling_bytes_cannot_hold_the_gate_past_its_deadline() -> None:
    import time

    left, right = socket.socketpair()
    with left, right:
        left.sendall(MAGIC[:3])  # and then nothing more
        with pytest.raises(TimeoutError):
            read_frame(right, deadline=time.monotonic() - 1)


def test_an_output_over_the_size_limit_is_refused_before_its_bytes_are_read() -> None:
    # Only the prefix is sent: a gate that waited for the 5 GiB would hang here.
    claim = MAGIC + (2).to_bytes(4, "big") + (5 << 30).to_bytes(8, "big")
    with pytest.raises(FrameError, match="takes at most 64 MiB"):
        _frame_through_socket(claim)
    with pytest.raises(FrameError, match="at most 0 MiB"):
        _frame_through_socket(encode_frame({}, b"x" * 2048), max_body=1024)


def test_the_researchers_side_refuses_an_output_too_large_to_send(monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.disclosure.gate as gate

    monkeypatch.setattr(gate, "MAX_OUTPUT_BYTES", 100)
    with pytest.raises(InputError, match="more than the output gate takes"):
        pack_output(age_table([30, 300, 200]))


def test_an_output_goes_as_bytes_and_only_the_files_save_output_writes(tmp_path: Path) -> None:
    listing, body = pack_output(age_table([30, 300, 200]))
    assert sorted(item["name"] for item in listing) == ["output.json", "table.parquet"]
    back = unpack_output(listing, body, tmp_path / "ok")
    assert isinstance(back, FrequencyTable) and back.table["count"].tolist() == [30, 300, 200]
    for name in ("../escape.json", "table/../../x.parquet", ".hidden.json", "/etc/passwd", "a/b/c.json"):
        bad = [{"name": name, "size": len(body)}]
        with pytest.raises(FrameError, match="does not take"):
            unpack_output(bad, body, tmp_path / "bad")
    with pytest.raises(FrameError, match="do not add up"):
        unpack_output([{**listing[0], "size": listing[0]["size"] + 1}, listing[1]], body, tmp_path / "n")
    assert not (tmp_path / "escape.json").exists()


def test_only_the_gates_own_process_may_act_for_another_account(workspace: Workspace) -> None:
    me = os.getuid()
    claims = [
        Identity(account="somebody-else", uid=me + 4242, groups=frozenset(), demo=True, peer=True),
        Identity(account="somebody-else", uid=me + 4242, groups=frozenset(), demo=True, peer=False),
    ]
    for claimed in claims:
        with pytest.raises(PolicyRefused) as refused:
            PolicyEngine.load(DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, identity=claimed)
        assert refused.value.rule == "peer_identity_only_for_gate"
    from ig_policies.audit import AuditLog

    refusals = [e for e in AuditLog.for_workspace(workspace).entries() if e["action"] == "load_policy"]
    assert [e["actor"] for e in refusals] == ["somebody-else", "somebody-else"]
    assert {e["account"] for e in refusals} == {account_name(me)}  # who really asked
    # a claim carrying this process's own uid is this process, whatever name and groups it claims
    claimed = Identity(account="somebody-else", uid=me, groups=frozenset({"ehl-officers"}), peer=True)
    engine = PolicyEngine.load(DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, identity=claimed)
    assert engine.identity.account == account_name(me) and "ehl-officers" not in engine.identity.groups


def test_release_checks_the_gates_signature_and_the_signed_hash(workspace: Workspace, tmp_path: Path) -> None:
    from ig_policies.demo import demo_engine

    engine = demo_engine(workspace)
    receipt = submit_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "board")
    folder = workspace.pending / receipt.request_id
    public = create_demo_gate(demo_gate_directory(workspace)).verifier()
    fields, digest = verify_request(public, folder, receipt.request_id)
    assert fields["requested_by"] == RESEARCHER and len(digest) == 64
    original = (folder / "request.json").read_text()
    (folder / "request.json").write_text(original.replace('"blocked"', '"pending"').replace("board", "x"))
    with pytest.raises(TamperedError, match="does not match the output gate's signature"):
        verify_request(public, folder, receipt.request_id)
    (folder / "request.json").write_text(original)
    other = create_demo_gate(tmp_path / "another-gate").verifier()  # a key that is not the gate's
    with pytest.raises(TamperedError, match="does not match"):
        verify_request(other, folder, receipt.request_id)
    shutil.move(folder / "request.sig", tmp_path / "request.sig")
    signer = OfficerSigner.from_file(DEMO_OFFICER_KEY, DEMO_PASSPHRASE)
    with pytest.raises(TamperedError, match="not signed by the output gate") as tampered:
        release_output(workspace, engine, OFFICER, receipt.request_id, signer)
    assert tampered.value.exit_code == 5
    shutil.move(tmp_path / "request.sig", folder / "request.sig")
    assert release_output(workspace, engine, OFFICER, receipt.request_id, signer).released


@pytest.fixture
def gate_service(workspace: Workspace, tmp_path: Path) -> Iterator[Deployment]:
    """The gate's ``handle`` answering a Unix socket in ``tmp_path`` from a thread (``ehl gate
    serve`` itself, its socket's mode and group, is run in the OS-account tests); the deployment
    naming it."""
    keys = create_demo_gate(tmp_path / "gate-state")
    sock = tmp_path / "gate.sock"
    deployment = Deployment(
        demo=True,
        trust_store=DEMO_TRUST_STORE,
        policy=PolicyPin(path=DEMO_POLICY),
        gate=GateSettings(public_key=keys.public_key, socket=sock, account=account_name(os.getuid())),
    )
    service = GateService(deployment, workspace, load_gate_key(keys.signing_key))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(4)

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            with conn:
                service.handle(conn)

    thread = threading.Thread(target=answer, daemon=True, name="output-gate")
    thread.start()
    yield deployment
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(10)


def test_through_the_socket_the_gate_checks_stores_signs_and_replies(
    workspace: Workspace, gate_service: Deployment
) -> None:
    engine = PolicyEngine.load(DEMO_POLICY, workspace, trust_store=DEMO_TRUST_STORE, deployment=gate_service)
    receipt = submit_output(workspace, engine, RESEARCHER, age_table([30, 300, 200]), "age", "board")
    assert receipt.status == "pending" and "Outcome: PASS" in receipt.report_text
    [request] = list_requests(workspace)
    assert request.request_id == receipt.request_id and request.requested_by == RESEARCHER
    # the justification changes through the gate too, and the gate signs the request again
    assert (
        justify_request(workspace, engine, RESEARCHER, "age", "for the board, in May") == receipt.request_id
    )
    assert list_requests(workspace)[0].justification == "for the board, in May"
    with pytest.raises(InputError, match="no output request has this id"):
        justify_request(workspace, engine, RESEARCHER, "nothing-like-it", "x")
    entries = [e for e in engine.audit.entries() if e["action"] == "output_request"]
    assert [e["decision"] for e in entries] == ["started", "allowed"]
    assert entries[1]["details"]["request_id"] == receipt.request_id
    signer = OfficerSigner.from_file(DEMO_OFFICER_KEY, DEMO_PASSPHRASE)
    assert release_output(workspace, engine, OFFICER, receipt.request_id, signer).released
    # a frame larger than the gate takes is answered with the limit, in plain words
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(gate_service.gate.socket))
        conn.sendall(MAGIC + (2).to_bytes(4, "big") + (1 << 40).to_bytes(8, "big"))
        reply, _ = read_frame(conn, max_body=0)
    assert reply["ok"] is False and "takes at most" in reply["error"]
    assert json.dumps(reply)  # a reply is plain JSON, never a traceback


def test_the_demo_runs_with_an_in_process_gate_and_a_demo_key(workspace: Workspace) -> None:
    """One account, no services: the DEMO gate beside the workspace writes and signs the requests,
    and the demo officer's review releases what passed."""
    from analysis.disclosure import verify_all_releases
    from analysis.stage import request_outputs
    from flows.demo import review_as_demo_officer
    from ig_policies.demo import demo_engine

    engine = demo_engine(workspace, today=None)
    requests, folders = request_outputs(
        workspace, engine, RESEARCHER, [("age", age_table([30, 300, 200]))], "the demo"
    )
    [(name, rid, status)] = requests
    assert (name, status) == ("age", "pending") and (folders[0] / "request.sig").exists()
    assert demo_gate_directory(workspace).is_dir() and not (workspace.root / "signing.key").exists()
    review = review_as_demo_officer(workspace)
    assert review.released == (rid,)
    assert all(r.ok for r in verify_all_releases(workspace, engine.policy.outputs, engine))
