"""A stand-in Hugging Face Hub on 127.0.0.1: the few endpoints huggingface_hub's upload_folder,
snapshot_download and hf_hub_download call, answered from memory. Real huggingface_hub
client code runs against it (HF_ENDPOINT), so uploads and downloads go through the same
requests, headers and cache as with huggingface.co.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

GITATTRIBUTES = b"*.pte filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Repo:
    commits: list[dict[str, bytes]] = field(default_factory=list)  # files after each commit
    private: bool = False

    def files(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        for index, files in enumerate(self.commits):
            if revision in (_commit_id(index, files), "main") and (
                revision != "main" or index == len(self.commits) - 1
            ):
                return _commit_id(index, files), files
        return None


def _commit_id(index: int, files: dict[str, bytes]) -> str:
    digest = hashlib.sha1(str(index).encode())
    for name in sorted(files):
        digest.update(name.encode() + hashlib.sha1(files[name]).digest())
    return digest.hexdigest()


class FakeHub:
    """The server's state: repos, what each request asked, and tampering for tests."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.tokens: list[str | None] = []
        self.served: dict[str, bytes] = {}  # path -> bytes served instead (a swapped file)
        self.refuse_commits = False  # answer commits 403, as the Hub does without write access

    def write_tokens(self) -> list[str | None]:
        """The Authorization header of every write (POST) request."""
        return [t for r, t in zip(self.requests, self.tokens, strict=True) if r.startswith("POST")]

    def head(self, repo_id: str) -> str:
        commit, _ = self.repos[repo_id].files("main")  # type: ignore[misc]
        return commit


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args: Any) -> None:
        pass

    # ---------------------------------------------------------------- plumbing
    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self, message: str = "Repository not found") -> None:
        self._json({"error": message}, 404, {"X-Error-Code": "RepoNotFound"})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self) -> str:
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(f"{self.command} {path}")
        self.hub.tokens.append(self.headers.get("Authorization"))
        return path

    # ---------------------------------------------------------------- routes
    def do_POST(self) -> None:
        path = self._record()
        if path == "/api/repos/create":
            data = json.loads(self._body())
            repo_id = (
                f"{data['organization']}/{data['name']}"
                if data.get("organization")
                else data["name"]
            )
            if repo_id not in self.hub.repos:  # the Hub's first commit holds .gitattributes
                self.hub.repos[repo_id] = Repo(
                    [{".gitattributes": GITATTRIBUTES}],
                    bool(data.get("private")) or data.get("visibility") == "private",
                )
            self._json({"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            return
        if path == "/api/validate-yaml":  # the Hub checks a README's front matter
            import yaml

            content = json.loads(self._body())["content"]
            front = content.split("---")[1] if content.startswith("---") else ""
            errors = [] if isinstance(yaml.safe_load(front) or {}, dict) else ["not a mapping"]
            self._json({"errors": [{"message": e} for e in errors], "warnings": []})
            return
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/(.+)", path)
        if not match or match.group(1) not in self.hub.repos:
            self._not_found()
            return
        repo_id, action = match.group(1), match.group(2)
        body = self._body()
        if action == "preupload":
            files = json.loads(body)["files"]
            self._json(
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                }
            )
            return
        if self.hub.refuse_commits:
            self._json(
                {"error": "no write access"},
                403,
                {
                    "X-Error-Message": f"You have read access but not the required permissions for this operation on {repo_id}"
                },
            )
            return
        repo = self.hub.repos[repo_id]
        files = dict(repo.commits[-1]) if repo.commits else {}
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
        repo.commits.append(files)
        commit = _commit_id(len(repo.commits) - 1, files)
        self._json(
            {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{commit}",
            }
        )

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        path = self._record()
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if info:
            found = self._find(info.group(1), info.group(2) or "main")
            if found is None:
                return
            commit, files = found
            self._json(
                {
                    "id": info.group(1),
                    "sha": commit,
                    "private": False,
                    "siblings": [
                        {"rfilename": name, "size": len(data)} for name, data in files.items()
                    ],
                }
            )
            return
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path)
        if tree:
            found = self._find(tree.group(1), tree.group(2))
            if found is not None:
                self._json(
                    [
                        {
                            "type": "file",
                            "path": name,
                            "size": len(data),
                            "oid": hashlib.sha1(data).hexdigest(),
                        }
                        for name, data in sorted(found[1].items())
                    ]
                )
            return
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not resolve:
            self._not_found("no such route")
            return
        found = self._find(resolve.group(1), resolve.group(2))
        if found is None:
            return
        commit, files = found
        name = resolve.group(3)
        if name not in files:
            self._json(
                {"error": "Entry not found"},
                404,
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
            )
            return
        data = self.hub.served.get(name, files[name])
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha1(files[name]).hexdigest()}"')
        self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    def _find(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        repo = self.hub.repos.get(repo_id)
        found = repo.files(revision) if repo else None
        if repo is None:
            self._not_found()
        elif found is None:
            self._json({"error": "Invalid rev id"}, 404, {"X-Error-Code": "RevisionNotFound"})
        return found


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A stand-in Hub, a fresh HF cache and a write token, for one test (import it into a
    test module to use it)."""
    import huggingface_hub.constants as constants

    with serve() as (state, url):
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
        yield state


@contextmanager
def serve() -> Iterator[tuple[FakeHub, str]]:
    """(state, endpoint URL) of a stand-in Hub running for the duration of the block."""
    hub = FakeHub()
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield hub, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
