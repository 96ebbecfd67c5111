"""A small Hugging Face Hub-compatible HTTP server for tests (standard library only).

It answers what the unmodified ``huggingface_hub`` client (2.x) sends for: ``create_repo``,
``upload_folder`` / ``upload_file`` / ``create_commit`` (inline "regular" uploads, never LFS or Xet),
``model_info`` / ``repo_info``, ``list_repo_files`` / ``list_repo_tree``, ``hf_hub_download`` /
``snapshot_download`` (HEAD + GET on ``/resolve``), branches, tags, refs and commit lists, and
``whoami``. Repo metadata lives in memory; file contents are stored under ``root/blobs`` by sha256.

Optional token auth: with ``tokens={"hf_abc": "alice"}`` writes need a valid token, a token that is
not known gets 401, and private repos are invisible (404 ``RepoNotFound``) to anyone but their owner.

Fault injection for tests: ``server.truncate.add((repo_id, path))`` makes downloads of that file
send fewer bytes than the size announced by the HEAD (a download cut short in transit).

Usage::

    server = HubServer(tmp_path).start()      # port 0: any free port
    os.environ["HF_ENDPOINT"] = server.url    # must be set before huggingface_hub is imported
    ...
    server.stop()                             # also closes kept-alive client connections
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with contents `data` (what the client compares in preupload)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs_like(path: str) -> bool:
    """Files the real Hub would store in LFS/Xet: advertised with an `lfs` entry and a sha256 ETag."""
    return path.endswith((".safetensors", ".bin", ".pt", ".ckpt"))


@dataclass
class FileEntry:
    """One file of one commit: its size in bytes, sha256 and git blob sha1 (hex)."""

    size: int
    sha256: str
    git_oid: str

    def etag(self, path: str) -> str:
        return self.sha256 if is_lfs_like(path) else self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        """Commit sha of a branch, tag or full commit sha, or None."""
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        return rev if rev in self.commits else None


class HttpError(Exception):
    """An error answer: status, message, optional X-Error-Code and extra headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """The server: `start()` in a background thread, `url`, `stop()`; state inspectable by tests."""

    def __init__(
        self,
        root: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: dict[str, str] | None = None,
        default_user: str = "testuser",
    ):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.tokens = tokens  # None: no auth at all, every request acts as `default_user`
        self.default_user = default_user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.truncate: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_state = hub

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request, client_address):  # track sockets so stop() can close them
                with hub.lock:
                    hub._connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with hub.lock:
                    hub._connections.discard(request)
                super().shutdown_request(request)

        self._httpd = Server((self.host, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close kept-alive connections (so a 'Hub is down' test really sees it down)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()
        self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- storage -----------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def store(self, data: bytes) -> FileEntry:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return FileEntry(len(data), sha, git_blob_sha1(data))

    def read(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """Contents of `path` at `revision` (for test assertions)."""
        repo = self.repos[(repo_type, repo_id)]
        entry = repo.commits[repo.resolve(revision)].files[path]
        return self.blob_path(entry.sha256).read_bytes()

    def new_commit(self, repo: Repo, branch: str, title: str, message: str, files: dict[str, FileEntry]) -> Commit:
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_id}\0{parent}\0{title}\0{time.time_ns()}\0" + json.dumps(
            {p: e.git_oid for p, e in sorted(files.items())}
        )
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, message, _now(), files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def create_repo(self, repo_id: str, owner: str, private: bool = False, repo_type: str = "model") -> Repo:
        repo = Repo(repo_type, repo_id, owner, private)
        self.repos[(repo_type, repo_id)] = repo
        self.new_commit(repo, "main", "initial commit", "", {".gitattributes": self.store(GITATTRIBUTES)})
        return repo


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # --- plumbing ----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        hub = self.server_state
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        # Split on "/" BEFORE unquoting: revisions such as "dev%2Fexp" contain an encoded slash.
        self.segments = [unquote(s) for s in split.path.split("/") if s]
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        with hub.lock:
            hub.requests.append((self.command, split.path))
        try:
            with hub.lock:
                self._route()
        except HttpError as err:
            headers = dict(err.headers)
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            self._json({"error": err.message}, err.status, headers)

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _dispatch

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _body_json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as err:
            raise HttpError(400, f"invalid JSON body: {err}") from None

    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or f'{self.server_state.host}:{self.server_state.port}'}"

    # --- auth --------------------------------------------------------------------------------
    def _user(self) -> str | None:
        """The authenticated user; None when anonymous. An unknown token is a 401."""
        hub = self.server_state
        auth = self.headers.get("Authorization", "")
        if hub.tokens is None:
            return hub.default_user
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in hub.tokens:
            raise HttpError(401, "Invalid credentials in Authorization header")
        return hub.tokens[token]

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        user = self._user()
        repo = self.server_state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo.owner):
            raise HttpError(404, f"Repository Not Found for url: {self.path}.", "RepoNotFound")
        if write:
            if user is None:
                raise HttpError(401, "You must be authenticated to write to a repository")
            if user != repo.owner:
                raise HttpError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit(self, repo: Repo, rev: str) -> Commit:
        sha = repo.resolve(rev)
        if sha is None:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[sha]

    # --- routing -----------------------------------------------------------------------------
    def _route(self) -> None:
        seg, method = self.segments, self.command
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["agent-harnesses"]:
                return self._json({"standardEnvVars": [], "harnesses": {}})
            if rest == ["whoami-v2"]:
                user = self._user()
                if user is None:
                    raise HttpError(401, "Invalid username or password.")
                return self._json({"type": "user", "name": user, "orgs": [], "auth": {"type": "access_token"}})
            if rest == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo()
            if rest == ["validate-yaml"] and method == "POST":
                return self._json({"errors": [], "warnings": []})
            if len(rest) >= 3 and rest[0] in REPO_TYPES:
                return self._api_repo(REPO_TYPES[rest[0]], f"{rest[1]}/{rest[2]}", rest[3:])
            raise HttpError(404, f"no route for {method} {self.path}")
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise HttpError(404, f"no route for {method} {self.path}")

    def _api_repo(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
        method, action = self.command, rest[0] if rest else ""
        if method == "GET" and not rest:
            return self._info(repo_type, repo_id, "main")
        if method == "GET" and action == "revision" and len(rest) == 2:
            return self._info(repo_type, repo_id, rest[1])
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo_type, repo_id, rest[1])
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit_files(repo_type, repo_id, rest[1])
        if method == "GET" and action == "refs":
            repo = self._repo(repo_type, repo_id)
            ref = lambda kind, items: [  # noqa: E731
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in items.items()
            ]
            return self._json({"branches": ref("heads", repo.branches), "converts": [], "tags": ref("tags", repo.tags)})
        if method == "GET" and action == "commits" and len(rest) == 2:
            return self._commits(repo_type, repo_id, rest[1])
        if action == "branch" and len(rest) == 2 and method in ("POST", "DELETE"):
            return self._branch(repo_type, repo_id, rest[1])
        if method == "POST" and action == "tag" and len(rest) == 2:
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit(repo, rest[1])
            tag = self._body_json().get("tag")
            if not tag or tag in repo.tags:
                raise HttpError(409, f"tag {tag!r} already exists or is empty")
            repo.tags[tag] = commit.oid
            return self._json({})
        if method == "POST" and action == "paths-info" and len(rest) == 2:
            return self._paths_info(repo_type, repo_id, rest[1])
        if action.startswith("xet-"):
            raise HttpError(501, "this test server does not emulate Xet storage; it answers uploadMode 'regular'")
        raise HttpError(404, f"no route for {method} {self.path}")

    # --- repos -------------------------------------------------------------------------------
    def _create_repo(self) -> None:
        hub, user = self.server_state, self._user()
        if user is None:
            raise HttpError(401, "You must be authenticated to create a repository")
        body = self._body_json()
        name, namespace = body.get("name"), body.get("organization") or user
        if not name:
            raise HttpError(400, "missing repository name")
        if namespace != user:
            raise HttpError(403, f"You don't have the rights to create a repository under {namespace!r}")
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self._base()}/{prefix}{repo_id}"
        if (repo_type, repo_id) in hub.repos:
            return self._json({"error": "You already created this model repo", "url": url}, 409)
        private = body.get("private")
        if private is None:
            private = body.get("visibility") == "private"
        hub.create_repo(repo_id, user, bool(private), repo_type)
        return self._json({"url": url, "name": repo_id})

    def _delete_repo(self) -> None:
        body = self._body_json()
        repo_id = f"{body.get('organization') or self._user()}/{body.get('name')}"
        repo_type = body.get("type") or "model"
        self._repo(repo_type, repo_id, write=True)
        del self.server_state.repos[(repo_type, repo_id)]
        return self._json({})

    def _info(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, rev)
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sib: dict[str, Any] = {"rfilename": path, "size": entry.size, "blobId": entry.git_oid}
            if is_lfs_like(path):
                sib["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": 134}
            siblings.append(sib)
        card_data, library = self._card_data(commit), None
        if isinstance(card_data, dict):
            library = card_data.get("library_name")
        tags = list(card_data.get("tags") or []) if isinstance(card_data, dict) else []
        info = {
            "id": repo_id,
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.commits[min(repo.commits, key=lambda c: repo.commits[c].date)].date,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": tags,
            "library_name": library,
            "cardData": card_data,
            "siblings": siblings,
        }
        return self._json(info)

    def _card_data(self, commit: Commit) -> dict | None:
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        text = self.server_state.blob_path(entry.sha256).read_text(encoding="utf-8", errors="replace")
        if not text.startswith("---"):
            return None
        try:
            import yaml  # PyYAML comes with huggingface_hub

            return yaml.safe_load(text.split("---", 2)[1]) or None
        except Exception:
            return None

    def _tree(self, repo_type: str, repo_id: str, rev: str, prefix: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, rev)
        recursive = self.query.get("recursive", "false").lower() == "true"
        base = f"{prefix.rstrip('/')}/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, entry in sorted(commit.files.items()):
            if not path.startswith(base):
                continue
            rel = path[len(base) :]
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40})
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                item: dict[str, Any] = {"type": "file", "path": path, "size": entry.size, "oid": entry.git_oid}
                if is_lfs_like(path):
                    item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 134}
                entries[path] = item
        if prefix and not entries:
            raise HttpError(404, f"{prefix} does not exist at {rev}", "EntryNotFound")
        return self._json(list(entries.values()))

    def _paths_info(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, rev)
        paths = parse_qs(self.body.decode()).get("paths", [])  # the client posts form data
        out = []
        for path in paths:
            if path in commit.files:
                entry = commit.files[path]
                out.append({"type": "file", "path": path, "size": entry.size, "oid": entry.git_oid})
        return self._json(out)

    def _commits(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit, out = self._commit(repo, rev), []
        while commit is not None:
            out.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "date": commit.date,
                    "authors": [{"user": repo.owner}],
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return self._json(out)

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        if self.command == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HttpError(404, f"branch {branch!r} cannot be deleted", "RevisionNotFound")
            del repo.branches[branch]
            return self._json({})
        if branch in repo.branches:
            raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._body_json().get("startingPoint") or "main"
        repo.branches[branch] = self._commit(repo, start).oid
        return self._json({})

    # --- uploads -----------------------------------------------------------------------------
    def _preupload(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        sha = repo.resolve(rev)
        current = repo.commits[sha].files if sha else {}
        files = []
        for item in self._body_json().get("files", []):
            path = item["path"]
            entry = current.get(path)
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False, "oid": entry.git_oid if entry else None})
        return self._json({"files": files, "commitOid": sha})

    def _commit_files(self, repo_type: str, repo_id: str, rev: str) -> None:
        hub = self.server_state
        repo = self._repo(repo_type, repo_id, write=True)
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        if rev not in repo.branches:
            if repo.resolve(rev) is not None:
                raise HttpError(400, f"cannot commit to {rev!r}: not a branch")
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        parent = header.get("parentCommit")
        if parent and parent != repo.branches[rev]:
            raise HttpError(412, f"parent commit {parent} is not the head of {rev}")
        files = dict(repo.commits[repo.branches[rev]].files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HttpError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = hub.store(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: e for p, e in files.items() if not p.startswith(folder)}
            elif key == "lfsFile":
                raise HttpError(400, "this test server only accepts inline ('regular') uploads, not LFS")
            else:
                raise HttpError(400, f"unknown commit operation {key!r}")
        commit = hub.new_commit(repo, rev, header.get("summary", ""), header.get("description", ""), files)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return self._json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self._base()}/{prefix}{repo_id}/commit/{commit.oid}",
                "pullRequestUrl": None,
            }
        )

    # --- downloads ---------------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        hub = self.server_state
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo, rev)
        entry = commit.files.get(path)
        base_headers = {"X-Repo-Commit": commit.oid}
        if entry is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound", base_headers)
        headers = {
            **base_headers,
            "ETag": f'"{entry.etag(path)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        data = hub.blob_path(entry.sha256).read_bytes() if self.command == "GET" else b""
        if self.command == "HEAD":
            return self._send(200, b"", headers, length=entry.size)
        if (repo_id, path) in hub.truncate:
            data = data[: len(data) // 2]  # announce the short length: the client's size check must catch it
        status, rng = 200, self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[6:].partition("-")
            start, end = int(start_s or 0), int(end_s) if end_s else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return self._send(status, data, headers)


if __name__ == "__main__":  # manual use: python tests/hub_server.py [port]
    import sys
    import tempfile

    srv = HubServer(tempfile.mkdtemp(prefix="hub-"), port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"serving a Hub-compatible API at {srv.url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
