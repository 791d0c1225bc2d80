"""Test helper: send a file to the contacts service the way the gateway does (base64 chunks over
RPC), then import it."""
import base64
import uuid

CHUNK = 1024 * 1024


def new_org():
    return {"org_id": str(uuid.uuid4()), "user_id": None, "role": "owner"}


def upload(rpc, ctx, data, filename="contacts.csv", chunk=CHUNK):
    first = rpc.contacts.begin_upload(ctx, {"filename": filename,
                                            "chunk": base64.b64encode(data[:chunk]).decode()})
    seq = 1
    for start in range(chunk, len(data), chunk):
        rpc.contacts.append_upload(ctx, first["upload_id"], seq,
                                   base64.b64encode(data[start:start + chunk]).decode())
        seq += 1
    return first


def import_file(rpc, ctx, data, mapping, filename="contacts.csv", **extra):
    up = upload(rpc, ctx, data, filename)
    return rpc.contacts.import_contacts(ctx, dict({"upload_id": up["upload_id"], "mapping": mapping}, **extra))
