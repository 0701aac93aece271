#!/bin/sh
# The deployment files of sh/aci (no Azure is reachable here, so they are checked as files): both
# are well-formed JSON; the ARM template declares every parameter it uses and uses every parameter
# it declares, its expressions are balanced, EncfsSideCarArgs is a secureString given as a secure
# value; the container group is confidential with the ccePolicy parameter and the user-assigned
# identity; the sidecar runs the image's entry point (/encfs.sh, the Dockerfile's ENTRYPOINT),
# privileged, with only environment variables sh/encfs.sh reads, EncfsSideCarArgs among them; the
# application shares its emptyDir volume; policy-in.json allows exactly those containers (the same
# command lines, mounts, an environment rule for every variable the template sets, the
# application waiting for the mount point it reads).
# shellcheck disable=SC1091,SC2154 # lib.sh is found at run time; it sets T, out, err and rc
. "$ENCFS_SRC/test/lib.sh"

ACI=$ENCFS_SRC/sh/aci
"$PYTHON" -c 'import sys' 2>/dev/null || skip_all "python3 is not installed (make deps)"

# checks.py prints one line per check, "0|what" or "1|what|got|want"; a crash is a failed check
cat >"$T/checks.py" <<'EOF'
import json, re, sys

aci, encfs_sh, dockerfile = sys.argv[1:4]

def check(cond, what, got="", want=""):
    print("%d|%s|%s|%s" % (0 if cond else 1, what, json.dumps(got), json.dumps(want)))

def load(name):
    try:
        with open(aci + "/" + name) as f:
            d = json.load(f, object_pairs_hook=no_duplicates)
        check(isinstance(d, dict), name + " is well-formed JSON (an object, no duplicate keys)")
        return d
    except (ValueError, OSError) as e:
        check(False, name + " is well-formed JSON", str(e), "JSON")
        sys.exit(0)

def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys %s" % sorted(k for k in set(keys) if keys.count(k) > 1))
    return dict(pairs)

def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)

tpl = load("aci-arm-template.json")
pol = load("policy-in.json")

# --- the template: parameters and expressions ---
params = tpl.get("parameters", {})
check(tpl.get("$schema", "").startswith("https://schema.management.azure.com/schemas/")
      and "deploymentTemplate.json" in tpl.get("$schema", "") and "contentVersion" in tpl,
      "the template has an ARM deployment template $schema and a contentVersion")
types = {n: p.get("type") for n, p in params.items()}
check(all(t in ("string", "secureString", "int", "bool", "object", "secureObject", "array") for t in types.values()),
      "every parameter has an ARM type", types)
body = {k: v for k, v in tpl.items() if k != "parameters"}
used = set()
bad = []
for s in strings(body):
    if s.startswith("["):
        # an expression: balanced parentheses and quotes, ends with ]
        depth, quoted = 0, False
        for c in s[1:-1]:
            if c == "'":
                quoted = not quoted
            elif not quoted:
                depth += {"(": 1, ")": -1}.get(c, 0)
                if depth < 0:
                    break
        if not s.endswith("]") or depth != 0 or quoted:
            bad.append(s)
        used |= set(re.findall(r"parameters\('([A-Za-z0-9_]+)'\)", s))
# defaults may use other parameters too
for p in params.values():
    for s in strings(p.get("defaultValue", "")):
        used |= set(re.findall(r"parameters\('([A-Za-z0-9_]+)'\)", s))
check(not bad, "every template expression is balanced", bad, [])
check(sorted(used - set(params)) == [], "every parameter the template uses is declared", sorted(used - set(params)), [])
check(sorted(set(params) - used) == [], "every declared parameter is used", sorted(set(params) - used), [])
need = ["ccePolicy", "encfsSideCarArgs", "managedIdentity", "sidecarImage", "applicationImage"]
check(all(n in params for n in need), "parameters for the image, the identity, the policy, EncfsSideCarArgs and the application",
      sorted(params), need)
check(types.get("encfsSideCarArgs") == "secureString", "EncfsSideCarArgs is a secureString parameter",
      types.get("encfsSideCarArgs"), "secureString")

# --- the container group ---
groups = [r for r in tpl.get("resources", []) if r.get("type") == "Microsoft.ContainerInstance/containerGroups"]
check(len(groups) == 1, "one container group resource", len(groups), 1)
g = groups[0] if groups else {}
props = g.get("properties", {})
check(props.get("sku") == "Confidential", "its sku is Confidential", props.get("sku"), "Confidential")
check(props.get("confidentialComputeProperties", {}).get("ccePolicy") == "[parameters('ccePolicy')]",
      "its ccePolicy is the ccePolicy parameter", props.get("confidentialComputeProperties"))
ident = g.get("identity", {})
check(ident.get("type") == "UserAssigned" and list(ident.get("userAssignedIdentities", {})) == ["[parameters('managedIdentity')]"],
      "it runs with the user-assigned managed identity of the parameter", ident)
containers = {c.get("name"): c.get("properties", {}) for c in props.get("containers", [])}
sidecars = [c for c in containers.values() if c.get("image") == "[parameters('sidecarImage')]"]
apps = [c for c in containers.values() if c.get("image") == "[parameters('applicationImage')]"]
check(len(sidecars) == 1 and len(apps) == 1 and len(containers) == 2,
      "two containers: the sidecar (sidecarImage) and the application (applicationImage)", sorted(containers))
side = sidecars[0] if sidecars else {}
app = apps[0] if apps else {}

# what the image runs and what encfs.sh reads
m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", open(dockerfile).read(), re.M)
entry = json.loads(m.group(1)) if m else None
check(entry == ["/encfs.sh"], "the Dockerfile's ENTRYPOINT is /encfs.sh", entry, ["/encfs.sh"])
check(re.search(r"^RUN ln -s /usr/bin/encfs.sh /encfs.sh$", open(dockerfile).read(), re.M) is not None,
      "the Dockerfile links /encfs.sh to the installed encfs.sh")
# encfs.sh without its comments (whole-line ones and " # ..." after code)
script = "\n".join(re.sub(r"(^|\s)#\s.*$", "", l) for l in open(encfs_sh).read().splitlines()
                   if not l.lstrip().startswith("#"))
reads = lambda name: re.search(r"\$\{?%s\b" % re.escape(name), script) is not None
check(reads("EncfsSideCarArgs"), "sh/encfs.sh reads $EncfsSideCarArgs")
check(side.get("command") == entry, "the sidecar's command is the image's entry point", side.get("command"), entry)
env = side.get("environmentVariables", [])
names = [e.get("name") for e in env]
check("EncfsSideCarArgs" in names, "the sidecar gets EncfsSideCarArgs", names, "EncfsSideCarArgs")
check(all(reads(n) for n in names), "every variable the sidecar gets is one sh/encfs.sh reads",
      [n for n in names if not reads(n)], [])
args = [e for e in env if e.get("name") == "EncfsSideCarArgs"]
check(args and args[0].get("secureValue") == "[parameters('encfsSideCarArgs')]" and "value" not in args[0],
      "EncfsSideCarArgs is the encfsSideCarArgs parameter, as a secure value", args)
check(side.get("securityContext", {}).get("privileged") is True, "the sidecar is privileged (dm-crypt, mount)",
      side.get("securityContext"))
vols = {v.get("name"): v for v in props.get("volumes", [])}
smounts = side.get("volumeMounts", [])
amounts = app.get("volumeMounts", [])
check(len(smounts) == 1 and smounts == amounts, "the application mounts the sidecar's volume at the same path",
      amounts, smounts)
mpath = smounts[0].get("mountPath") if smounts else None
vol = vols.get(smounts[0].get("name")) if smounts else None
check(vol is not None and vol.get("emptyDir") == {}, "the shared volume is an emptyDir", vol)
cmd = app.get("command", [])
read = [w for c in cmd for w in re.findall(r"(/[^\s;&|]+)", c) if mpath and w.startswith(mpath + "/")]
check(read == ["/mnt/remote/share/test.txt"] and mpath == "/mnt/remote",
      "the application reads /mnt/remote/share/test.txt, in the volume at /mnt/remote", read, ["/mnt/remote/share/test.txt"])

# --- policy-in.json: the same containers ---
check(pol.get("version") == "1.0", "policy-in.json is version 1.0 of the acipolicygen input", pol.get("version"))
pcs = pol.get("containers", [])
check(len(pcs) == 2, "the policy allows two containers", len(pcs), 2)
pside = [c for c in pcs if c.get("command") == side.get("command")]
papp = [c for c in pcs if c.get("command") == cmd]
check(len(pside) == 1 and len(papp) == 1, "the policy allows the template's two command lines exactly",
      [c.get("command") for c in pcs], [side.get("command"), cmd])
pside = pside[0] if pside else {}
papp = papp[0] if papp else {}
check(pside.get("allow_elevated") is True, "the policy lets the sidecar run privileged", pside.get("allow_elevated"))
check(papp.get("containerImage") == params.get("applicationImage", {}).get("defaultValue"),
      "the policy's application image is the template's default", papp.get("containerImage"),
      params.get("applicationImage", {}).get("defaultValue"))
rules = {r.get("name"): r for r in pside.get("environmentVariables", [])}
check(sorted(rules) == sorted(names), "the policy has a rule for each variable the sidecar gets, no other",
      sorted(rules), sorted(names))
r = rules.get("EncfsSideCarArgs", {})
sample = "eyJhenVyZV9maWxlc3lzdGVtcyI6IFtdfQ=="
check(r.get("strategy") == "re2" and re.fullmatch(r.get("value", ""), sample) is not None,
      "its EncfsSideCarArgs rule is a re2 pattern that any configuration matches", r)
for who, c in (("sidecar", pside), ("application", papp)):
    pm = [(m.get("mountType"), m.get("mountPath"), m.get("readonly")) for m in c.get("mounts", [])]
    check(pm == [("emptyDir", mpath, False)], "the policy mounts the %s's emptyDir at %s" % (who, mpath), pm,
          [("emptyDir", mpath, False)])
check(papp.get("wait_mount_points") == ["/mnt/remote/share"],
      "the application waits for the mount point it reads, /mnt/remote/share", papp.get("wait_mount_points"))
EOF

"$PYTHON" "$T/checks.py" "$ACI" "$ENCFS_SRC/sh/encfs.sh" "$ENCFS_SRC/Dockerfile" >"$T/checks.out" 2>"$T/checks.err"
prc=$?
while IFS='|' read -r r what got want; do
	ok "$r" "$what"
	[ "$r" -eq 0 ] || printf '# got:  %s\n# want: %s\n' "$got" "$want"
done <"$T/checks.out"
is "$prc:$(cat "$T/checks.err")" "0:" "the checks ran to their end"
done_testing
