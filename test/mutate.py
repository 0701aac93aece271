#!/usr/bin/python3
"""make mutate: is every mutation of test/mutations.txt caught by the tests it names?

Copies the tree (tracked files and new ones not ignored: the working tree as it is) to a temporary
directory, builds it, runs the named tests once unchanged (they must pass, or nothing below means
anything), then for each mutation: applies it (its "-" lines must occur exactly once in its file),
builds, runs its tests, and puts the file back.  A mutation is

  KILLED    a test failed (the table names which)
  SURVIVED  every test passed: the suite cannot tell the broken code from the real one
  STALE     its "-" lines are not in the file exactly once (the code moved on: update the entry)
  NOBUILD   the mutated tree does not compile (a mutation must build to mean anything)

Exit status 0 only when every mutation selected is KILLED.

usage: test/mutate.py [--keep] [--list] [NAME...]     (make mutate [MUTATIONS="NAME..."])
  NAME...   only these mutations (shell patterns allowed)
  --list    print the mutations, whether each still applies, and the tests each names; run nothing
  --keep    keep the temporary tree (its path is printed)
Environment: MUTATE_TIMEOUT (seconds a mutation's test run may take, default 900), TMPDIR.
"""
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(SRC, "test", "mutations.txt")


def parse(path):
    """The entries of the mutations file, in order."""
    entries, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            where = "%s:%d" % (path, n)
            if line.startswith("= "):
                cur = {"name": line[2:].strip(), "file": None, "tests": [], "why": "", "old": [],
                       "new": [], "at": where}
                entries.append(cur)
            elif line.startswith("#") or not line.strip():
                continue
            elif cur is None:
                sys.exit("%s: a line before the first \"= NAME\"" % where)
            elif line.startswith("file: "):
                cur["file"] = line[6:].strip()
            elif line.startswith("tests: "):
                cur["tests"] = line[7:].split()
            elif line.startswith("why: "):
                cur["why"] = line[5:].strip()
            elif line == "-" or line.startswith("- "):
                cur["old"].append(line[2:])
            elif line == "+" or line.startswith("+ "):
                cur["new"].append(line[2:])
            else:
                sys.exit("%s: not an entry line: %r" % (where, line))
    names = set()
    for e in entries:
        if not e["file"] or not e["tests"] or not e["old"]:
            sys.exit("%s: %s needs file:, tests: and \"-\" lines" % (e["at"], e["name"]))
        if e["name"] in names:
            sys.exit("%s: %s twice" % (e["at"], e["name"]))
        names.add(e["name"])
    return entries


def copy_tree(dst):
    """The working tree (tracked and untracked-but-not-ignored files) into dst/tree; ../shared
    and test/node/node_modules are linked, not copied."""
    files = subprocess.run(["git", "-C", SRC, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    tree = os.path.join(dst, "tree")
    for rel in filter(None, files):
        s = os.path.join(SRC, rel)
        if not os.path.lexists(s):
            continue  # deleted in the working tree
        d = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d, follow_symlinks=False)
    shared = os.path.join(os.path.dirname(SRC), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(dst, "shared"))
    nm = os.path.join(SRC, "test", "node", "node_modules")
    if os.path.isdir(nm) and not os.path.lexists(os.path.join(tree, "test", "node", "node_modules")):
        os.symlink(os.path.realpath(nm), os.path.join(tree, "test", "node", "node_modules"))
    return tree


def make(tree, *args, timeout=None):
    """Runs make in tree; (exit status, output)."""
    try:
        p = subprocess.run(["make", "--no-print-directory", "-C", tree] + list(args), capture_output=True,
                           timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as t:
        return 124, ((t.stdout or b"") + (t.stderr or b"")).decode(errors="replace") + "\n(timed out)"


def run_tests(tree, tests, timeout):
    """Runs the tests through make check-run; (passed, the tests that failed or "timeout")."""
    rc, out = make(tree, "check-run", "STRICT=0", "PROVE_FLAGS=", "CHECK_TESTS=" + " ".join(tests), timeout=timeout)
    if rc == 124 and out.endswith("(timed out)"):
        return False, ["timeout"], out
    failed = []
    for line in out.splitlines():
        for t in tests:
            if line.startswith(t + " ") and "(Wstat" in line:
                failed.append(t)
    if rc != 0 and not failed:
        failed = ["make check-run: exit %d" % rc]
    return rc == 0, failed, out


def main():
    args = sys.argv[1:]
    keep = "--keep" in args
    only_list = "--list" in args
    pats = [a for a in args if not a.startswith("--")]
    entries = parse(LIST)
    if pats:
        entries = [e for e in entries if any(fnmatch.fnmatch(e["name"], p) for p in pats)]
        if not entries:
            sys.exit("mutate: no mutation named %s" % " ".join(pats))
    if only_list:
        for e in entries:
            try:
                n = open(os.path.join(SRC, e["file"]), encoding="utf-8").read().count("\n".join(e["old"]) + "\n")
            except OSError:
                n = 0
            print("%-34s %-6s %-30s %s" % (e["name"], "ok" if n == 1 else "STALE", e["file"], " ".join(e["tests"])))
        return 0
    timeout = int(os.environ.get("MUTATE_TIMEOUT", "900"))
    tmp = tempfile.mkdtemp(prefix="encfs-mutate.")
    print("mutate: a copy of the tree in %s" % tmp, flush=True)
    try:
        tree = copy_tree(tmp)
        rc, out = make(tree, "-j2", "tests")
        if rc != 0:
            print(out[-4000:])
            sys.exit("mutate: the unmutated tree does not build")
        tests = sorted({t for e in entries for t in e["tests"]})
        t0 = time.time()
        passed, failed, out = run_tests(tree, tests, timeout * 2)
        if not passed:
            print(out[-6000:])
            sys.exit("mutate: the unmutated tree fails %s: fix that first" % ", ".join(failed))
        print("mutate: baseline passes %d tests in %d s" % (len(tests), time.time() - t0), flush=True)

        results = []
        for e in entries:
            path = os.path.join(tree, e["file"])
            t0 = time.time()
            try:
                orig = open(path, encoding="utf-8").read()
            except OSError:
                orig = None
            old, new = "\n".join(e["old"]) + "\n", "\n".join(e["new"]) + ("\n" if e["new"] else "")
            if orig is None or orig.count(old) != 1:
                n = 0 if orig is None else orig.count(old)
                results.append((e, "STALE", "its lines occur %d times in %s" % (n, e["file"]), 0))
                print("mutate: %-34s STALE" % e["name"], flush=True)
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig.replace(old, new))
            try:
                rc, out = make(tree, "-j2", "tests")
                if rc != 0:
                    lines = [l for l in out.splitlines() if "error" in l]
                    status, detail = "NOBUILD", (lines[0] if lines else "make tests: exit %d" % rc)[:200]
                else:
                    passed, failed, out = run_tests(tree, e["tests"], timeout)
                    status = "SURVIVED" if passed else "KILLED"
                    detail = "" if passed else "by " + ", ".join(failed)
            finally:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(orig)
            results.append((e, status, detail, time.time() - t0))
            print("mutate: %-34s %-8s %s (%d s)" % (e["name"], status, detail, time.time() - t0), flush=True)

        print()
        print("| mutation | file | result | tests run | |")
        print("|---|---|---|---|---|")
        for e, status, detail, secs in results:
            print("| %s: %s | %s | %s | %s | %s |" % (e["name"], e["why"], e["file"], status, " ".join(e["tests"]),
                                                     detail))
        bad = [r for r in results if r[1] != "KILLED"]
        print("\nmutate: %d of %d killed%s" % (len(results) - len(bad), len(results),
                                               "" if not bad else "; not killed: " + ", ".join(
                                                   "%s (%s)" % (r[0]["name"], r[1]) for r in bad)))
        return 1 if bad else 0
    finally:
        if keep:
            print("mutate: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
