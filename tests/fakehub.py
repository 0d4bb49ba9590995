"""A small in-memory stand-in for the Hugging Face Hub HTTP API, for tests (standard library only).

It implements just what `push_to_hub` (create repo, preupload, commit with inline files) and `from_pretrained(repo_id)`
(resolve, repo info, tree listing) use with huggingface_hub 2.x, answering errors with the Hub's `X-Error-Code`
headers so that the client raises its usual exceptions. LFS and Xet uploads are refused: preupload answers "regular"
for every file, so the client sends contents inline as base64.

Usage: `python fakehub.py [PORT] [IDLE_TIMEOUT_S]`. It binds 127.0.0.1 only; `PORT` 0 (the default) picks a free port.
The chosen port is the first line on stdout. The server exits by itself after `IDLE_TIMEOUT_S` seconds (default 120)
without a request, or as soon as the process that started it is gone, so a crashed test leaves no server behind.
"""

import base64
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


USER = "user"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_REPO = r"(?P<repo_id>[\w.-]+/[\w.-]+)"
_API = rf"^/api/(?P<kind>models|datasets|spaces)/{_REPO}"
# (method, pattern, handler name); the first match wins.
ROUTES = [
    ("GET", r"^/api/whoami-v2$", "whoami"),
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("GET", rf"{_API}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$", "tree"),
    ("POST", rf"{_API}/preupload/(?P<rev>[^/]+)$", "preupload"),
    ("POST", rf"{_API}/commit/(?P<rev>[^/]+)$", "commit"),
    ("GET", rf"{_API}(?:/revision/(?P<rev>[^/]+))?$", "repo_info"),
    ("GET", rf"^(?:/(?P<kind>datasets|spaces))?/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ("HEAD", rf"^(?:/(?P<kind>datasets|spaces))?/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
]


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file, which is what the Hub reports as a regular file's `oid` and `ETag`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubError(Exception):
    """An HTTP error answered with the Hub's `X-Error-Code` header (which huggingface_hub maps to its exceptions)."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        body: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **(body or {})}
        self.headers = {"X-Error-Message": message, **(headers or {})}
        if error_code is not None:
            self.headers["X-Error-Code"] = error_code


class Repo:
    """One repository: its files at the head of `main` and the commit sha of that head."""

    def __init__(self, repo_type: str, repo_id: str):
        self.repo_type = repo_type
        self.repo_id = repo_id
        self.files: dict[str, bytes] = {}
        self.sha = hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()
        self.last_modified = datetime.now(timezone.utc)

    def check_revision(self, revision: str):
        # No branches or history: only `main` and the current commit sha exist.
        if revision not in ("main", self.sha):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port), RequestHandler)
        self.repos: dict[tuple[str, str], Repo] = {}
        # One lock for every repo: requests are tiny, and commits must never interleave with reads.
        self.lock = threading.Lock()
        self.last_request = time.monotonic()

    def get_repo(self, kind: str | None, repo_id: str) -> Repo:
        repo = self.repos.get((REPO_TYPES[kind or "models"], repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo


class RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the client's connections alive; every response therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def log_message(self, format, *args):
        # Quiet: the test reads the client's errors, not an access log.
        pass

    def dispatch(self, method: str):
        self.server.last_request = time.monotonic()
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        try:
            body = self.read_body()
            for route_method, pattern, handler in ROUTES:
                match = re.match(pattern, url.path) if route_method == method else None
                if match is not None:
                    params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                    with self.server.lock:
                        getattr(self, handler)(body=body, **params)
                    return
            raise HubError(404, f"No route for {method} {url.path}")
        except HubError as error:
            self.send_json(error.body, status=error.status, headers=error.headers)
        except (KeyError, TypeError, ValueError) as error:
            # Malformed JSON, base64 or payload fields: a client bug, reported instead of dropping the connection.
            message = f"Bad request: {type(error).__name__}: {error}"
            self.send_json({"error": message}, status=400, headers={"X-Error-Message": message})

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            # The unread body would be parsed as the next request: answer, then drop the connection.
            self.close_connection = True
            raise HubError(411, "Chunked request bodies are not supported; send a Content-Length")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_bytes(self, content: bytes, status: int = 200, headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def send_json(self, data, status: int = 200, headers: dict | None = None):
        self.send_bytes(json.dumps(data).encode(), status, {"Content-Type": "application/json", **(headers or {})})

    def repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"http://{self.headers.get('Host')}/{prefix}{repo.repo_id}"

    # Endpoints (each takes the request body and the named groups of its route).

    def whoami(self, body: bytes):
        self.send_json(
            {
                "type": "user",
                "name": USER,
                "fullname": "Fake Hub User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "fakehub", "role": "write"}},
            }
        )

    def validate_yaml(self, body: bytes):
        self.send_json({"errors": [], "warnings": []})

    def create_repo(self, body: bytes):
        payload = json.loads(body or b"{}")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES.values() or not payload.get("name"):
            raise HubError(400, f"Invalid repo creation request: {payload}")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        key = (repo_type, repo_id)
        if key in self.server.repos:
            # huggingface_hub reads `url` from the 409 answer even with `exist_ok=True`.
            existing = self.server.repos[key]
            raise HubError(409, "You already created this repo", body={"url": self.repo_url(existing)})
        repo = self.server.repos[key] = Repo(repo_type, repo_id)
        self.send_json({"url": self.repo_url(repo), "name": repo_id, "id": repo.sha})

    def repo_info(self, body: bytes, kind: str, repo_id: str, rev: str = "main"):
        repo = self.server.get_repo(kind, repo_id)
        repo.check_revision(rev)
        info = {
            "id": repo.repo_id,
            "sha": repo.sha,
            "private": False,
            "tags": [],
            "lastModified": repo.last_modified.isoformat().replace("+00:00", "Z"),
            "siblings": [{"rfilename": path} for path in sorted(repo.files)],
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        self.send_json(info)

    def tree(self, body: bytes, kind: str, repo_id: str, rev: str, path: str = ""):
        repo = self.server.get_repo(kind, repo_id)
        repo.check_revision(rev)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        below = {name: content for name, content in repo.files.items() if name.startswith(prefix)}
        if prefix and not below:
            raise HubError(404, f"Path {path} not found in {repo.repo_id}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries, folders = [], set()
        for name, content in below.items():
            parts = name[len(prefix) :].split("/")
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "path": name, "size": len(content), "oid": git_blob_oid(content)})
            # The folders between `prefix` and the file; only the first one when not recursive.
            depths = range(1, len(parts)) if recursive else range(1, min(len(parts), 2))
            folders.update(prefix + "/".join(parts[:depth]) for depth in depths)
        directory_oid = hashlib.sha1(repo.sha.encode()).hexdigest()
        entries += [{"type": "directory", "path": folder, "size": 0, "oid": directory_oid} for folder in folders]
        self.send_json(sorted(entries, key=lambda entry: entry["path"]))

    def resolve(self, body: bytes, repo_id: str, rev: str, path: str, kind: str | None = None):
        repo = self.server.get_repo(kind, repo_id)
        repo.check_revision(rev)
        content = repo.files.get(path)
        if content is None:
            # 404 + EntryNotFound (not 401): transformers treats it as "optional file absent", never as an auth error.
            # X-Repo-Commit lets the client cache the absence for this commit.
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": repo.sha})
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{git_blob_oid(content)}"',
        }
        self.send_bytes(content, headers=headers)

    def preupload(self, body: bytes, kind: str, repo_id: str, rev: str):
        repo = self.server.get_repo(kind, repo_id)
        repo.check_revision(rev)
        files = json.loads(body or b"{}").get("files", [])
        answer = []
        for file in files:
            existing = repo.files.get(file["path"])
            # `oid` of an existing file lets the client skip unchanged files, as on the real Hub.
            oid = git_blob_oid(existing) if existing is not None else None
            answer.append({"path": file["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        self.send_json({"files": answer, "commitOid": repo.sha})

    def commit(self, body: bytes, kind: str, repo_id: str, rev: str):
        repo = self.server.get_repo(kind, repo_id)
        if rev != "main":
            raise HubError(404, f"Commits go to `main` only, got {rev}", "RevisionNotFound")
        if self.query.get("create_pr", ["0"])[0] == "1":
            raise HubError(400, "Pull requests are not supported by this fake Hub")
        files = dict(repo.files)
        summary = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                summary = value.get("summary") or ""
                parent = value.get("parentCommit")
                if parent is not None and parent != repo.sha:
                    raise HubError(412, f"Parent commit {parent} is not the head {repo.sha}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported file encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"Cannot delete missing file {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {name: content for name, content in files.items() if not name.startswith(folder)}
            elif key == "lfsFile":
                raise HubError(400, f"LFS files are not supported by this fake Hub: {value.get('path')}")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        # All operations validated: apply them at once, so that a rejected commit changes nothing.
        repo.files = files
        repo.sha = hashlib.sha1((repo.sha + summary).encode() + body).hexdigest()
        repo.last_modified = datetime.now(timezone.utc)
        self.send_json(
            {
                "commitUrl": f"{self.repo_url(repo)}/commit/{repo.sha}",
                "commitOid": repo.sha,
                "success": True,
                "pullRequestUrl": None,
            }
        )


def stop_when_orphaned_or_idle(server: FakeHub, parent: int, idle_timeout: float):
    while True:
        time.sleep(0.2)
        # A changed parent pid means the test process died and this one was re-parented.
        if os.getppid() != parent or time.monotonic() - server.last_request > idle_timeout:
            server.shutdown()
            return


@contextmanager
def serve_in_subprocess(idle_timeout: float = 120.0) -> Iterator[str]:
    """Run this server in a child process on a free port of 127.0.0.1; yield its URL and stop it afterwards.

    The idle timeout only matters if the calling process is killed without leaving the `with` block.
    """
    process = subprocess.Popen([sys.executable, __file__, "0", str(idle_timeout)], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        port_line = process.stdout.readline() if ready else ""
        if not port_line.strip().isdigit():
            raise RuntimeError(f"fakehub did not report a port (exit code {process.poll()}, got {port_line!r})")
        yield f"http://127.0.0.1:{int(port_line)}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    idle_timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    # Read before the port is announced: the parent may die as soon as it has the port.
    parent = os.getppid()
    server = FakeHub(port)
    threading.Thread(target=stop_when_orphaned_or_idle, args=(server, parent, idle_timeout), daemon=True).start()
    print(server.server_address[1], flush=True)
    with server:
        server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
