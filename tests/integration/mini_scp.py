#!/usr/bin/env python3
"""A deliberately small DICOM Verification/Storage SCP for testing segnode's SCU.

It speaks just enough of the DICOM upper layer (PS3.8) and DIMSE (PS3.7) to answer C-ECHO and
C-STORE with statuses and Error Comments chosen by the test -- the answers that real peers
(storescp, segnode) never give on demand: warnings, arbitrary failures, silence. It shares no
code with DCMTK, so it also checks that segnode's SCU reads what is on the wire.

  mini_scp.py [--port N] [--ae AE] [--status HEX[,HEX...]] [--comment TEXT]
              [--echo-status HEX] [--accept-ts UID[,UID...]] [--silent] [--answer N]
              [--out DIR] [--delay-ms N] [--journal FILE]

--status       C-STORE statuses, used in turn (cycled); default 0000
--comment      Error Comment (0000,0902) sent with every non-success status
--accept-ts    transfer syntaxes it accepts (first proposed one of these wins); default: the
               first proposed
--silent       receive C-STOREs but never answer them (the SCU must time out)
--answer N     answer the first N C-STOREs (in total), then go silent like --silent; prints
               "answered <sop uid>" / "silent <sop uid>" on stdout for each one
--out DIR      write each received data set to DIR/<sop instance uid>.dset, with its
               transfer syntax UID in DIR/<sop instance uid>.ts
--delay-ms N   wait N ms before answering each C-STORE (a slow destination)
--journal FILE append "<sop instance uid> <status>" to FILE after each C-STORE response is
               sent, so a test can count deliveries (a repeated UID was delivered twice)

Prints "listening <port>" on stdout once bound (port 0 picks a free one), then serves one
association at a time on 127.0.0.1 until killed.
"""

import argparse
import socket
import struct
import sys
import time
from pathlib import Path

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = b"1.2.826.0.1.3680043.10.1087.1"  # any valid UID; names this test peer
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
NO_DATASET = 0x0101


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return bytes(buf)


def read_pdu(sock):
    header = recv_exact(sock, 6)
    (length,) = struct.unpack(">I", header[2:6])
    return header[0], recv_exact(sock, length)


def pdu(pdu_type, body):
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def item(item_type, body):
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def items(data):
    i = 0
    while i + 4 <= len(data):
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        yield data[i], data[i + 4:i + 4 + length]
        i += 4 + length


def uid(raw):
    return raw.rstrip(b"\0 ").decode("ascii")


def parse_associate_rq(body):
    called, calling = body[4:20], body[20:36]
    contexts = []
    for item_type, value in items(body[68:]):
        if item_type == 0x20:
            abstract, syntaxes = None, []
            for sub_type, sub in items(value[4:]):
                if sub_type == 0x30:
                    abstract = uid(sub)
                elif sub_type == 0x40:
                    syntaxes.append(uid(sub))
            contexts.append((value[0], abstract, syntaxes))
    return called, calling, contexts


def associate_ac(called, calling, answers):
    body = struct.pack(">HH", 1, 0) + called + calling + b"\0" * 32 + item(0x10, APP_CONTEXT)
    for pcid, result, syntax in answers:
        body += item(0x21, bytes([pcid, 0, result, 0]) + item(0x40, syntax.encode("ascii")))
    body += item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, IMPLEMENTATION_UID))
    return pdu(0x02, body)


def element(tag_element, value):
    return struct.pack("<HHI", 0, tag_element, len(value)) + value


def pad(raw, filler):
    return raw + filler if len(raw) % 2 else raw


def command_set(elements):
    body = b"".join(element(e, v) for e, v in sorted(elements.items()))
    return element(0x0000, struct.pack("<I", len(body))) + body


def parse_command(data):
    out, i = {}, 0
    while i + 8 <= len(data):
        _group, elem, length = struct.unpack_from("<HHI", data, i)
        out[elem] = data[i + 8:i + 8 + length]
        i += 8 + length
    return out


def p_data(pcid, payload, is_command):
    control = 0x02 | (0x01 if is_command else 0x00)  # last fragment
    return pdu(0x04, struct.pack(">IBB", len(payload) + 2, pcid, control) + payload)


class Association:
    def __init__(self, sock, args):
        self.sock = sock
        self.args = args
        self.syntax_of = {}
        self.pending = []  # PDVs read but not consumed: (pcid, control, data)

    def negotiate(self):
        pdu_type, body = read_pdu(self.sock)
        if pdu_type != 0x01:
            raise ConnectionError(f"expected A-ASSOCIATE-RQ, got PDU type {pdu_type}")
        called, calling, contexts = parse_associate_rq(body)
        answers = []
        for pcid, _abstract, syntaxes in contexts:
            wanted = self.args.accept_ts
            chosen = next((s for s in syntaxes if not wanted or s in wanted), None)
            if chosen is None:
                answers.append((pcid, 4, syntaxes[0]))  # transfer syntaxes not supported
            else:
                answers.append((pcid, 0, chosen))
                self.syntax_of[pcid] = chosen
        self.sock.sendall(associate_ac(called, calling, answers))

    def next_pdv(self):
        while not self.pending:
            pdu_type, body = read_pdu(self.sock)
            if pdu_type == 0x05:  # A-RELEASE-RQ
                self.sock.sendall(pdu(0x06, b"\0" * 4))
                raise EOFError("released")
            if pdu_type == 0x07:
                raise EOFError("aborted")
            if pdu_type != 0x04:
                raise ConnectionError(f"unexpected PDU type {pdu_type}")
            i = 0
            while i < len(body):
                (length,) = struct.unpack(">I", body[i:i + 4])
                self.pending.append((body[i + 4], body[i + 5], body[i + 6:i + 4 + length]))
                i += 4 + length
        return self.pending.pop(0)

    def read_message(self, want_command):
        data = bytearray()
        while True:
            pcid, control, fragment = self.next_pdv()
            if bool(control & 0x01) != want_command:
                raise ConnectionError("command/data set fragments out of order")
            data += fragment
            if control & 0x02:
                return pcid, bytes(data)

    def serve(self, statuses):
        self.negotiate()
        while True:
            pcid, raw = self.read_message(want_command=True)
            cmd = parse_command(raw)
            (field,) = struct.unpack("<H", cmd[0x0100])
            (message_id,) = struct.unpack("<H", cmd[0x0110])
            has_data = struct.unpack("<H", cmd[0x0800])[0] != NO_DATASET
            dataset = self.read_message(want_command=False)[1] if has_data else b""
            rsp = {0x0002: cmd[0x0002], 0x0120: struct.pack("<H", message_id),
                   0x0800: struct.pack("<H", NO_DATASET)}
            if field == C_ECHO_RQ:
                status = self.args.echo_status
                rsp[0x0100] = struct.pack("<H", C_ECHO_RSP)
            elif field == C_STORE_RQ:
                sop_uid = uid(cmd[0x1000])
                if self.args.out:
                    out = Path(self.args.out)
                    (out / f"{sop_uid}.dset").write_bytes(dataset)
                    (out / f"{sop_uid}.ts").write_text(self.syntax_of.get(pcid, "?"))
                answered = self.args.answer is None or self.args.stores < self.args.answer
                self.args.stores += 1
                if self.args.answer is not None:
                    word = "answered" if answered else "silent"
                    print(f"{word} {sop_uid}", flush=True)
                if self.args.silent or not answered:
                    continue
                if self.args.delay_ms:
                    time.sleep(self.args.delay_ms / 1000)
                status = next(statuses)
                rsp[0x0100] = struct.pack("<H", C_STORE_RSP)
                rsp[0x1000] = cmd[0x1000]
            else:
                raise ConnectionError(f"unsupported command 0x{field:04X}")
            rsp[0x0900] = struct.pack("<H", status)
            if status != 0 and self.args.comment:
                rsp[0x0902] = pad(self.args.comment.encode("ascii"), b" ")
            self.sock.sendall(p_data(pcid, command_set(rsp), is_command=True))
            if field == C_STORE_RQ and self.args.journal:
                with open(self.args.journal, "a") as journal:
                    journal.write(f"{uid(cmd[0x1000])} {status:04X}\n")


def cycle(values):
    while True:
        yield from values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ae", default="MINISCP")
    parser.add_argument("--status", default="0000")
    parser.add_argument("--comment", default="")
    parser.add_argument("--echo-status", default="0000")
    parser.add_argument("--accept-ts", default="")
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--answer", type=int)
    parser.add_argument("--out")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--journal")
    args = parser.parse_args()
    args.echo_status = int(args.echo_status, 16)
    args.stores = 0
    args.accept_ts = [s for s in args.accept_ts.split(",") if s]
    statuses = cycle([int(s, 16) for s in args.status.split(",")])

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(4)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            try:
                Association(conn, args).serve(statuses)
            except (EOFError, ConnectionError, OSError) as e:
                print(f"association ended: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
