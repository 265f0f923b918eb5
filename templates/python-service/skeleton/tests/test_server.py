"""Starts the server on a free local port and calls its endpoints (`python -m unittest`)."""

import json
import threading
import unittest
import urllib.error
import urllib.request

from app import SERVICE_NAME
from app.server import make_server


class ServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = make_server("127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def test_root_names_the_service(self) -> None:
        self.assertEqual(self.get("/"), (200, {"service": SERVICE_NAME,
                                               "message": f"Hello from {SERVICE_NAME}"}))

    def test_healthz_is_ok(self) -> None:
        self.assertEqual(self.get("/healthz"), (200, {"status": "ok"}))

    def test_unknown_path_is_404(self) -> None:
        self.assertEqual(self.get("/nope")[0], 404)


if __name__ == "__main__":
    unittest.main()
