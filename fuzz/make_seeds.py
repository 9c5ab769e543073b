#!/usr/bin/env python3
"""Write the structured seeds of corpus/ (queue, transport and DHCP frames) that cannot be
cut from a real run's files. Run from fuzz/: python3 make_seeds.py"""
import struct

def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)

def ring_memory(chains_rx):
    """Descriptor table at 0, avail ring at 0x100, used ring at 0x200 (queue size 16)."""
    mem = bytearray(0x300)
    d = b""
    if chains_rx:
        d += desc(0x1000, 0x600, 2 | 1, 1) + desc(0x2000, 0x600, 2, 0)  # writable, 2 buffers
    else:
        d += desc(0x1000, 0x40, 1, 1) + desc(0x2000, 0x40, 0, 0)
    mem[0:len(d)] = d
    mem[0x100:0x106] = struct.pack("<HHH", 0, 1, 0)  # flags, idx=1, ring[0]=head 0
    return bytes(mem)

def queue_seed(rx, crate_flags=0):
    cfg = bytes([4])  # size 1 << 4
    addr = lambda a: bytes([2]) + struct.pack("<H", a)
    cfg += addr(0) + addr(0x100) + addr(0x200) + bytes([crate_flags])
    ops = bytes([0 if rx else 1]) + bytes([2, 0]) + struct.pack("<HI", 0, 64) + bytes([4, 6])
    return cfg + bytes([4]) + ops + ring_memory(rx)

for name, rx in (("rx_chain", True), ("tx_chain", False)):
    open(f"corpus/queue_split/{name}", "wb").write(queue_seed(rx))
    open(f"corpus/queue_crate/{name}", "wb").write(queue_seed(rx, 2))

# mmio: the driver's bring-up as Linux does it, then a notify and an interrupt ack.
REG = dict(STATUS=0x70, DFSEL=0x24, DF=0x20, QSEL=0x30, QNUM=0x38, QDESC=0x80, QDRV=0x90,
           QDEV=0xa0, QREADY=0x44, NOTIFY=0x50, ACK=0x64, ISR=0x60, DEVF=0x10)
def w(reg, value):  # 4-byte write at an aligned register: kind 0x05 (write, len 4)
    return bytes([0x05, REG[reg] // 4]) + struct.pack("<Q", value)
def r(reg):
    return bytes([0x04, REG[reg] // 4]) + struct.pack("<Q", 0)
ops = [r("DEVF"), w("STATUS", 1), w("STATUS", 3), w("DFSEL", 1), w("DF", 1), w("DFSEL", 0),
       w("DF", 1 << 5), w("STATUS", 11)]
for q, base in ((0, 0), (1, 0x300)):
    ops += [w("QSEL", q), w("QNUM", 16), w("QDESC", base), w("QDRV", base + 0x100),
            w("QDEV", base + 0x200), w("QREADY", 1)]
ops += [w("STATUS", 15), w("NOTIFY", 1), w("NOTIFY", 0), r("ISR"), w("ACK", 1), w("STATUS", 0)]
for model in range(4):
    seed = bytes([model, len(ops)]) + b"".join(ops) + ring_memory(True) + ring_memory(False)
    open(f"corpus/mmio_registers/bringup_{model}", "wb").write(seed)

# DHCP: an OFFER and an ACK from 198.18.0.1 to the probe's MAC, 100 s apart.
def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def dhcp_frame(msg_type, xid=0x12345678):
    mac = bytes.fromhex("525400123456")
    server, yiaddr = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 10])
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, xid, 0, 0, b"\0" * 4,
                        yiaddr, server, b"\0" * 4, mac + b"\0" * 10, b"", b"")
    opts = b"\x63\x82\x53\x63" + bytes([53, 1, msg_type, 54, 4]) + server
    opts += bytes([51, 4]) + struct.pack("!I", 3600) + bytes([1, 4, 255, 255, 255, 0])
    opts += bytes([3, 4]) + server + bytes([58, 4]) + struct.pack("!I", 1800)
    opts += bytes([59, 4]) + struct.pack("!I", 3150) + bytes([255])
    udp_payload = bootp + opts
    udp = struct.pack("!HHHH", 67, 68, 8 + len(udp_payload), 0) + udp_payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, server,
                     bytes([255] * 4))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\xff" * 6 + bytes.fromhex("02000000aa01") + b"\x08\x00"
    return eth + ip + udp

seed = b""
for step_s, kind in ((1, 2), (1, 5), (1900, 5), (4000, 6)):  # OFFER, ACK, renew ACK, NAK
    frame = dhcp_frame(kind)
    seed += struct.pack("<HH", step_s, len(frame)) + frame
open("corpus/probe_dhcp/offer_ack_renew_nak", "wb").write(seed)
