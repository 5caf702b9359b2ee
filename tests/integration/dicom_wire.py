"""Raw DICOM upper-layer SCU pieces for tests that must send what no real SCU sends: an
association that then says nothing, truncated PDUs, data sets that do not match their command.
Built on mini_scp.py's PDU/item/command helpers (no DCMTK involved)."""

import socket
import struct

from mini_scp import (APP_CONTEXT, IMPLEMENTATION_UID, C_ECHO_RQ, C_STORE_RQ, command_set,
                      items, p_data, pdu, item, read_pdu)

LOOPBACK = "127.0.0.1"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def ae_field(title):
    return title.encode("ascii").ljust(16, b" ")


def associate_rq(called, calling, contexts, max_pdu=16384):
    """contexts: [(pcid, abstract syntax, [transfer syntaxes])]."""
    body = struct.pack(">HH", 1, 0) + ae_field(called) + ae_field(calling) + b"\0" * 32
    body += item(0x10, APP_CONTEXT)
    for pcid, abstract, syntaxes in contexts:
        sub = item(0x30, abstract.encode("ascii"))
        for ts in syntaxes:
            sub += item(0x40, ts.encode("ascii"))
        body += item(0x20, bytes([pcid, 0, 0, 0]) + sub)
    body += item(0x50, item(0x51, struct.pack(">I", max_pdu)) + item(0x52, IMPLEMENTATION_UID))
    return pdu(0x01, body)


def uid_value(uid):
    raw = uid.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def store_command(sop_class, sop_uid, message_id=1):
    return {0x0002: uid_value(sop_class), 0x0100: struct.pack("<H", C_STORE_RQ),
            0x0110: struct.pack("<H", message_id), 0x0700: struct.pack("<H", 0),
            0x0800: struct.pack("<H", 0x0000), 0x1000: uid_value(sop_uid)}


class RawAssociation:
    """One association opened over a plain socket. accepted: {pcid: transfer syntax}."""

    def __init__(self, port, called, calling="RAWSCU", contexts=None, timeout=10):
        contexts = contexts or [(1, VERIFICATION, [IMPLICIT_LE])]
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.sock.sendall(associate_rq(called, calling, contexts))
        pdu_type, body = read_pdu(self.sock)
        self.pdu_type = pdu_type  # 2 accepted, 3 rejected
        self.accepted = {}
        if pdu_type == 0x02:
            for item_type, value in items(body[68:]):
                if item_type == 0x21 and value[2] == 0:
                    for sub_type, sub in items(value[4:]):
                        if sub_type == 0x40:
                            self.accepted[value[0]] = sub.rstrip(b"\0 ").decode("ascii")

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_response(self):
        """The next command set as {element: bytes} (group 0000 only)."""
        data = bytearray()
        while True:
            pdu_type, body = read_pdu(self.sock)
            if pdu_type != 0x04:
                raise ConnectionError(f"PDU type {pdu_type} instead of P-DATA")
            i = 0
            last = False
            while i < len(body):
                (length,) = struct.unpack(">I", body[i:i + 4])
                control = body[i + 5]
                data += body[i + 6:i + 4 + length]
                last = last or bool(control & 0x02)
                i += 4 + length
            if last:
                break
        out, i = {}, 0
        while i + 8 <= len(data):
            _g, elem, length = struct.unpack_from("<HHI", data, i)
            out[elem] = bytes(data[i + 8:i + 8 + length])
            i += 8 + length
        return out

    def echo(self, pcid=1, message_id=1):
        cmd = command_set({0x0002: b"1.2.840.10008.1.1\0", 0x0100: struct.pack("<H", C_ECHO_RQ),
                           0x0110: struct.pack("<H", message_id),
                           0x0800: struct.pack("<H", 0x0101)})
        self.sock.sendall(p_data(pcid, cmd, is_command=True))
        rsp = self.read_response()
        return struct.unpack("<H", rsp[0x0900])[0]

    def send_command(self, pcid, elements):
        self.sock.sendall(p_data(pcid, command_set(elements), is_command=True))

    def send_dataset(self, pcid, data, fragment=8192):
        """The data set in P-DATA PDUs of at most `fragment` bytes, the last one flagged."""
        for i in range(0, max(len(data), 1), fragment):
            chunk = data[i:i + fragment]
            last = i + fragment >= len(data)
            control = 0x02 if last else 0x00
            self.sock.sendall(pdu(0x04, struct.pack(">IBB", len(chunk) + 2, pcid, control)
                                  + chunk))

    def store(self, pcid, sop_class, sop_uid, data, message_id=1):
        """One C-STORE; returns (status, Error Comment or "")."""
        self.send_command(pcid, store_command(sop_class, sop_uid, message_id))
        self.send_dataset(pcid, data)
        return self.status_of(self.read_response())

    @staticmethod
    def status_of(rsp):
        status = struct.unpack("<H", rsp[0x0900])[0]
        comment = rsp.get(0x0902, b"").rstrip(b"\0 ").decode("ascii", "replace")
        return status, comment

    def release(self):
        self.sock.sendall(pdu(0x05, b"\0" * 4))
        try:
            read_pdu(self.sock)
        finally:
            self.sock.close()

    def close(self):
        self.sock.close()


__all__ = ["RawAssociation", "associate_rq", "C_STORE_RQ", "command_set", "p_data", "pdu"]
