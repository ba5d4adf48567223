#!/usr/bin/env python3
"""check_hub_interop.py - dev-time check that ptm and huggingface_hub share one cache.

Starts tests/hub_server.py (a local Hub stand-in on 127.0.0.1), then:
  1. ptm downloads repos; huggingface_hub reads every file back with local_files_only=True
     (hf_hub_download, snapshot_download, try_to_load_from_cache for a .no_exist marker) and
     scan_cache_dir() sees the same repos and sizes as `ptm scan-cache --json`.
  2. huggingface_hub downloads a repo from the same server; ptm loads it offline
     (HF_HUB_OFFLINE=1 `ptm info`, `ptm download --local-files-only`).
  3. Uploads: `ptm push` a saved model, huggingface_hub's snapshot_download reads it back;
     HfApi.upload_folder (LFS path: HF_HUB_DISABLE_XET=1, the server speaks no Xet) pushes
     the same folder, `ptm download` reads it back; the server's log shows which endpoints
     each client used.
Needs `pip install huggingface_hub` (comes with transformers). Usage:
  python3 tools/check_hub_interop.py [path/to/ptm]      (default build/bin/ptm)
Prints one line per check and "interop: ok" or exits non-zero naming the failure.
"""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def ptm(binary, env, *args):
    r = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bin", "ptm")
    tmp = tempfile.mkdtemp(prefix="ptm_hub_interop_")
    repos = os.path.join(tmp, "repos")
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "hub_server.py"), repos,
                               "--make-from", os.path.join(ROOT, "tests", "fixtures"),
                               "--timeout", "300"], stdout=subprocess.PIPE, text=True)
    try:
        hub_port = int(server.stdout.readline().split()[1])
        endpoint = f"http://127.0.0.1:{hub_port}"
        run(binary, tmp, repos, endpoint)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("interop: ok")


def run(binary, tmp, repos, endpoint):
    cache1, cache2 = os.path.join(tmp, "cache1"), os.path.join(tmp, "cache2")
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_CACHE=cache1, HF_HOME=os.path.join(tmp, "h"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", PTM_LOG="error")
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    # huggingface_hub reads its constants at import time: set the environment first.
    os.environ.update({k: v for k, v in env.items() if k.startswith("HF_")})
    os.environ.pop("HF_TOKEN", None)
    os.environ.pop("HF_HUB_OFFLINE", None)
    import huggingface_hub as hh
    from huggingface_hub import file_download

    print(f"huggingface_hub {hh.__version__}, server {endpoint}")
    # 1. ptm writes, huggingface_hub reads.
    rc, out, err = ptm(binary, env, "download", "acme/sharded")
    check(rc == 0, f"ptm download acme/sharded -> {out or err}")
    rc, out2, err = ptm(binary, env, "info", "acme/tiny")  # from_pretrained's file set
    check(rc == 0, f"ptm info acme/tiny (downloads via from_pretrained) {err}")
    files = sorted(os.path.relpath(os.path.join(d, f), out)
                   for d, _, fs in os.walk(out) for f in fs)
    for f in files:
        p = hh.hf_hub_download("acme/sharded", f, cache_dir=cache1, local_files_only=True)
        check(filecmp.cmp(p, os.path.join(repos, "acme/sharded/main", f), shallow=False),
              f"hf_hub_download(acme/sharded, {f}, local_files_only=True) reads ptm's blob")
    snap = hh.snapshot_download("acme/sharded", cache_dir=cache1, local_files_only=True)
    check(os.path.realpath(snap) == os.path.realpath(out),
          "snapshot_download(local_files_only=True) finds ptm's snapshot")
    p = hh.hf_hub_download("acme/tiny", "model.safetensors", cache_dir=cache1,
                           local_files_only=True)
    check(filecmp.cmp(p, os.path.join(repos, "acme/tiny/main/model.safetensors"), shallow=False),
          "hf_hub_download(acme/tiny, model.safetensors) reads the blob ptm fetched for from_pretrained")
    marker = hh.try_to_load_from_cache("acme/tiny", "vocab.txt", cache_dir=cache1)
    check(marker is file_download._CACHED_NO_EXIST,
          "try_to_load_from_cache(vocab.txt) sees ptm's .no_exist marker")
    info = hh.scan_cache_dir(cache1)
    check(not info.warnings, f"scan_cache_dir: no warnings {info.warnings}")
    rc, out, err = ptm(binary, env, "scan-cache", "--json")
    mine = {r["repo_id"]: r["size_on_disk"] for r in json.loads(out)}
    theirs = {r.repo_id: r.size_on_disk for r in info.repos}
    check(mine == theirs, f"ptm scan-cache sizes {mine} == scan_cache_dir's {theirs}")

    # 2. huggingface_hub writes, ptm reads offline.
    for f in ("config.json", "model.safetensors"):
        hh.hf_hub_download("acme/tiny", f, cache_dir=cache2)
    hh.hf_hub_download("acme/tiny", "config.json", cache_dir=cache2, revision="v2")
    env2 = dict(env, HF_HUB_CACHE=cache2, HF_HUB_OFFLINE="1")
    rc, out, err = ptm(binary, env2, "info", "acme/tiny")
    check(rc == 0, f"ptm info acme/tiny (offline) loads huggingface_hub's download {err}")
    rc, out, err = ptm(binary, env2, "download", "acme/tiny", "--include", "model.safetensors")
    check(rc == 0 and os.path.isfile(os.path.join(out, "model.safetensors")),
          f"ptm download --include model.safetensors (offline) finds it: {out or err}")
    rc, out, err = ptm(binary, env2, "download", "acme/tiny", "--revision", "v2", "--include",
                       "model.safetensors")
    check(rc != 0 and "model.safetensors" in err and "offline" in err,
          f"offline, v2 lacks model.safetensors in the cache: ptm says so ({err})")

    check_uploads(binary, tmp, env, endpoint)


def same_tree(a, b):
    """The relative paths of the files under a and under b, and whether their bytes agree."""
    fa = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    fb = sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(b) for f in fs)
    return fa, fa == fb and all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)
                                for f in fa)


def endpoints_used(endpoint, since):
    """How many requests the server logged, and the distinct "role method path" of those after
    the first since."""
    import urllib.request
    log = json.load(urllib.request.urlopen(f"{endpoint}/_ctl/log"))
    return len(log), sorted({f"{e['role']} {e['method']} {e['path'].split('?')[0]}"
                             for e in log[since:]})


def check_uploads(binary, tmp, env, endpoint):
    import huggingface_hub as hh
    saved = os.path.join(tmp, "saved")
    rc, out, err = ptm(binary, env, "save", os.path.join(ROOT, "tests", "fixtures", "bert-tiny"),
                       saved)
    check(rc == 0, f"ptm save bert-tiny {err}")
    wenv = dict(env, HF_TOKEN="hf_write_test")
    # 3a. ptm pushes, huggingface_hub downloads.
    n0, _ = endpoints_used(endpoint, 0)
    rc, out, err = ptm(binary, wenv, "push", saved, "carol/from-ptm", "--message", "from ptm")
    check(rc == 0 and "/carol/from-ptm/commit/" in out, f"ptm push -> {out or err}")
    n1, used = endpoints_used(endpoint, n0)
    print("     ptm push used: " + "; ".join(used))
    snap = hh.snapshot_download("carol/from-ptm", cache_dir=os.path.join(tmp, "cache3"))
    files, same = same_tree(saved, snap)
    check(same, f"snapshot_download(carol/from-ptm) gives back ptm's files {files}")
    # 3b. huggingface_hub pushes, ptm downloads.
    n1, _ = endpoints_used(endpoint, 0)
    api = hh.HfApi(endpoint=endpoint, token="hf_write_test")
    api.create_repo("carol/from-hf", exist_ok=True)
    info = api.upload_folder(folder_path=saved, repo_id="carol/from-hf", commit_message="from hf")
    check("/carol/from-hf/commit/" in info.commit_url, f"HfApi.upload_folder -> {info.commit_url}")
    _, used = endpoints_used(endpoint, n1)
    print("     upload_folder used: " + "; ".join(used))
    rc, out, err = ptm(binary, dict(env, HF_HUB_CACHE=os.path.join(tmp, "cache4")), "download",
                       "carol/from-hf")
    files, same = rc == 0 and same_tree(saved, out) or ([], False)
    check(same, f"ptm download carol/from-hf gives back upload_folder's files {files} {err}")
    # 3c. ptm pushes the same files again onto huggingface_hub's commit: no LFS bytes move.
    n2, _ = endpoints_used(endpoint, 0)
    rc, out, err = ptm(binary, wenv, "push", saved, "carol/from-hf")
    _, used = endpoints_used(endpoint, n2)
    check(rc == 0 and not any(u.startswith("cdn PUT") for u in used),
          f"ptm push onto upload_folder's objects uploads no LFS bytes ({out or err})")


if __name__ == "__main__":
    main()
