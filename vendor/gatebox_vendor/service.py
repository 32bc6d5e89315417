"""The license service: POST /api/v1/activate {"code", "serial"} -> {"key"}."""

from __future__ import annotations

import threading

from flask import Flask, jsonify, request

from .codes import CodeError, CodeStore
from .signing import issue


def create_app(db_path, private_key) -> Flask:
    app = Flask("gatebox_vendor.service")
    store = CodeStore(db_path)
    lock = threading.Lock()

    @app.post("/api/v1/activate")
    def activate():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("code"), str) \
                or not isinstance(body.get("serial"), str):
            return jsonify(error="send JSON with the fields 'code' and 'serial'"), 400
        try:
            with lock:
                key = store.redeem(body["code"], body["serial"],
                                   lambda serial, grants: issue(private_key, serial, grants))
        except CodeError as error:
            return jsonify(error=str(error)), error.status
        return jsonify(key=key)

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    return app
