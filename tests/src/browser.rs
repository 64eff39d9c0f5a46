//! A real headless Chromium for the web-console tests, driven over WebDriver: [`Browser`] owns a
//! chromedriver process on a free loopback port, the Chromium it starts, and their temporary
//! profile and log.
//!
//! Both are Debian's packages; `scripts/test` installs them (`ensure_chromium` in
//! `scripts/env.sh`) and names them in `WASMBATCH_CHROMIUM` and `WASMBATCH_CHROMEDRIVER`; without
//! those, `/usr/bin/chromium` and `/usr/bin/chromedriver`. The WebDriver client is fantoccini
//! over plain HTTP to loopback.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long chromedriver may take to listen, and then Chromium to start a session, before the
/// test gives up with chromedriver's log.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
/// How long [`Browser::shown`] waits for a page to show what the API already says.
pub const SHOWN_WITHIN: Duration = Duration::from_secs(30);

/// Chromium's flags: headless, no sandbox (the tests run as root in a container), none of its
/// background traffic (updates, sync, QUIC probes), shared memory in /tmp rather than a small
/// /dev/shm, and a fixed window so screenshots are the same size everywhere (the viewport, which
/// is what they show, is 1280×761 of it).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A headless Chromium under chromedriver, with a fresh profile.
///
/// Drive it through [`Browser::client`]. Dropping it kills chromedriver and everything it
/// started (they share a process group of their own) and removes the profile; [`Browser::close`]
/// ends the WebDriver session first, so Chromium shuts down cleanly.
pub struct Browser {
    /// The WebDriver session.
    pub client: fantoccini::Client,
    driver: Driver,
}

/// The chromedriver process, its process group and its temporary dir: Chromium's profile
/// (`profile/`), config and cache (`config/`, `cache/`) and chromedriver's output
/// (`chromedriver.log`). Dropping it kills them all and removes the dir.
struct Driver {
    child: Child,
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a session in a new headless Chromium.
    /// Panics naming `WASMBATCH_CHROMEDRIVER` and `scripts/test` if chromedriver is missing, and
    /// with chromedriver's log if either does not start within 20 seconds.
    pub async fn start() -> Browser {
        let chromedriver = binary("WASMBATCH_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = binary("WASMBATCH_CHROMIUM", "/usr/bin/chromium");
        let dir = tempfile::tempdir().expect("creating a temporary dir for the browser");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("creating Chromium's profile dir");
        let log = std::fs::File::create(dir.path().join("chromedriver.log"))
            .expect("creating chromedriver's log");
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0 to find a free port")
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the log's descriptor"))
            .stderr(log)
            // Chromium starts a crash handler even headless, its database in
            // $XDG_CONFIG_HOME/chromium (no flag moves it): keep that, and its cache, in `dir`.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            // Its own process group, Chromium's processes with it, so Drop can kill them all.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        // From here on, a panic drops `driver`, which kills chromedriver.
        let mut driver = Driver { child, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", driver.log());
            }
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}:\n{}",
                    driver.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut capabilities = fantoccini::wd::Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": args}),
        );
        let mut builder = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        );
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{port}");
        match tokio::time::timeout_at(deadline.into(), builder.connect(&url)).await {
            Ok(Ok(client)) => Browser { client, driver },
            Ok(Err(e)) => panic!("starting a Chromium session: {e}\n{}", driver.log()),
            Err(_) => panic!(
                "Chromium did not start within {START_TIMEOUT:?}:\n{}",
                driver.log()
            ),
        }
    }

    /// The text of the first element `css` selects, or `None` while there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![serde_json::json!(css)],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {css}: {e}"));
        found.as_str().map(str::to_string)
    }

    /// Waits until the element `css` selects has a text `ok` accepts, and returns it; panics
    /// after [`SHOWN_WITHIN`] with what the element and the page showed instead.
    pub async fn shown(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SHOWN_WITHIN;
        loop {
            let seen = self.text(css).await;
            if let Some(seen) = &seen
                && ok(seen)
            {
                return seen.clone();
            }
            if Instant::now() > deadline {
                let page = self.text("body").await.unwrap_or_default();
                panic!("{css} showed {seen:?} for {SHOWN_WITHIN:?}; the page said:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot_to(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("writing the screenshot {}: {e}", path.display()));
    }

    /// Ends the WebDriver session (chromedriver then quits Chromium), then kills chromedriver
    /// and removes the profile as dropping it would.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        if let Err(e) = client.close().await {
            panic!("closing the WebDriver session: {e}\n{}", driver.log());
        }
    }
}

impl Driver {
    /// What chromedriver (and Chromium, whose output it passes on) has written so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) takes no pointers.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        // Chromium's processes were reparented when chromedriver died, and its crash handlers
        // left the group when they started: wait (bounded) until every process of the group or
        // naming `dir` has died (killing any left), so none writes to `dir` as it is removed.
        // Dead, they stay zombies until init reaps them, which can take a second or more.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lingering = lingering(group, self.dir.path());
            if lingering.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in lingering {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The processes still running (not zombies), as /proc shows them, that are in group `group`
/// or name `dir` in their command line.
fn lingering(group: libc::pid_t, dir: &Path) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let dir = dir.as_os_str().as_encoded_bytes();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let (state, pgrp) = (fields.next()?, fields.nth(1)?);
            if matches!(state, "Z" | "X") {
                return None;
            }
            let named = || {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(dir.len()).any(|w| w == dir))
            };
            (pgrp == group.to_string() || named()).then_some(pid)
        })
        .collect()
}

/// `$var` if it is set, else `default`; panics naming `scripts/test` if that is not a file.
fn binary(var: &str, default: &str) -> PathBuf {
    let (path, why) = match std::env::var_os(var) {
        Some(path) => (PathBuf::from(path), "set in"),
        None => (PathBuf::from(default), "the default without"),
    };
    if !path.is_file() {
        panic!(
            "no {} ({why} {var}); run the tests through scripts/test, which installs chromium and \
             chromium-driver (ensure_chromium in scripts/env.sh) and sets WASMBATCH_CHROMIUM and \
             WASMBATCH_CHROMEDRIVER",
            path.display()
        );
    }
    path
}
