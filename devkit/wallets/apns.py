"""A local fake of APNs: HTTP/2 over TLS (ALPN h2), certificate or token auth, with faults.

asyncio and the `h2` state machine in a daemon thread: every stream of a connection is
answered on its own after `latency_seconds`, so concurrent pushes multiplex like on
Apple's servers. It checks what APNs checks: POST /3/device/<hex token>; either a TLS
client certificate issued under the trusted CA (a pass type ID certificate: its UID is
the topic it may push to; the `authorization` header is then ignored) or an ES256
provider token signed by the team's key (`kid`, `iss`, not older than an hour);
`apns-topic` (required) equal to the pass type identifier; a valid `apns-push-type`,
and priority 5 with `background` ("Using priority 10 is an error"). Unregistered
devices answer 410, tokens of another topic 400 DeviceTokenNotForTopic. It can refuse
the certificate, or token auth for the pass topic (as APNs does in some team set-ups).
"""

import asyncio
import base64
import json
import random
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from google.auth.crypt import es256

_DEVICE = re.compile(r"/3/device/(?P<token>[0-9a-fA-F]{8,200})")
_PUSH_TYPES = {
    "alert",
    "background",
    "complication",
    "controls",
    "fileprovider",
    "liveactivity",
    "location",
    "mdm",
    "pushtotalk",
    "voip",
    "widgets",
}


@dataclass(kw_only=True)
class ApnsFaults:
    latency_seconds: float = 0.0
    #: Share of pushes answered 503 ServiceUnavailable (random, seeded).
    failure_rate: float = 0.0
    #: Device tokens answered 410 Unregistered (the app was removed, the pass deleted).
    unregistered: set[str] = field(default_factory=set)
    #: Device tokens answered 400 BadDeviceToken (e.g. a development device's token).
    bad_tokens: set[str] = field(default_factory=set)
    #: Device tokens of another topic (another app's or pass type's token registered for
    #: our pass), answered 400 DeviceTokenNotForTopic: "The device token does not match the
    #: specified topic".
    other_topic_tokens: set[str] = field(default_factory=set)
    #: Every provider token refused (403 InvalidProviderToken): a revoked key.
    refuse_provider_token: bool = False
    #: Token auth refused for the pass topic (400 TopicDisallowed), certificates accepted.
    refuse_token_for_pass_topic: bool = False
    #: Every client certificate refused (403 BadCertificate): a revoked certificate.
    refuse_certificate: bool = False
    #: Provider tokens issued (`iat`) before this Unix time answered 403
    #: ExpiredProviderToken: APNs' clock ahead of ours, or a token it has retired.
    expire_tokens_issued_before: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Push:
    device_token: str
    topic: str
    payload: bytes
    status: int
    reason: str
    #: "certificate" (a client certificate was presented) or "token".
    auth: str = ""
    push_type: str = ""
    priority: str = ""
    #: When it was answered (time.time(): a frozen clock in tests, for lag measurements).
    at: float = 0.0


class FakeApns:
    """`with FakeApns(...) as apns:` gives `apns.base_url` (https://127.0.0.1:port), `apns.pushes`."""

    def __init__(
        self,
        *,
        topic: str,
        team_id: str,
        key_id: str,
        public_key_pem: str,
        cert_file: Path,
        key_file: Path,
        client_ca_files: tuple[Path, ...] = (),
        faults: ApnsFaults | None = None,
    ) -> None:
        self.topic, self.team_id, self.key_id = topic, team_id, key_id
        self.faults = faults or ApnsFaults()
        self.pushes: list[Push] = []
        self._verifier = es256.ES256Verifier.from_string(public_key_pem)
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)
        self._tls.set_alpn_protocols(["h2"])
        if client_ca_files:  # a client certificate is verified when one is presented
            # TLS 1.2: an untrusted certificate is refused inside the handshake, with an
            # alert the client reads (under 1.3 it may only see the connection close).
            self._tls.maximum_version = ssl.TLSVersion.TLSv1_2
            self._tls.verify_mode = ssl.CERT_OPTIONAL
            for ca_file in client_ca_files:
                self._tls.load_verify_locations(cafile=ca_file)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "FakeApns":
        threading.Thread(target=self._run, name="fake-apns", daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("fake APNs did not start")
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):  # the connection loops end on EOF
                writer.transport.abort()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> "FakeApns":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pushes_to(self, device_token: str) -> list[Push]:
        with self._lock:
            return [p for p in self.pushes if p.device_token == device_token]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        cert_topic = _certificate_topic(writer)
        self._writers.add(writer)
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        tasks: set[asyncio.Task] = set()
        try:
            while data := await reader.read(65535):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (dict(event.headers), bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        task = asyncio.create_task(
                            self._respond(
                                conn, writer, event.stream_id, headers, bytes(body), cert_topic
                            )
                        )
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(
        self,
        conn: h2.connection.H2Connection,
        writer,
        stream_id: int,
        headers: dict,
        body: bytes,
        cert_topic: str | None,
    ) -> None:
        await asyncio.sleep(self.faults.latency_seconds)
        status, reason, device = self._decide(headers, cert_topic)
        push = Push(
            device,
            headers.get("apns-topic", ""),
            body,
            status,
            reason,
            auth="token" if cert_topic is None else "certificate",
            push_type=headers.get("apns-push-type", ""),
            priority=headers.get("apns-priority", ""),
            at=time.time(),
        )
        with self._lock:
            self.pushes.append(push)
        response = [(":status", str(status)), ("apns-id", str(uuid.uuid4()).upper())]
        try:
            if status == 200:
                conn.send_headers(stream_id, response, end_stream=True)
            else:
                payload = {"reason": reason}
                if status == 410:
                    payload["timestamp"] = int(time.time() * 1000)
                data = json.dumps(payload).encode()
                conn.send_headers(stream_id, [*response, ("content-type", "application/json")])
                conn.send_data(stream_id, data, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass  # the client went away

    def _decide(self, headers: dict[str, str], cert_topic: str | None) -> tuple[int, str, str]:
        """(status, reason, device token) as APNs would answer this request; `cert_topic` is
        the UID of the client certificate of the connection (None: no certificate)."""
        match = _DEVICE.fullmatch(headers.get(":path", ""))
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed", ""
        if match is None:
            return 404, "BadPath", ""
        device = match["token"]
        topic = headers.get("apns-topic", "")
        if cert_topic is not None:  # certificate auth: the authorization header is ignored
            if self.faults.refuse_certificate:
                return 403, "BadCertificate", device
            if topic and topic != cert_topic:
                return 400, "TopicDisallowed", device
        else:
            problem = self._provider_token_problem(headers.get("authorization", ""))
            if problem:
                return 403, problem, device
            if self.faults.refuse_token_for_pass_topic and topic == self.topic:
                return 400, "TopicDisallowed", device
        if not topic:
            return 400, "MissingTopic", device
        if topic != self.topic:
            return 400, "TopicDisallowed", device
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in _PUSH_TYPES:
            return 400, "InvalidPushType", device
        if push_type == "background" and headers.get("apns-priority", "10") != "5":
            return 400, "BadPriority", device
        if set(device) == {"0"} or device in self.faults.bad_tokens:
            return 400, "BadDeviceToken", device
        if device in self.faults.other_topic_tokens:
            return 400, "DeviceTokenNotForTopic", device
        if device in self.faults.unregistered:
            return 410, "Unregistered", device
        with self._lock:
            roll = self._random.random()
        if roll < self.faults.failure_rate:
            return 503, "ServiceUnavailable", device
        return 200, "", device

    def _provider_token_problem(self, authorization: str) -> str:
        if not authorization.startswith("bearer "):
            return "MissingProviderToken"
        if self.faults.refuse_provider_token:
            return "InvalidProviderToken"
        try:
            header_b64, payload_b64, signature_b64 = authorization[7:].split(".")
            header = json.loads(_unb64(header_b64))
            payload = json.loads(_unb64(payload_b64))
            signature = _unb64(signature_b64)
        except ValueError:
            return "InvalidProviderToken"
        signed = f"{header_b64}.{payload_b64}".encode()
        if (
            header.get("alg") != "ES256"
            or header.get("kid") != self.key_id
            or payload.get("iss") != self.team_id
            or not self._verifier.verify(signed, signature)
        ):
            return "InvalidProviderToken"
        issued = float(payload.get("iat", 0))
        if time.time() - issued > 3600 or issued < self.faults.expire_tokens_issued_before:
            return "ExpiredProviderToken"
        return ""


def _certificate_topic(writer: asyncio.StreamWriter) -> str | None:
    """The UID (pass type identifier) of the verified client certificate, None without one."""
    ssl_object = writer.get_extra_info("ssl_object")
    peer = ssl_object.getpeercert() if ssl_object is not None else None
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for name, value in rdn:
            if name == "userId":
                return str(value)
    return ""


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
