#!/usr/bin/env python3
"""hub_server.py - a local stand-in for the Hugging Face Hub, for tests/test_hub.c and
tools/check_hub_interop.py. Python stdlib only; listens on 127.0.0.1 only.

Usage:
  hub_server.py --make-repos FIXTURES OUT   build the test repos under OUT and exit
  hub_server.py ROOT [--make-from FIXTURES] [--timeout S] [--die-with-parent]
                                            serve ROOT; print "PORTS <hub> <cdn>" and serve

ROOT/{org}/{name}/{revision}/... holds each revision's files. Each revision has a fixed
commit (sha1 of "repo@revision"), and can be asked for by name or by commit.

What it implements of the Hub (huggingface_hub's file_download.py reads these):
  HEAD|GET /{repo}/resolve/{rev}/{path}: X-Repo-Commit; for *.safetensors ("LFS") a 302 to
    the CDN port on host "localhost" with X-Linked-Etag (sha256) and X-Linked-Size; for other
    files 200 with ETag (git blob sha1) and Content-Length. 404 with X-Error-Code
    RepoNotFound / RevisionNotFound / EntryNotFound (the last with X-Repo-Commit).
  GET /cdn/{repo}/{commit}/{path} on the CDN port: the bytes, with Range support.
  GET /api/models/{repo}/revision/{rev}: {"id", "sha", "siblings": [{"rfilename"}]}.
  GET /api/models/{repo}/tree/{rev}?recursive=true: [{"type", "path", "size", "oid", "lfs"}]
    (one page), which snapshot_download lists.
Upload side (huggingface_hub's hf_api.py, _commit_api.py and lfs.py use these), all on the
hub port unless said, each needing "Authorization: Bearer hf_write_test" (fault write_token
changes it): none gives 401, another token 403 (read-only):
  POST /api/repos/create {"name", "organization", "private"}: 200 {"url"}, 409 if it exists.
  POST /api/models/{repo}/preupload/{rev} {"files": [{path, sample, size}]}: *.safetensors
    and samples with a NUL byte are "lfs", others "regular".
  POST /{repo}.git/info/lfs/objects/batch: objects the repo holds get no actions; others an
    upload href on the CDN port (host "localhost", a presigned-style ?ticket= query, and an
    X-Upload-Ticket header) and a verify href here.
  PUT /upload/{repo}/{oid}?ticket=... (CDN port): the body must hash to oid; kept until
    verified. POST /{repo}.git/info/lfs/objects/verify {"oid", "size"}: 422 on a mismatch.
  POST /api/models/{repo}/commit/{rev} (ndjson: header, file, lfsFile lines): writes the files
    into ROOT/{repo}/{rev}, gives the branch a new commit (kept in .commit), answers
    {"commitUrl", "commitOid"}; the GET endpoints above then serve it.
Control (hub port): GET /_ctl/set?key=value&... sets faults (below), /_ctl/log returns the
requests seen (role, method, path, headers) as JSON, /_ctl/count?role=&method=&path=&header= counts the logged requests
matching all given (path: a substring; header: present), /_ctl/reset clears faults and log,
/_ctl/quit exits. Faults: fail500=N (next N requests get 500), truncate=N (next N CDN or
file bodies stop half way, connection closed), reset=N (same, with a TCP reset),
badsha=1 (LFS bodies have one byte flipped), slow_ms=N (delay each response), stall=N
(the next N requests wait 3 s before answering),
private=REPO or gated=REPO with token=T (401 / 403 GatedRepo unless "Bearer T"),
upload500=N (next N LFS PUTs get 500), commit500=N (next N commits get 500), batch_error=N (the next N
batch objects carry an "error"), corrupt_upload=N (next N PUTs are stored with a byte
flipped, so verify answers 422), write_token=T.
The process exits on its own after --timeout seconds (default 120).
"""
import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()
STATE = {"faults": {}, "log": []}


def commit_of(repo, rev):
    return hashlib.sha1(f"{repo}@{rev}".encode()).hexdigest()


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def take(name):
    """Consume one unit of a counted fault; True if it fires."""
    with LOCK:
        n = int(STATE["faults"].get(name, 0))
        if n > 0:
            STATE["faults"][name] = n - 1
            return True
    return False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."
    role = "hub"
    cdn_port = 0

    def log_message(self, fmt, *args):
        pass

    def record(self):
        with LOCK:
            STATE["log"].append({"role": self.role, "method": self.command, "path": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}})

    def send(self, code, headers=None, body=b"", head=False):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def error(self, code, err_code, msg, extra=None, head=False):
        h = {"X-Error-Code": err_code, "X-Error-Message": msg, "Content-Type": "application/json"}
        h.update(extra or {})
        self.send(code, h, json.dumps({"error": msg}).encode(), head)

    def do_HEAD(self):
        self.dispatch(head=True)

    def do_GET(self):
        self.dispatch(head=False)

    def dispatch(self, head):
        if not self.path.startswith("/_ctl/"):
            self.record()
        slow = int(STATE["faults"].get("slow_ms", 0))
        if slow:
            time.sleep(slow / 1000.0)
        path = urllib.parse.urlsplit(self.path)
        if self.role == "hub" and path.path.startswith("/_ctl/"):
            return self.control(path)
        if take("stall"):
            time.sleep(3)
        if take("fail500"):
            return self.send(500, {"Content-Type": "text/plain"}, b"injected failure", head)
        parts = [urllib.parse.unquote(p) for p in path.path.split("/")[1:]]
        if self.role == "cdn":
            if len(parts) < 5 or parts[0] != "cdn":
                return self.send(404, body=b"no such cdn object", head=head)
            repo, commit, file = "/".join(parts[1:3]), parts[3], "/".join(parts[4:])
            return self.serve_cdn(repo, commit, file, head)
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            return self.api(f"{parts[2]}/{parts[3]}", parts[5], head)
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            return self.tree(f"{parts[2]}/{parts[3]}", parts[5], head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
        return self.send(404, body=b"not found", head=head)

    def control(self, path):
        q = dict(urllib.parse.parse_qsl(path.query))
        if path.path == "/_ctl/set":
            with LOCK:
                STATE["faults"].update(q)
            return self.send(200, body=b"ok")
        if path.path == "/_ctl/reset":
            with LOCK:
                STATE["faults"].clear()
                STATE["log"].clear()
            return self.send(200, body=b"ok")
        if path.path == "/_ctl/log":
            with LOCK:
                body = json.dumps(STATE["log"]).encode()
            return self.send(200, {"Content-Type": "application/json"}, body)
        if path.path == "/_ctl/count":
            with LOCK:
                n = sum(1 for e in STATE["log"]
                        if e["role"] == q.get("role", e["role"])
                        and e["method"] == q.get("method", e["method"])
                        and q.get("path", "") in e["path"]
                        and (q.get("header") is None or q["header"] in e["headers"]))
            return self.send(200, body=str(n).encode())
        if path.path == "/_ctl/quit":
            self.send(200, body=b"bye")
            self.wfile.flush()
            os._exit(0)
        return self.send(404, body=b"unknown control")

    def find_rev(self, repo, rev):
        """(revision dir, commit) for a branch name or a commit, or None."""
        base = os.path.join(self.root, repo)
        for name in sorted(os.listdir(base)):
            commit = self.branch_commit(repo, name)
            if name == rev or commit == rev:
                return os.path.join(base, name), commit
        return None

    def branch_commit(self, repo, name):
        """A branch's commit: the last pushed one (.commit), else the fixed one."""
        try:
            with open(os.path.join(self.root, repo, name, ".commit")) as f:
                return f.read().strip()
        except OSError:
            return commit_of(repo, name)

    def auth_fails(self, repo, head):
        f = STATE["faults"]
        want = "Bearer " + f.get("token", "")
        if self.headers.get("Authorization") == want and f.get("token"):
            return False
        if f.get("gated") == repo:
            self.error(403, "GatedRepo", f"Access to model {repo} is restricted.", head=head)
            return True
        if f.get("private") == repo:
            self.error(401, "RepoNotFound", "Invalid credentials in Authorization header",
                       head=head)
            return True
        return False

    def repo_and_rev(self, repo, rev, head):
        if not os.path.isdir(os.path.join(self.root, repo)):
            self.error(404, "RepoNotFound", f"Repository not found: {repo}", head=head)
            return None
        if self.auth_fails(repo, head):
            return None
        found = self.find_rev(repo, rev)
        if found is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
        return found

    def resolve(self, repo, rev, file, head):
        found = self.repo_and_rev(repo, rev, head)
        if found is None:
            return
        rdir, commit = found
        full = os.path.join(rdir, file)
        if ".." in file.split("/") or not os.path.isfile(full):
            return self.error(404, "EntryNotFound", f"{file} does not exist on \"{rev}\"",
                              {"X-Repo-Commit": commit}, head)
        data = open(full, "rb").read()
        if file.endswith(".safetensors"):
            loc = (f"http://localhost:{self.cdn_port}/cdn/{repo}/{commit}/"
                   + urllib.parse.quote(file))
            return self.send(302, {"Location": loc, "X-Repo-Commit": commit,
                                   "X-Linked-Etag": '"%s"' % hashlib.sha256(data).hexdigest(),
                                   "X-Linked-Size": str(len(data)),
                                   "ETag": '"%s"' % git_blob_sha1(data)}, b"", head)
        hdrs = {"X-Repo-Commit": commit, "ETag": '"%s"' % git_blob_sha1(data),
                "Content-Type": "application/octet-stream"}
        if head:
            hdrs["Content-Length"] = str(len(data))
            return self.send(200, hdrs, b"", head=True)
        return self.body(data, hdrs)

    def serve_cdn(self, repo, commit, file, head):
        found = self.find_rev(repo, commit) if os.path.isdir(os.path.join(self.root, repo)) else None
        if found is None or not os.path.isfile(os.path.join(found[0], file)):
            return self.send(404, body=b"no such object", head=head)
        data = open(os.path.join(found[0], file), "rb").read()
        if STATE["faults"].get("badsha") and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.body(data, {"Content-Type": "application/octet-stream"}, head)

    def body(self, data, hdrs, head=False):
        start, code = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(416, {"Content-Range": f"bytes */{len(data)}"}, b"", head)
            code = 206
            hdrs = dict(hdrs, **{"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        part = data[start:]
        cut = take("truncate") and not head
        reset = not cut and take("reset") and not head
        self.send_response(code)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if head:
            return
        if cut or reset:
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.wfile.write(part)

    def api(self, repo, rev, head):
        found = self.repo_and_rev(repo, rev, head)
        if found is None:
            return
        rdir, commit = found
        files = []
        for dirpath, _, names in os.walk(rdir):
            for n in names:
                if n.startswith("."):
                    continue
                files.append(os.path.relpath(os.path.join(dirpath, n), rdir).replace(os.sep, "/"))
        extra = STATE["faults"].get("extra_sibling")
        if extra:
            files.append(extra)
        body = json.dumps({"id": repo, "sha": commit,
                           "siblings": [{"rfilename": f} for f in sorted(files)]}).encode()
        self.send(200, {"Content-Type": "application/json"}, body, head)


    # --- upload side (huggingface_hub's hf_api.py / _commit_api.py / lfs.py call these) ---

    def do_POST(self):
        self.dispatch_write()

    def do_PUT(self):
        self.dispatch_write()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def json_reply(self, code, obj, ctype="application/json"):
        self.send(code, {"Content-Type": ctype}, json.dumps(obj).encode())

    def dispatch_write(self):
        self.record()
        body = self.read_body()
        path = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in path.path.split("/")[1:]]
        if take("fail500"):
            return self.send(500, {"Content-Type": "text/plain"}, b"injected failure")
        if self.role == "cdn":
            if self.command == "PUT" and len(parts) == 4 and parts[0] == "upload":
                return self.lfs_put("/".join(parts[1:3]), parts[3], body)
            return self.send(404, body=b"no such upload")
        if self.command != "POST":
            return self.send(405, body=b"method not allowed")
        if parts == ["api", "repos", "create"]:
            return self.create_repo(json.loads(body))
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload",
                                                                               "commit"):
            repo, rev = f"{parts[2]}/{parts[3]}", "/".join(parts[5:])
            if parts[4] == "preupload":
                return self.preupload(repo, rev, json.loads(body))
            return self.commit(repo, rev, body)
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:4] == ["info", "lfs"]:
            repo = f"{parts[0]}/{parts[1][:-4]}"
            if parts[4:] == ["objects", "batch"]:
                return self.lfs_batch(repo, json.loads(body))
            if parts[4:] == ["objects", "verify"]:
                return self.lfs_verify(repo, json.loads(body))
        return self.send(404, body=b"not found")

    def write_denied(self, repo):
        """401 without a token, 403 unless it is the write token (fault write_token, default
        hf_write_test)."""
        auth = self.headers.get("Authorization")
        if not auth:
            self.error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return True
        if auth != "Bearer " + STATE["faults"].get("write_token", "hf_write_test"):
            self.error(403, "Forbidden", f"You don't have the rights to create a model under the "
                       f"namespace \"{repo.split('/')[0]}\". Make sure your token has the `write` "
                       "role")
            return True
        return False

    def write_target(self, repo, rev):
        """The branch folder of repo, or None after answering 401/403/404."""
        if self.write_denied(repo):
            return None
        if not os.path.isdir(os.path.join(self.root, repo)):
            self.error(404, "RepoNotFound", f"Repository not found: {repo}")
            return None
        d = os.path.join(self.root, repo, rev)
        if "/" in rev or rev.startswith(".") or not os.path.isdir(d):
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return d

    def create_repo(self, req):
        name = req.get("name", "")
        repo = f"{req['organization']}/{name}" if req.get("organization") else name
        if "/" not in repo:
            repo = "user/" + repo
        if self.write_denied(repo):
            return
        d = os.path.join(self.root, repo)
        url = f"http://{self.headers.get('Host')}/{repo}"
        if os.path.isdir(d):
            return self.error(409, "Conflict", "You already created this model repo",
                              {"Content-Type": "application/json"})
        os.makedirs(os.path.join(d, "main"))
        with LOCK:
            STATE.setdefault("private", {})[repo] = bool(req.get("private"))
        return self.json_reply(200, {"url": url, "name": repo})

    def preupload(self, repo, rev, req):
        if self.write_target(repo, rev) is None:
            return
        out = []
        for f in req.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["path"].endswith(".safetensors") or b"\0" in sample
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False})
        return self.json_reply(200, {"files": out, "commitOid": self.branch_commit(repo, rev)})

    def lfs_path(self, repo, oid, part=False):
        """Where repo's LFS object oid is kept (".part" until verified)."""
        d = os.path.join(self.root, ".lfs", repo)
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, oid + (".part" if part else ""))

    def lfs_batch(self, repo, req):
        if self.write_target(repo, "main") is None:
            return
        host, objs = self.headers.get("Host"), []
        for o in req.get("objects", []):
            oid, size = o["oid"], int(o["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if take("batch_error"):
                entry["error"] = {"code": 422, "message": "object too large for this repo"}
            elif not os.path.isfile(self.lfs_path(repo, oid)):
                entry["actions"] = {
                    "upload": {"href": f"http://localhost:{self.cdn_port}/upload/{repo}/{oid}"
                                       f"?ticket=t-{oid[:12]}",
                               "header": {"X-Upload-Ticket": "ticket-" + oid[:12]}},
                    "verify": {"href": f"http://{host}/{repo}.git/info/lfs/objects/verify",
                               "header": {"X-Verify-Ticket": "verify-" + oid[:12]}}}
            objs.append(entry)
        return self.json_reply(200, {"transfer": "basic", "objects": objs},
                               "application/vnd.git-lfs+json")

    def lfs_put(self, repo, oid, data):
        if take("upload500"):
            return self.send(500, {"Content-Type": "text/plain"}, b"injected upload failure")
        # Like a presigned storage URL, the href carries its own credentials (huggingface_hub
        # sends no header with a single-part upload; ptm sends the batch's, as Git LFS says).
        if not oid.isalnum() or urllib.parse.urlsplit(self.path).query != f"ticket=t-{oid[:12]}":
            return self.send(403, body=b"no upload ticket")
        if take("corrupt_upload") and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]  # stored as is: verify must catch it
        elif hashlib.sha256(data).hexdigest() != oid:
            return self.send(400, body=b"body does not match the oid")
        with open(self.lfs_path(repo, oid, part=True), "wb") as f:
            f.write(data)
        return self.send(200)

    def lfs_verify(self, repo, req):
        if self.write_denied(repo):
            return
        oid = req.get("oid", "")
        part = self.lfs_path(repo, oid if oid.isalnum() else "x", part=True)
        data = open(part, "rb").read() if os.path.isfile(part) else None
        if data is None or hashlib.sha256(data).hexdigest() != oid or len(data) != req.get("size"):
            if data is not None:
                os.remove(part)
            return self.error(422, "VerifyFailed", f"object {oid} does not match its oid or size")
        os.replace(part, self.lfs_path(repo, oid))
        return self.json_reply(200, {"ok": True})

    def commit(self, repo, rev, body):
        d = self.write_target(repo, rev)
        if d is None:
            return
        if take("commit500"):  # as if it failed after applying: a client must not retry
            return self.send(500, {"Content-Type": "text/plain"}, b"injected commit failure")
        lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        if not lines or lines[0].get("key") != "header":
            return self.error(400, "BadRequest", "the first ndjson line must be the header")
        files = {}
        for x in lines[1:]:
            v = x["value"]
            if ".." in v["path"].split("/") or v["path"].startswith("/"):
                return self.error(400, "BadRequest", f"bad path {v['path']}")
            if x["key"] == "file":
                files[v["path"]] = base64.b64decode(v["content"])
            elif x["key"] == "lfsFile":
                blob = self.lfs_path(repo, v["oid"])
                if v.get("algo") != "sha256" or not os.path.isfile(blob):
                    return self.error(400, "BadRequest", f"lfs object {v['oid']} not uploaded")
                files[v["path"]] = open(blob, "rb").read()
            else:
                return self.error(400, "BadRequest", f"unknown key {x['key']}")
        with LOCK:
            for path, data in files.items():
                full = os.path.join(d, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(data)
            oid = hashlib.sha1(f"{repo}@{rev}@{time.time()}@{body[:64]}".encode()).hexdigest()
            with open(os.path.join(d, ".commit"), "w") as f:
                f.write(oid)
        url = f"http://{self.headers.get('Host')}/{repo}/commit/{oid}"
        return self.json_reply(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None,
                                     "summary": lines[0]["value"].get("summary", "")})

    def tree(self, repo, rev, head):
        """GET /api/models/{repo}/tree/{rev}?recursive=true, as snapshot_download lists a repo
        (files only, one page)."""
        found = self.repo_and_rev(repo, rev, head)
        if found is None:
            return
        out = []
        for dirpath, _, names in os.walk(found[0]):
            for n in sorted(names):
                if n.startswith("."):
                    continue
                full = os.path.join(dirpath, n)
                data = open(full, "rb").read()
                entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data),
                         "path": os.path.relpath(full, found[0]).replace(os.sep, "/")}
                if n.endswith(".safetensors"):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                    "pointerSize": 134}
                out.append(entry)
        self.send(200, {"Content-Type": "application/json"}, json.dumps(out).encode(), head)



class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up (the fault modes do it on purpose) are not news


def serve(root, timeout, die_with_parent):
    cdn_handler = type("CdnHandler", (Handler,), {"root": root, "role": "cdn"})
    cdn = Server(("127.0.0.1", 0), cdn_handler)
    hub_handler = type("HubHandler", (Handler,), {"root": root, "role": "hub",
                                                  "cdn_port": cdn.server_address[1]})
    hub = Server(("127.0.0.1", 0), hub_handler)
    for s in (hub, cdn):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"PORTS {hub.server_address[1]} {cdn.server_address[1]}", flush=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        if die_with_parent and os.getppid() == 1:  # the test that started us is gone
            break
    os._exit(0)


# --- test repos ---------------------------------------------------------------------------

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def write_st(path, tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, off, blobs = {}, 0, []
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def shard(src, out_dir, max_bytes, shard_names=None):
    header, data = read_st(src)
    tensors = [(k, v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in header.items() if k != "__metadata__"]
    groups, cur, size = [], [], 0
    for t in tensors:
        if cur and size + len(t[3]) > max_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += len(t[3])
    groups.append(cur)
    weight_map = {}
    for i, g in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_st(os.path.join(out_dir, name), g)
        for t in g:
            weight_map[t[0]] = (shard_names or {}).get(name, name)
    total = sum(len(t[3]) for t in tensors)
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)


def make_repos(fixtures, out):
    tiny = os.path.join(fixtures, "bert-tiny")

    def rev_dir(repo, rev):
        d = os.path.join(out, repo, rev)
        os.makedirs(d, exist_ok=True)
        return d

    d = rev_dir("acme/tiny", "main")
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(tiny, f), d)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True}, f)
    d = rev_dir("acme/tiny", "v2")
    shutil.copy(os.path.join(tiny, "model.safetensors"), d)
    cfg = json.load(open(os.path.join(tiny, "config.json")))
    cfg["ptm_test_revision"] = "v2"
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    d = rev_dir("acme/sharded", "main")
    shutil.copy(os.path.join(tiny, "config.json"), d)
    shard(os.path.join(tiny, "model.safetensors"), d, 20000)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    json.dump({"pooling_mode_mean_tokens": True}, open(os.path.join(d, "1_Pooling", "config.json"),
                                                       "w"))
    d = rev_dir("acme/hostile", "main")
    shutil.copy(os.path.join(tiny, "config.json"), d)
    shard(os.path.join(tiny, "model.safetensors"), d, 40000,
          {"model-00002-of-00003.safetensors": "../../../evil.safetensors"})
    d = rev_dir("acme/notmodel", "main")
    open(os.path.join(d, "README.md"), "w").write("# not a model\n")
    # A checkpoint in a subfolder whose weights exist only as a variant.
    d = os.path.join(rev_dir("acme/layout", "main"), "encoder")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(tiny, "config.json"), d)
    shutil.copy(os.path.join(tiny, "model.safetensors"), os.path.join(d, "model.fp16.safetensors"))


def main(argv):
    if len(argv) == 4 and argv[1] == "--make-repos":
        make_repos(argv[2], argv[3])
        return 0
    if len(argv) >= 2 and not argv[1].startswith("-"):
        timeout, die = 120.0, "--die-with-parent" in argv
        if "--timeout" in argv[:-1]:
            timeout = float(argv[argv.index("--timeout") + 1])
        if "--make-from" in argv[:-1]:
            make_repos(argv[argv.index("--make-from") + 1], argv[1])
        serve(argv[1], timeout, die)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
