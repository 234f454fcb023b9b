//! Hot deploy from the watched folder, tested against the real binary while
//! clients keep calling it.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Dirs, Server, guest, json, variant};

fn manifest(greeting: &str) -> String {
    format!("[attributes.greeting]\ndefault = \"Hello\"\n[values]\ngreeting = \"{greeting}\"\n")
}

/// Writes `bytes` to `dir/name` the safe way: a temporary file, then a rename.
fn write_then_rename(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn greeting(server: &Server) -> Result<String, String> {
    let response = server
        .client
        .get(server.url("/app/rest/hello/greeting"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["greeting"].as_str().unwrap_or_default().to_owned())
}

async fn wait_for_greeting(server: &Server, want: &str) -> Duration {
    let started = Instant::now();
    loop {
        if greeting(server).await.as_deref() == Ok(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never switched to {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Clients that call the hello Element in a loop and count failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Arc<Server>, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (server, stop, ok, failures) =
                    (server.clone(), stop.clone(), ok.clone(), failures.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match greeting(&server).await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(e);
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failures.lock().unwrap().clone(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_redeploys_under_load_fail_no_request() {
    let dirs = Dirs::new();
    let deploy = dirs.deploy_dir();
    let hello = std::fs::read(guest("hello")).unwrap();
    write_then_rename(&deploy, "hello.wasm", &hello);
    write_then_rename(&deploy, "hello.toml", manifest("v0").as_bytes());
    let server = Arc::new(Server::start(&dirs, &[]));
    assert_eq!(greeting(&server).await.unwrap(), "v0");

    let load = Load::start(&server, 4);
    let mut latencies = Vec::new();
    for i in 1..=20u32 {
        // Odd rounds change the code (a new hash: compiled, not cached), even
        // rounds only the manifest.
        if i % 2 == 1 {
            write_then_rename(&deploy, "hello.wasm", &variant(&hello, i));
        }
        write_then_rename(&deploy, "hello.toml", manifest(&format!("v{i}")).as_bytes());
        latencies.push(wait_for_greeting(&server, &format!("v{i}")).await);
    }
    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 100, "the load sent only {ok} requests");
    latencies.sort();
    println!(
        "redeploy until live: median {:?}, max {:?}; {ok} requests, 0 failed",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    server.wait_for_log("version=21", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_deploy_keeps_the_old_version_serving_until_a_good_file_recovers_it() {
    let dirs = Dirs::new();
    let deploy = dirs.deploy_dir();
    dirs.deploy("hello", "hello", &manifest("v1"));
    let server = Arc::new(Server::start(&dirs, &[]));
    let load = Load::start(&server, 2);

    write_then_rename(&deploy, "hello.wasm", b"\0asm garbage");
    server.wait_for_log(
        "Element \"hello\" refused: not a valid WebAssembly component",
        Duration::from_secs(10),
    );
    assert_eq!(greeting(&server).await.unwrap(), "v1");

    // A manifest missing a required attribute fails too, and also keeps v1.
    write_then_rename(
        &deploy,
        "hello.toml",
        b"[attributes.token]\nrequired = true\n[values]\ngreeting = \"v2\"\n",
    );
    server.wait_for_log(
        "required attribute \"token\" has no value",
        Duration::from_secs(10),
    );
    assert_eq!(greeting(&server).await.unwrap(), "v1");

    std::fs::copy(guest("hello"), deploy.join(".hello.wasm.tmp")).unwrap();
    std::fs::rename(deploy.join(".hello.wasm.tmp"), deploy.join("hello.wasm")).unwrap();
    write_then_rename(&deploy, "hello.toml", manifest("v3").as_bytes());
    wait_for_greeting(&server, "v3").await;
    let (_, failures) = load.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_written_file_is_not_loaded() {
    let dirs = Dirs::new();
    let deploy = dirs.deploy_dir();
    dirs.deploy("hello", "hello", &manifest("v1"));
    let server = Arc::new(Server::start(&dirs, &[]));
    let load = Load::start(&server, 2);

    // Overwrite in place, slowly: half now, the rest a while later, as a
    // slow copy would.
    let next = variant(&std::fs::read(guest("hello")).unwrap(), 7);
    let mut file = std::fs::File::create(deploy.join("hello.wasm")).unwrap();
    let half = next.len() / 2;
    for chunk in next[..half].chunks(4096) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for chunk in next[half..].chunks(4096) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(file);
    let next_hash = {
        use std::fmt::Write;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&next);
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    server.wait_for_log(&format!("hash={}", &next_hash[..12]), Duration::from_secs(10));
    assert_eq!(greeting(&server).await.unwrap(), "v1");
    let (_, failures) = load.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    let log = server.log();
    assert!(
        !log.contains("refused"),
        "a partial file was loaded and refused:\n{log}"
    );
}

#[tokio::test]
async fn removing_the_file_undeploys_and_adding_one_deploys() {
    let dirs = Dirs::new();
    let deploy = dirs.deploy_dir();
    dirs.deploy("hello", "hello", &manifest("v1"));
    let server = Server::start(&dirs, &[]);
    assert_eq!(greeting(&server).await.unwrap(), "v1");

    std::fs::remove_file(deploy.join("hello.wasm")).unwrap();
    let started = Instant::now();
    loop {
        let (status, body) = json(server.get("/app/rest/hello/greeting").await).await;
        if status == 404 {
            assert_eq!(body["code"], "NOT_FOUND");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never undeployed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.wait_for_log("Element undeployed", Duration::from_secs(5));

    write_then_rename(&deploy, "late.wasm", &std::fs::read(guest("hello")).unwrap());
    let started = Instant::now();
    loop {
        let (status, _) = json(server.get("/app/rest/late/hello").await).await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never deployed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lifecycle events reach subscribers of the runtime's event bus.
#[tokio::test]
async fn deploys_publish_loaded_failed_and_unloaded_events() {
    let root = tempfile::tempdir().unwrap();
    let mut config = elements_config::Config::in_dir(root.path());
    config.cache_dir = support::shared_cache();
    std::fs::create_dir_all(&config.deploy_dir).unwrap();
    let runtime = elements_runtime::Runtime::start(&config).await.unwrap();
    let mut events = runtime.events.subscribe();
    let deploy = config.deploy_dir.clone();

    write_then_rename(&deploy, "hello.wasm", &std::fs::read(guest("hello")).unwrap());
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let loaded = next().await;
    assert_eq!(loaded.name, "dev.getelements.element.loaded");
    assert_eq!(loaded.payload["name"], "hello");
    assert_eq!(loaded.payload["version"], 1);

    write_then_rename(&deploy, "hello.wasm", b"nope");
    let failed = next().await;
    assert_eq!(failed.name, "dev.getelements.element.failed");
    assert!(
        failed.payload["error"].as_str().unwrap().contains("not a valid"),
        "{:?}",
        failed.payload
    );

    std::fs::remove_file(deploy.join("hello.wasm")).unwrap();
    let unloaded = next().await;
    assert_eq!(unloaded.name, "dev.getelements.element.unloaded");
    assert_eq!(unloaded.payload["name"], "hello");
}
