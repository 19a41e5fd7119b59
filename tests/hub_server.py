"""A small Hugging Face Hub-compatible HTTP server, for tests only.

It speaks just enough of the Hub's HTTP API for the real, unmodified `huggingface_hub` and
`datasets` clients to create dataset repos, upload files (regular and LFS), commit them, list
them and download them again (`push_to_hub`, `upload_file`, `load_dataset`, `hf_hub_download`).
Blobs live on disk under `root` (a temp folder by default); repo metadata in `root/state.json`.

Usage (the clients read their settings from the environment *at import time*, so run them in a
subprocess started with `server.env()`):

    with HubServer(token="hf_test") as hub:
        subprocess.run([sys.executable, "script.py"], env=hub.env(), check=True)
        assert any("/commit/" in r for r in hub.requests)

`env()` sets HF_ENDPOINT, a fresh HF_HOME / HF_DATASETS_CACHE, disables telemetry and sets
HF_HUB_DISABLE_XET=1: with `hf_xet` installed the client otherwise uploads through the Xet CAS
protocol, which this server does not implement (plain Git LFS "basic" transfer is used instead).
Requests to endpoints it does not know are answered 501 and recorded in `unhandled`.

In-process use works only if `os.environ.update(hub.env())` runs before `huggingface_hub` and
`datasets` are first imported in that process (they copy HF_ENDPOINT into module constants).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# URL segment -> repo type. Models have no prefix in file URLs (`/{ns}/{name}/resolve/...`).
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
# Files stored with Git LFS, roughly like the Hub's default .gitattributes.
_LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".pt", ".pth", ".npy", ".npz", ".zip", ".gz")
_LFS_MIN_SIZE = 10 * 1024 * 1024


class _HubError(Exception):
    """An error answered the way the Hub does: the client maps `X-Error-Code` to its exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """Context manager running the fake Hub on 127.0.0.1:<free port> in a background thread."""

    def __init__(
        self, token: str = "hf_test_token", root: Path | None = None, user: str = "test-user", role: str = "write"
    ) -> None:
        self.token, self.user = token, user
        self.role = role  # what whoami says the token may do ("read" to test a read-only token); not enforced
        self._tmp: str | None = None  # a folder of our own, removed on close
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="hub_server_")
            root = Path(self._tmp)
        self.root = root
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []  # "METHOD /path?query" of every request seen
        self.unhandled: list[str] = []  # requests this server does not implement (answered 501)
        self._lock = threading.Lock()  # requests are served one at a time: simple and plenty for tests
        state = self.root / "state.json"
        # repo key "type:ns/name" -> {"private", "branches": {name: commit}, "commits": {id: commit}}
        self.repos: dict[str, dict[str, Any]] = json.loads(state.read_text()) if state.exists() else {}
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def env(self, base: dict[str, str] | None = None, with_token: bool = False) -> dict[str, str]:
        """Environment for a client subprocess: `base` (default os.environ) pointed at this server."""
        env = dict(os.environ if base is None else base)
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE"):
            env.pop(key, None)  # nothing may leak in from the real Hub setup
        client = self.root / "client"
        env.update(
            HF_ENDPOINT=self.url,
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HOME=str(client / "hf_home"),
            HF_DATASETS_CACHE=str(client / "datasets_cache"),
            NO_PROXY="127.0.0.1,localhost," + env.get("NO_PROXY", ""),
            no_proxy="127.0.0.1,localhost," + env.get("no_proxy", ""),
        )
        if with_token:
            env["HF_TOKEN"] = self.token
        return env

    # ---- storage -------------------------------------------------------------------------------
    def _save(self) -> None:
        (self.root / "state.json").write_text(json.dumps(self.repos))

    def _put_blob(self, data: bytes) -> str:  # content-addressed; callers hold the lock
        sha = hashlib.sha256(data).hexdigest()
        self._blob(sha).write_bytes(data)
        return sha

    def _blob(self, sha: str) -> Path:
        return self.root / "blobs" / sha

    def _file_entry(self, data: bytes, lfs: bool) -> dict[str, Any]:
        sha = self._put_blob(data)
        oid = _git_oid(_lfs_pointer(sha, len(data))) if lfs else _git_oid(data)
        return {"size": len(data), "sha256": sha, "oid": oid, "lfs": lfs}

    def _repo(self, rtype: str, repo_id: str, authed: bool) -> dict[str, Any]:
        repo = self.repos.get(f"{rtype}:{repo_id}")
        if repo is None or (repo["private"] and not authed):  # the Hub hides private repos
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _resolve(repo: dict[str, Any], rev: str) -> str:
        cid = repo["branches"].get(rev.removeprefix("refs/heads/"), rev)
        if cid not in repo["commits"]:
            raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return cid

    def _create_repo(self, rtype: str, repo_id: str, private: bool) -> None:
        cid = hashlib.sha1(f"{rtype}:{repo_id}:{time.time_ns()}".encode()).hexdigest()
        commit: dict[str, Any] = {"parent": None, "title": "initial commit", "date": _now(), "files": {}}
        self.repos[f"{rtype}:{repo_id}"] = {"private": private, "branches": {"main": cid}, "commits": {cid: commit}}
        self._save()

    def _commit(self, repo: dict[str, Any], branch: str, lines: list[dict[str, Any]]) -> str:
        if branch not in repo["branches"]:
            raise _HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo["branches"][branch]
        header = lines[0]["value"] if lines and lines[0].get("key") == "header" else {}
        if header.get("parentCommit") not in (None, head):
            raise _HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo["commits"][head]["files"])
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                files[path] = self._file_entry(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                if not self._blob(value["oid"]).exists():
                    raise _HubError(400, f"LFS object {value['oid']} of {path} was never uploaded")
                files[path] = self._file_entry(self._blob(value["oid"]).read_bytes(), lfs=True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: e for p, e in files.items() if not p.startswith(path.rstrip("/") + "/")}
            elif key != "header":
                raise _HubError(400, f"Unknown commit operation {key!r}")
        cid = hashlib.sha1(json.dumps([head, files, time.time_ns()], sort_keys=True).encode()).hexdigest()
        repo["commits"][cid] = {"parent": head, "title": header.get("summary", ""), "date": _now(), "files": files}
        repo["branches"][branch] = cid
        self._save()
        return cid


def _path_info(path: str, entry: dict[str, Any] | None, cid: str) -> dict[str, Any]:
    """One entry of the `tree` / `paths-info` answers (a file, or a folder when `entry` is None)."""
    if entry is None:
        return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(f"{cid}:{path}".encode()).hexdigest()}
    info: dict[str, Any] = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
    if entry["lfs"]:
        pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
        info["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
    return info


class _Server(ThreadingHTTPServer):
    hub: HubServer  # the state every request handler reads


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server: _Server

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr access log
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # ---- plumbing ------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # streamed LFS uploads
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _authed(self, write: bool) -> bool:
        auth = self.headers.get("Authorization")
        if auth is not None and auth != f"Bearer {self.hub.token}":  # the Hub rejects bad tokens everywhere
            raise _HubError(401, "Invalid credentials in Authorization header")
        if write and auth is None:
            raise _HubError(401, "You must be authenticated to access this resource")
        return auth is not None

    def _handle(self) -> None:
        body = self._body()  # always drain the body, or the next keep-alive request is garbled
        url = urlsplit(self.path)
        self.hub.requests.append(f"{self.command} {self.path}")
        try:
            # Split before unquoting: revisions and tree paths are quoted with safe="" ("refs%2Fpr%2F1").
            segs = [unquote(s) for s in url.path.strip("/").split("/")]
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with self.hub._lock:
                self._route(segs, query, body)
        except _HubError as err:
            headers = {"X-Error-Message": err.message}
            headers.update({"X-Error-Code": err.code} if err.code else {})
            headers.update({"X-Repo-Commit": err.commit} if err.commit else {})
            if err.status == 501:
                self.hub.unhandled.append(f"{self.command} {self.path}")
                print(f"[hub_server] unhandled request: {self.command} {self.path}", file=sys.stderr)
            self._send(err.status, {"error": err.message}, headers)
        except Exception as exc:  # a bug here: answer 500 (the client shows it) and log it
            print(f"[hub_server] error on {self.command} {self.path}: {exc!r}", file=sys.stderr)
            self._send(500, {"error": f"HubServer internal error: {exc!r}"})

    # ---- endpoints -----------------------------------------------------------------------------
    def _route(self, segs: list[str], query: dict[str, str], body: bytes) -> None:
        hub, method = self.hub, self.command
        if segs[:2] == ["api", "whoami-v2"] and method == "GET":
            self._authed(write=True)
            auth = {"type": "access_token", "accessToken": {"displayName": "test", "role": hub.role}}
            return self._send(200, {"type": "user", "name": hub.user, "orgs": [], "auth": auth})
        if segs[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._send(200, {"errors": [], "warnings": []})
        if segs[:2] == ["api", "repos"] and segs[2:] in (["create"], ["delete"]) and method in ("POST", "DELETE"):
            self._authed(write=True)
            payload = json.loads(body or b"{}")
            rtype = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
            if segs[2] == "create":
                if f"{rtype}:{repo_id}" in hub.repos:
                    raise _HubError(409, "You already created this repo")  # create_repo(exist_ok=True) ignores it
                hub._create_repo(rtype, repo_id, private=payload.get("visibility") == "private")
                return self._send(200, {"url": f"{hub.url}/{_PREFIX[rtype]}{repo_id}", "name": repo_id})
            if segs[2] == "delete":
                hub._repo(rtype, repo_id, authed=True)
                del hub.repos[f"{rtype}:{repo_id}"]
                hub._save()
                return self._send(200, b"")
        if segs[0] == "api" and len(segs) == 3 and segs[1] in _TYPES:  # no namespace: the Hub says "not found"
            raise _HubError(404, "Repository not found", "RepoNotFound")
        if segs[0] == "api" and len(segs) >= 4 and segs[1] in _TYPES:
            return self._repo_api(_TYPES[segs[1]], f"{segs[2]}/{segs[3]}", segs[4:], query, body)
        if segs[0] == "_lfs" and len(segs) == 2 and method == "PUT":
            # The "presigned" upload URL handed out by the LFS batch call: content-addressed, so it can
            # only ever store a blob whose sha256 is the oid; it changes no repo, hence no token needed.
            if hashlib.sha256(body).hexdigest() != segs[1]:
                raise _HubError(400, "sha256 of the uploaded content does not match the LFS oid")
            hub._put_blob(body)
            return self._send(200, b"")
        # File URLs: /{ns}/{name}/... for models, /datasets/{ns}/{name}/... (spaces/, kernels/) otherwise.
        rtype, rest = (_TYPES[segs[0]], segs[1:]) if segs[0] in ("datasets", "spaces", "kernels") else ("model", segs)
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve_file(rtype, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
        if rest[-4:] == ["info", "lfs", "objects", "batch"] and len(rest) == 6 and method == "POST":
            return self._lfs_batch(rtype, f"{rest[0]}/{rest[1].removesuffix('.git')}", json.loads(body))
        raise _HubError(501, f"HubServer does not implement {method} {self.path}")

    def _repo_api(self, rtype: str, repo_id: str, rest: list[str], query: dict[str, str], body: bytes) -> None:
        hub, method = self.hub, self.command
        action = rest[0] if rest else ""
        write = method != "GET" and action not in ("paths-info",)
        repo = hub._repo(rtype, repo_id, self._authed(write=write))
        rev = rest[1] if len(rest) > 1 else "main"
        if method == "GET" and action in ("", "revision"):
            cid = hub._resolve(repo, rev)
            commit = repo["commits"][cid]
            blobs = query.get("blobs", "").lower() == "true"
            siblings = []
            for path, entry in sorted(commit["files"].items()):
                lfs = _path_info(path, entry, cid).get("lfs")
                lfs = lfs and {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
                meta = {"size": entry["size"], "blobId": entry["oid"], "lfs": lfs} if blobs else {}
                siblings.append({"rfilename": path, **meta})
            return self._send(
                200,
                {
                    "id": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": cid,
                    "private": repo["private"],
                    "disabled": False,
                    "gated": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "lastModified": commit["date"],
                    "createdAt": commit["date"],
                    "siblings": siblings,
                },
            )
        if method == "GET" and action == "tree":
            cid = hub._resolve(repo, rev)
            prefix = "/".join(rest[2:]).strip("/")
            files = repo["commits"][cid]["files"]
            recursive = query.get("recursive", "").lower() == "true"
            out: dict[str, dict[str, Any]] = {}
            base = len(prefix.split("/")) if prefix else 0  # depth of the listed folder
            for path, entry in files.items():
                if prefix and not path.startswith(prefix + "/"):
                    continue
                parts = path.split("/")
                for depth in range(base + 1, len(parts) if recursive else min(base + 2, len(parts))):
                    folder = "/".join(parts[:depth])  # the folders between the listed one and the file
                    out.setdefault(folder, _path_info(folder, None, cid))
                if recursive or len(parts) == base + 1:
                    out[path] = _path_info(path, entry, cid)
            if prefix and not out:
                raise _HubError(404, f"{prefix} does not exist on {rev}", "EntryNotFound", commit=cid)
            return self._send(200, [out[p] for p in sorted(out)])
        if method == "POST" and action == "paths-info":
            cid = hub._resolve(repo, rev)
            files = repo["commits"][cid]["files"]
            # The client posts a form (`paths=a&paths=b`); accept JSON too.
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            paths = json.loads(body).get("paths", []) if is_json else parse_qs(body.decode()).get("paths", [])
            found = []
            for path in [p.strip("/") for p in paths]:
                if path in files:
                    found.append(_path_info(path, files[path], cid))
                elif any(p.startswith(path + "/") for p in files) or path == "":
                    found.append(_path_info(path, None, cid))
            return self._send(200, found)
        if method == "POST" and action == "preupload":
            cid = hub._resolve(repo, rev)
            files = repo["commits"][cid]["files"]
            answer = []
            for item in json.loads(body)["files"]:
                sample = base64.b64decode(item.get("sample", ""))
                lfs = item["path"].endswith(_LFS_SUFFIXES) or b"\0" in sample or item["size"] >= _LFS_MIN_SIZE
                old = files.get(item["path"])
                # The client skips files whose oid is unchanged (sha256 for LFS, git oid otherwise).
                oid = None if old is None or old["lfs"] != lfs else (old["sha256"] if lfs else old["oid"])
                mode = "lfs" if lfs else "regular"
                answer.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return self._send(200, {"files": answer, "commitOid": cid})
        if method == "POST" and action == "commit":
            if query.get("create_pr"):
                raise _HubError(501, "HubServer does not implement create_pr")
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            cid = hub._commit(repo, rev, lines)
            url = f"{hub.url}/{_PREFIX[rtype]}{repo_id}/commit/{cid}"
            return self._send(200, {"success": True, "commitOid": cid, "commitUrl": url, "pullRequestUrl": None})
        if action == "branch" and len(rest) == 2 and method in ("POST", "DELETE"):
            if method == "DELETE":
                if repo["branches"].pop(rev, None) is None:
                    raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            elif rev in repo["branches"]:
                raise _HubError(409, f"Branch {rev} already exists")
            else:
                repo["branches"][rev] = hub._resolve(repo, json.loads(body or b"{}").get("startingPoint") or "main")
            hub._save()
            return self._send(200, {})
        if method == "GET" and action == "refs":
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo["branches"].items()]
            return self._send(200, {"branches": branches, "tags": [], "converts": []})
        hint = " (Xet storage is not supported: set HF_HUB_DISABLE_XET=1)" if action.startswith("xet-") else ""
        raise _HubError(501, f"HubServer does not implement {method} {self.path}{hint}")

    def _lfs_batch(self, rtype: str, repo_id: str, payload: dict[str, Any]) -> None:
        hub = self.hub
        hub._repo(rtype, repo_id, self._authed(write=True))
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"]}
            if not hub._blob(obj["oid"]).exists():  # no "actions" = already stored, the client skips it
                answer["actions"] = {"upload": {"href": f"{hub.url}/_lfs/{obj['oid']}"}}
            objects.append(answer)
        self._send(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _resolve_file(self, rtype: str, repo_id: str, rev: str, path: str) -> None:
        hub = self.hub
        repo = hub._repo(rtype, repo_id, self._authed(write=False))
        cid = hub._resolve(repo, rev)
        entry = repo["commits"][cid]["files"].get(path)
        if entry is None:  # X-Repo-Commit lets the client cache the absence of the file
            raise _HubError(404, "Entry not found", "EntryNotFound", commit=cid)
        data = hub._blob(entry["sha256"]).read_bytes()
        headers = {
            "X-Repo-Commit": cid,
            "ETag": f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        byte_range = self.headers.get("Range", "")
        if byte_range.startswith("bytes="):  # HfFileSystem reads files by ranges
            start_s, _, end_s = byte_range[6:].partition("-")
            start = int(start_s) if start_s else max(0, len(data) - int(end_s))
            end = min(int(end_s), len(data) - 1) if end_s and start_s else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start : end + 1], headers)
        self._send(200, data, headers)
