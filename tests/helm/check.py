#!/usr/bin/env python3
"""Helpers for scripts/helm-test: split, inspect and rewrite `helm template` output.

Each subcommand prints what it found; a failed expectation exits 1 with a message on stderr.
Runs in the venv that scripts/helm-test makes (PyYAML, jsonschema from kubernetes-validate).
"""
import json
import os
import re
import sys

import yaml

CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
POD = "/etc/gatehouse"


def docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def dump(objs, path):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(objs, f, sort_keys=False, allow_unicode=True)


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def split(rendered, core_out, crd_out):
    """Kubernetes built-in kinds to core_out, CRD-backed kinds (ServiceMonitor) to crd_out."""
    ds = docs(rendered)
    core = [d for d in ds if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    crd = [d for d in ds if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    dump(core, core_out)
    dump(crd, crd_out)
    print(f"{len(core)} built-in objects, {len(crd)} custom resources")


def servicemonitor(crd_file, schema_file):
    """Validates ServiceMonitors against a strict subset of the monitoring.coreos.com/v1 CRD."""
    import jsonschema

    with open(schema_file, encoding="utf-8") as f:
        schema = json.load(f)
    n = 0
    for d in docs(crd_file):
        jsonschema.validate(d, schema)
        n += 1
    print(f"{n} ServiceMonitor(s) valid")


def assert_workload(rendered):
    """The Deployment's hardening, probes and checksum annotations."""
    ds = docs(rendered)
    deps = [d for d in ds if d["kind"] == "Deployment"]
    if len(deps) != 1:
        die(f"expected one Deployment, got {len(deps)}")
    dep = deps[0]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    psc = spec.get("securityContext", {})
    problems = []
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    (c,) = [c for c in spec["containers"] if c["name"] == "gatehouse"]
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append("capabilities are not drop [ALL]")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problems.append("liveness probe is not /healthz")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problems.append("readiness probe is not /readyz")
    if not c.get("resources", {}).get("requests"):
        problems.append("no resource requests")
    ann = pod["metadata"].get("annotations", {})
    for key in ("checksum/config", "checksum/secret"):
        if not re.fullmatch(r"[0-9a-f]{64}", str(ann.get(key, ""))):
            problems.append(f"no {key} annotation")
    if spec.get("serviceAccountName") not in {
        d["metadata"]["name"] for d in ds if d["kind"] == "ServiceAccount"
    } and not os.environ.get("EXTERNAL_SA"):
        problems.append("the pod's ServiceAccount is not rendered by the chart")
    if problems:
        die("; ".join(problems))
    print("non-root, read-only root, RuntimeDefault seccomp, no capabilities, probes, checksums")


def checksum(rendered):
    (dep,) = [d for d in docs(rendered) if d["kind"] == "Deployment"]
    print(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def local_config(rendered, outdir, *mappings):
    """Writes the chart's config as a file gatehouse can read here.

    The ConfigMap's files and the chart Secret's keys are written under outdir, and every
    /etc/gatehouse/... path in the config is rewritten to them. Extra mappings POD_PATH=LOCAL
    (for Secrets the chart does not render: TLS, kubeconfig, existingSecret) win; `listen=ADDR`
    replaces the listen address. Nothing else is changed.
    """
    ds = docs(rendered)
    (cm,) = [d for d in ds if d["kind"] == "ConfigMap"]
    secrets = [d for d in ds if d["kind"] == "Secret"]
    os.makedirs(outdir, exist_ok=True)
    files = {}
    for name, text in cm["data"].items():
        files[f"{POD}/config/{name}"] = text.encode()
    import base64

    for s in secrets:
        for name, b64 in s.get("data", {}).items():
            files[f"{POD}/secret/{name}"] = base64.b64decode(b64)
    mapped = {}
    listen = None
    for m in mappings:
        k, v = m.split("=", 1)
        if k == "listen":
            listen = v
        else:
            mapped[k] = v
    for pod_path, content in files.items():
        local = os.path.join(outdir, pod_path.lstrip("/").replace("/", "_"))
        with open(local, "wb") as f:
            f.write(content)
        mapped.setdefault(pod_path, local)
    config = yaml.safe_load(cm["data"]["config.yaml"])

    def rewrite(v):
        if isinstance(v, dict):
            return {k: rewrite(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rewrite(x) for x in v]
        if isinstance(v, str) and v.startswith(POD + "/"):
            if v not in mapped:
                die(f"the config names {v}, which neither the chart nor a mapping provides")
            return mapped[v]
        return v

    # Only the known path keys are rewritten, so parameter values are never touched.
    for section, key in [("tls", "certFile"), ("tls", "keyFile"), ("kubernetes", "kubeconfig"),
                         ("oidc", "caFile"), ("admin", "passwordHashFile"),
                         ("admin", "tokenSigningKeyFile"), ("oidc", "clientSecretFile"),
                         ("session", "keyFile"), ("authentication", "configFile")]:
        if key in config.get(section, {}):
            config[section][key] = rewrite(config[section][key])
    if "publicCaFile" in config:
        config["publicCaFile"] = rewrite(config["publicCaFile"])
    if listen:
        config["listen"] = listen
    out = os.path.join(outdir, "config.yaml")
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=True)
    print(out)


def secret_wiring(rendered, browser):
    """Every file the config names under /etc/gatehouse/secret is projected from the mounted
    Secret (and present in the chart's Secret when the chart renders it), nothing else is
    projected, and browser sign-in (browser=on|off) is wired or absent: oidc.clientSecretFile and
    session.keyFile name the keys oidc-client-secret and session-key."""
    ds = docs(rendered)
    (cm,) = [d for d in ds if d["kind"] == "ConfigMap"]
    (dep,) = [d for d in ds if d["kind"] == "Deployment"]
    secrets = [d for d in ds if d["kind"] == "Secret"]
    config = yaml.safe_load(cm["data"]["config.yaml"])
    problems = []
    want_browser = {"oidc.clientSecretFile": f"{POD}/secret/oidc-client-secret",
                    "session.keyFile": f"{POD}/secret/session-key"}
    got_browser = {k: config.get(k.split(".")[0], {}).get(k.split(".")[1]) for k in want_browser}
    if browser == "on" and got_browser != want_browser:
        problems.append(f"browser sign-in: config has {got_browser}, want {want_browser}")
    if browser == "off" and any(got_browser.values()):
        problems.append(f"browser sign-in is off, but the config has {got_browser}")
    named = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, str) and v.startswith(f"{POD}/secret/"):
            named.add(v[len(f"{POD}/secret/"):])

    walk({k: config.get(k) for k in ("admin", "oidc", "session")})
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "gatehouse"]
    mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == f"{POD}/secret"]
    vols = [v for v in spec.get("volumes", []) if v["name"] == "secret"]
    if not named:
        if mounts or vols:
            problems.append("a secret volume is mounted, but the config names no file in it")
    elif len(mounts) != 1 or len(vols) != 1 or mounts[0]["name"] != "secret" or not mounts[0].get("readOnly"):
        problems.append(f"the config names {sorted(named)}, but no read-only secret volume is mounted at {POD}/secret")
    else:
        items = {i["key"]: i["path"] for i in vols[0]["secret"].get("items", [])}
        if items != {n: n for n in named}:
            problems.append(f"the secret volume projects {items}, the config names {sorted(named)}")
        name = vols[0]["secret"]["secretName"]
        chart = [s for s in secrets if s["metadata"]["name"] == name]
        if chart:
            keys = set(chart[0].get("data", {}))
            if keys != named:
                problems.append(f"the chart's Secret {name} has keys {sorted(keys)}, the config names {sorted(named)}")
        elif secrets:
            problems.append(f"the chart renders Secrets {[s['metadata']['name'] for s in secrets]} but mounts {name}")
    if problems:
        die("\n".join(problems))
    print(f"secret files named by the config and projected: {sorted(named) or 'none'}; browser sign-in {browser}")


def extract_config(rendered, out):
    """The ConfigMap's config.yaml, byte for byte."""
    (cm,) = [d for d in docs(rendered) if d["kind"] == "ConfigMap"]
    with open(out, "w", encoding="utf-8") as f:
        f.write(cm["data"]["config.yaml"])
    print(out)


def compare_parameters(values_file, check_json):
    """The server's view of the parameters equals the values, exactly."""
    with open(values_file, encoding="utf-8") as f:
        want = yaml.safe_load(f)["oidc"]
    with open(check_json, encoding="utf-8") as f:
        got = json.load(f)["oidc"]
    problems = []
    wp, gp = want.get("additionalParameters", {}), got["additionalParameters"]
    for k in sorted(set(wp) | set(gp)):
        if wp.get(k) != gp.get(k):
            problems.append(f"additionalParameters[{k!r}]: values {wp.get(k)!r}, server {gp.get(k)!r}")
    wu = {k: {"pattern": (v or {}).get("pattern")} for k, v in want.get("userParameters", {}).items()}
    if wu != got["userParameters"]:
        problems.append(f"userParameters: values {wu!r}, server {got['userParameters']!r}")
    if problems:
        die("\n".join(problems))
    print(f"{len(wp)} additionalParameters and {len(wu)} userParameters read back exactly")


def rbac(rendered, out):
    """The ServiceAccount and RBAC objects; prints one line per rule (kind/name#index: rule)."""
    objs = [d for d in docs(rendered) if d["kind"] in RBAC_KINDS]
    dump(objs, out)
    for d in objs:
        for i, r in enumerate(d.get("rules", [])):
            ns = d["metadata"].get("namespace", "")
            ref = f"{d['kind']}/{ns}/{d['metadata']['name']}#{i}"
            print(f"{ref}\t{json.dumps(r, separators=(',', ':'))}")
            # A rule naming several resources (the extra keys): each one is needed too.
            if len(r.get("resources", [])) > 1:
                for res in r["resources"]:
                    print(f"{ref}/{res}\t{json.dumps({'resource': res, 'verbs': r['verbs']}, separators=(',', ':'))}")


def drop_rule(rbac_file, ref, out):
    """The Role/ClusterRole named by ref (kind/ns/name#index) with that one rule removed, or
    with one resource of it removed (kind/ns/name#index/resource)."""
    obj_ref, item = ref.rsplit("#", 1)
    idx, _, resource = item.partition("/")
    kind, ns, name = obj_ref.split("/")
    for d in docs(rbac_file):
        if d["kind"] == kind and d["metadata"]["name"] == name and d["metadata"].get("namespace", "") == ns:
            if resource:
                d["rules"][int(idx)]["resources"].remove(resource)
            else:
                d["rules"].pop(int(idx))
            dump([d], out)
            return
    die(f"no {obj_ref}")


def public_ca(rendered, source, pem_file, name="", key="ca.crt"):
    """The config's publicCaFile is provided as the chart promises for source (bundle: the
    ConfigMap's public-ca.pem holds pem_file's certificate, nothing else is mounted; secret or
    configMap: key `key` of the object `name` is projected as ca.pem into a read-only volume at
    /etc/gatehouse/public-ca, and the ConfigMap has no public-ca.pem; none: no publicCaFile, no
    volume, no ConfigMap entry)."""
    ds = docs(rendered)
    (cm,) = [d for d in ds if d["kind"] == "ConfigMap"]
    (dep,) = [d for d in ds if d["kind"] == "Deployment"]
    config = yaml.safe_load(cm["data"]["config.yaml"])
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "gatehouse"]
    mounts = [m for m in c.get("volumeMounts", []) if m["name"] == "public-ca"]
    vols = [v for v in spec.get("volumes", []) if v["name"] == "public-ca"]
    with open(pem_file, encoding="utf-8") as f:
        pem = f.read().strip()
    got = config.get("publicCaFile")
    problems = []
    if source == "none":
        if got or mounts or vols or "public-ca.pem" in cm["data"]:
            problems.append(f"no publicCa set, but publicCaFile={got!r}, mounts {mounts}, volumes {vols}")
    elif source == "bundle":
        if got != f"{POD}/config/public-ca.pem":
            problems.append(f"publicCaFile is {got!r}, want {POD}/config/public-ca.pem")
        if cm["data"].get("public-ca.pem", "").strip() != pem:
            problems.append("the ConfigMap's public-ca.pem is not the bundle")
        if mounts or vols:
            problems.append("a public-ca volume is mounted for an inline bundle")
    else:
        if got != f"{POD}/public-ca/ca.pem":
            problems.append(f"publicCaFile is {got!r}, want {POD}/public-ca/ca.pem")
        if len(mounts) != 1 or mounts[0]["mountPath"] != f"{POD}/public-ca" or not mounts[0].get("readOnly"):
            problems.append(f"public-ca mounts: {mounts}")
        kind = "secret" if source == "secret" else "configMap"
        if len(vols) != 1 or kind not in vols[0]:
            problems.append(f"public-ca volumes: {vols}, want one from a {kind}")
        else:
            v = vols[0][kind]
            object_name = v.get("secretName") if kind == "secret" else v.get("name")
            if object_name != name:
                problems.append(f"the volume reads {kind} {object_name!r}, want {name!r}")
            if v.get("items") != [{"key": key, "path": "ca.pem"}]:
                problems.append(f"the volume projects {v.get('items')}, want key {key!r} as ca.pem")
            else:
                print(f"{kind} {object_name} key {v['items'][0]['key']} -> {POD}/public-ca/ca.pem")
        if "public-ca.pem" in cm["data"]:
            problems.append("the ConfigMap holds a public-ca.pem too")
    if problems:
        die("\n".join(problems))
    print(f"publicCaFile: {got} ({source})")


def bad_deployment(rendered, out):
    """A copy of the Deployment with one misspelt field, which strict validation must refuse."""
    (dep,) = [d for d in docs(rendered) if d["kind"] == "Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = dep["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    dump([dep], out)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {
        "split": split,
        "servicemonitor": servicemonitor,
        "assert-workload": assert_workload,
        "checksum": checksum,
        "local-config": local_config,
        "extract-config": extract_config,
        "secret-wiring": secret_wiring,
        "compare-parameters": compare_parameters,
        "rbac": rbac,
        "drop-rule": drop_rule,
        "bad-deployment": bad_deployment,
        "public-ca": public_ca,
    }[cmd.replace("_", "-")](*args)
