//! A hostile web server behind a Kubernetes Service, for tests of what the kube-apiserver's
//! service proxy can serve on gatehouse's origin.
//!
//! Kubernetes refuses loopback endpoint addresses, so the server runs in a network namespace
//! of its own (`ip netns`, a veth pair with a /30 from 10.213.0.0/16), and the Service has no
//! selector: its Endpoints are written by hand (the test bed runs no controller-manager). The
//! service proxy only forwards to addresses of real Pods, so a Pod object (never scheduled: the
//! test bed has no node) gets the server's address written into its status. The
//! server answers every request with an HTML page that runs script, plants a session cookie
//! and asks the browser to clear gatehouse's; it records every request's headers, one JSON
//! object a line, so a test can assert what reached it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::text;
use crate::tempdir::TempDir;
use crate::testbed::{Testbed, kubectl_admin};

/// The text every hostile page contains.
pub const MARKER: &str = "gatehouse-hostile-page";

const SERVER: &str = r#"
import http.server, json, sys
addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PAGE = b"<!doctype html><title>gatehouse-hostile-page</title><script>fetch('/api/v1/secrets')</script>gatehouse-hostile-page"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Set-Cookie", "gatehouse_session=planted; Path=/")
        self.send_header("Set-Cookie", "__Host-gatehouse_session=planted; Path=/; Secure")
        self.send_header("Clear-Site-Data", '"cookies"')
        self.send_header("Content-Security-Policy", "script-src 'unsafe-inline' *")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)
    do_POST = do_GET
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((addr, port), H).serve_forever()
"#;

/// The hostile server, its network namespace, and the Service in front of it.
pub struct HostileService {
    /// The namespace holding the Service.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    netns: String,
    server: Child,
    log: PathBuf,
    _dir: TempDir,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect(
        "cannot run `ip` (iproute2): install it with `apt-get install iproute2`; these tests need root for network namespaces",
    );
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl HostileService {
    /// Starts the server in a new network namespace and creates `namespace` with a Service
    /// `hostile` whose Endpoints point at it; waits until the kube-apiserver's service proxy
    /// reaches it.
    pub fn start(tb: &Testbed, namespace: &str) -> Self {
        let n: u32 = rand_u32();
        let tag = format!("{:06x}", n & 0xff_ffff);
        let netns = format!("gh{tag}");
        let (host_if, ns_if) = (format!("ghh{tag}"), format!("ghn{tag}"));
        // A /30 in 10.213.0.0/16 chosen by the random tag (collisions are as likely as a
        // 1-in-16384 draw between two tests running at once).
        let block = (n >> 8) & 0x3fff;
        let host_ip = format!("10.213.{}.{}", block >> 6, (block & 0x3f) * 4 + 1);
        let pod_ip = format!("10.213.{}.{}", block >> 6, (block & 0x3f) * 4 + 2);
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &netns]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{pod_ip}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &netns, "link", "set", &ns_if, "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);

        let dir = TempDir::new("hostile");
        let log = dir.path().join("requests.jsonl");
        std::fs::write(&log, "").unwrap();
        let server = Command::new("ip")
            .args([
                "netns", "exec", &netns, "python3", "-c", SERVER, &pod_ip, "8080",
            ])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();

        let manifest = format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{ name: {namespace} }}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: default, namespace: {namespace} }}
---
apiVersion: v1
kind: Pod
metadata: {{ name: hostile, namespace: {namespace} }}
spec:
  automountServiceAccountToken: false
  containers: [{{ name: web, image: hostile.invalid/web }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: hostile, namespace: {namespace} }}
spec:
  ports: [{{ name: http, port: 80, targetPort: 8080 }}]
---
apiVersion: v1
kind: Endpoints
metadata: {{ name: hostile, namespace: {namespace} }}
subsets:
  - addresses: [{{ ip: "{pod_ip}", targetRef: {{ kind: Pod, name: hostile, namespace: {namespace} }} }}]
    ports: [{{ name: http, port: 8080 }}]
"#
        );
        let path = dir.path().join("hostile.yaml");
        std::fs::write(&path, manifest).unwrap();
        let out = kubectl_admin(tb, &["apply", "-f", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out).1);
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{pod_ip}","podIPs":[{{"ip":"{pod_ip}"}}]}}}}"#
        );
        let out = kubectl_admin(
            tb,
            &[
                "-n",
                namespace,
                "patch",
                "pod",
                "hostile",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
        );
        assert!(out.status.success(), "{}", text(&out).1);

        let me = Self {
            namespace: namespace.to_owned(),
            service: "hostile".to_owned(),
            netns,
            server,
            log,
            _dir: dir,
        };
        // The kube-apiserver (as the test bed's admin, directly) reaches the page.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = kubectl_admin(tb, &["get", "--raw", &me.proxy_path()]);
            if out.status.success() && text(&out).0.contains(MARKER) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the kube-apiserver's service proxy does not reach the hostile server: {}",
                text(&out).1
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        std::fs::write(&me.log, "").unwrap();
        me
    }

    /// The service proxy path of the hostile page.
    pub fn proxy_path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/services/{}:http/proxy/page",
            self.namespace, self.service
        )
    }

    /// The requests the server received: `(path, headers)` with lower-case header names.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for HostileService {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "pkill -f 'python3 -c .*{}' 2>/dev/null; true",
                self.log.display()
            ))
            .status();
    }
}

fn rand_u32() -> u32 {
    let mut buf = [0u8; 4];
    let f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut &f, &mut buf).unwrap();
    u32::from_le_bytes(buf)
}
