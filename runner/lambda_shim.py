"""A tiny stand-in for the Lambda Invoke API on loopback, answering in-process with our own handlers.

moto's Step Functions interpreter runs Lambda Task states by calling Lambda's Invoke API at
`http://localhost:$MOTO_PORT` (read at call time). moto cannot run Lambda code without Docker, so the local runner
and the tests start this shim and point MOTO_PORT at it: each `POST /2015-03-31/functions/{name}/invocations`
(RequestResponse) calls the handler registered under that function name, in this process.

Errors are reported exactly as Lambda reports an unhandled exception — HTTP 200, header
`X-Amz-Function-Error: Unhandled`, body `{"errorType", "errorMessage", "stackTrace"}` — so the ASL's Retry and
Catch match on the exception's class name just as they do in AWS.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from chalicelib import bounded_json

Handler = Callable[[Any, Any], Any]
logger = logging.getLogger("lisa.lambda_shim")

_PATH_PREFIX = "/2015-03-31/functions/"
_PATH_SUFFIX = "/invocations"


class LambdaContext:
    """The parts of Lambda's context object handlers (and powertools) read."""

    def __init__(self, function_name: str, request_id: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 10240
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        """Always 15 minutes left: local runs have no Lambda timeout."""
        return 900_000


def function_name_of(path_name: str) -> str:
    """The bare function name from the path's FunctionName: a name, `name:qualifier`, or a (partial) ARN."""
    name = unquote(path_name)
    if name.startswith("arn:"):
        parts = name.split(":")
        # arn:aws:lambda:region:account:function:name[:qualifier]
        return parts[6] if len(parts) > 6 else parts[-1]
    return name.split(":")[0]


def invoke(handlers: Mapping[str, Handler], function_name: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Run one invocation as Lambda would: (HTTP status, headers, body)."""
    handler = handlers.get(function_name)
    request_id = str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id}
    if handler is None:
        body: dict[str, object] = {"Type": "User", "message": f"Function not found: {function_name}"}
        headers["x-amzn-ErrorType"] = "ResourceNotFoundException"
        return 404, headers, json.dumps(body).encode()
    try:
        event = bounded_json.loads(payload or b"{}")
    except ValueError as error:
        headers["x-amzn-ErrorType"] = "InvalidRequestContentException"
        return 400, headers, json.dumps({"Type": "User", "message": f"Could not parse request body: {error}"}).encode()
    headers["X-Amz-Executed-Version"] = "$LATEST"
    try:
        result = handler(event, LambdaContext(function_name, request_id))
        return 200, headers, json.dumps(result).encode()
    except Exception as error:  # every handler failure is reported to the caller, as Lambda does
        logger.info("%s failed: %s: %s", function_name, type(error).__name__, error)
        headers["X-Amz-Function-Error"] = "Unhandled"
        body = {
            "errorType": type(error).__name__,
            "errorMessage": str(error),
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
        return 200, headers, json.dumps(body).encode()


class LambdaShim:
    """`LambdaShim(handlers).start()` serves Invoke on 127.0.0.1:`port` (0: any free port); `stop()` ends it."""

    def __init__(self, handlers: Mapping[str, Handler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.handlers = dict(handlers)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._idle = threading.Condition()

    @property
    def port(self) -> int:
        """The bound port (chosen by the OS at start)."""
        if self._server is None:
            raise RuntimeError("the Lambda shim is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give moto as its Lambda endpoint."""
        return f"http://{self._host}:{self.port}"

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no invocation is running (e.g. Map iterations still finishing after the execution failed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)

    def start(self) -> LambdaShim:
        """Serve the Lambda Invoke API on loopback in a daemon thread; returns self."""
        handlers, shim = self.handlers, self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if not (path.startswith(_PATH_PREFIX) and path.endswith(_PATH_SUFFIX)):
                    self._answer(404, {"Content-Type": "application/json"}, b'{"message": "not a Lambda Invoke path"}')
                    return
                if (self.headers.get("X-Amz-Invocation-Type") or "RequestResponse") != "RequestResponse":
                    body = b'{"Type": "User", "message": "the local Lambda shim only serves RequestResponse"}'
                    self._answer(400, {"Content-Type": "application/json"}, body)
                    return
                name = function_name_of(path[len(_PATH_PREFIX) : -len(_PATH_SUFFIX)])
                with shim._idle:
                    shim._busy += 1
                try:
                    answer = invoke(handlers, name, payload)
                finally:
                    with shim._idle:
                        shim._busy -= 1
                        shim._idle.notify_all()
                self._answer(*answer)

            def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug(format, *args)

        self._server = ThreadingHTTPServer((self._host, self._port), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lisa-lambda-shim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
