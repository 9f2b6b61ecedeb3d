"""A double of a Curio PDP storage provider (no Curio can run here). It follows Curio's published PDP
handlers (pdp/handlers_upload.go and the data-set handlers): the same paths, status codes, JSON fields
and Location headers, and the same check of uploaded bytes (size, then commP recomputed and compared with
the PieceCID announced in POST /pdp/piece). Data-set calls are answered as Curio answers them after its
transaction confirms, and keep the decoded `extraData` so that tests can check the EIP-712 signature
the contract would check. Runs on 127.0.0.1 on a free port, in a thread.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid

from eth_abi import decode as abi_decode
from httpfaults import QuietHandler, serve

from deai_data.storage.filecoin.commp import Piece, piece_of

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class PdpDouble:
    def __init__(self) -> None:
        self.uploads: dict[str, dict] = {}  # uuid -> {"piece": Piece, "done": bool}
        self.pieces: dict[str, bytes] = {}  # PieceCID v2 -> bytes
        self.data_sets: dict[int, dict] = {}
        self.transactions: dict[str, dict] = {}
        self.corrupt_downloads = False
        self.lock = threading.Lock()
        double = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                double.handle_get(self)

            def do_POST(self) -> None:
                double.handle_post(self)

            def do_PUT(self) -> None:
                double.handle_put(self)

        self.server, self.url = serve(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- handlers (Curio's behaviour) -----------------------------------------------------------------
    def handle_post(self, h) -> None:
        path = h.path
        try:
            doc = json.loads(h.body() or b"{}")
        except ValueError:
            return h.reply(400, "Invalid request body")
        if path == "/pdp/piece":
            try:
                piece = Piece.from_cid(doc.get("pieceCid", ""))
            except ValueError as exc:
                return h.reply(400, f"Invalid request body: invalid pieceCid: {exc}")
            cid = str(piece.cid)
            with self.lock:
                if cid in self.pieces:
                    return h.reply(200, {"pieceCid": cid})
                upload = str(uuid.uuid4())
                self.uploads[upload] = {"piece": piece, "done": False}
            return h.reply(201, headers={"Location": f"/pdp/piece/upload/{upload}"})
        if path == "/pdp/data-sets":
            _, payer, _, signature = abi_decode(["string", "address", "bool", "bytes"],
                                                bytes.fromhex(doc["extraData"].removeprefix("0x")))
            tx = "0x" + os.urandom(32).hex()
            with self.lock:
                set_id = len(self.data_sets) + 1
                self.data_sets[set_id] = {"payer": payer, "recordKeeper": doc["recordKeeper"], "pieces": [],
                                          "signature": signature}
                self.transactions[tx] = {"createMessageHash": tx, "dataSetCreated": True, "service": "double",
                                         "txStatus": "confirmed", "ok": True, "dataSetId": set_id}
            return h.reply(201, headers={"Location": f"/pdp/data-sets/created/{tx}"})
        match = re.fullmatch(r"/pdp/data-sets/(\d+)/pieces", path)
        if match:
            set_id = int(match.group(1))
            with self.lock:
                if set_id not in self.data_sets:
                    return h.reply(404, "Data set not found")
                cids = [p["pieceCid"] for p in doc.get("pieces", [])]
                missing = [c for c in cids if c not in self.pieces]
                if missing:
                    return h.reply(400, f"subPiece CID {missing[0]} not found or does not belong to service")
                first = len(self.data_sets[set_id]["pieces"])
                self.data_sets[set_id]["pieces"] += cids
                self.data_sets[set_id]["last_extra"] = doc["extraData"]
                tx = "0x" + os.urandom(32).hex()
                self.transactions[tx] = {"txHash": tx, "txStatus": "confirmed", "dataSetId": set_id,
                                         "pieceCount": len(cids), "addMessageOk": True,
                                         "confirmedPieceIds": list(range(first, first + len(cids)))}
            return h.reply(201, headers={"Location": f"/pdp/data-sets/{set_id}/pieces/added/{tx}"})
        h.reply(404, "404 page not found")

    def handle_put(self, h) -> None:
        match = re.fullmatch(r"/pdp/piece/upload/([0-9a-f-]+)", h.path)
        if not match:
            return h.reply(404, "404 page not found")
        data = h.body()
        with self.lock:
            upload = self.uploads.get(match.group(1))
            if upload is None:
                return h.reply(404, "Upload UUID not found")
            if upload["done"]:
                return h.reply(409, "Data has already been uploaded")
        expected: Piece = upload["piece"]
        if len(data) != expected.payload_size:
            return h.reply(400, "Piece size does not match the expected size")
        if piece_of(data, workers=1).root != expected.root:
            return h.reply(400, "Computed hash does not match expected hash")
        with self.lock:
            upload["done"] = True
            self.pieces[str(expected.cid)] = data
        h.reply(204)

    def handle_get(self, h) -> None:
        if h.path == "/pdp/ping":
            return h.reply(200)
        if h.path.startswith("/pdp/piece?pieceCid="):
            cid = h.path.split("=", 1)[1]
            try:
                cid = str(Piece.from_cid(cid).cid)
            except ValueError as exc:
                return h.reply(400, f"Failed to parse CID: {exc}")
            return h.reply(200, {"pieceCid": cid}) if cid in self.pieces else h.reply(404, "404 page not found")
        if h.path.startswith("/piece/"):
            data = self.pieces.get(h.path.removeprefix("/piece/"))
            if data is None:
                return h.reply(404, "piece not found")
            if self.corrupt_downloads:
                data = bytes([data[0] ^ 1]) + data[1:]
            match = _RANGE.match(h.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) + 1 if match.group(2) else len(data)
                return h.reply(206, data[start:end], {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"})
            return h.reply(200, data)
        match = re.fullmatch(r"/pdp/data-sets/(?:created|\d+/pieces/added)/(0x[0-9a-f]+)", h.path)
        if match and match.group(1) in self.transactions:
            return h.reply(200, self.transactions[match.group(1)])
        h.reply(404, "404 page not found")

