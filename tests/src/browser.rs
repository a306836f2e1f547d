//! A headless Chromium driven over the W3C WebDriver protocol: the few JSON calls the console's
//! tests need, sent with reqwest to a chromedriver this module starts on a free port.
//!
//! [`Browser::start`] fails with the command that installs what is missing; nothing is skipped.
//! [`Browser::close`] ends the session (Chromium quits) and stops the driver; dropping a browser
//! that was not closed (a test that failed) does the same without the async runtime. Every wait
//! polls the page until a deadline, never a bare sleep.

use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How Debian installs both (scripts/test does it when run as root).
pub const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys as WebDriver names them.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const CONTROL: &str = "\u{E009}";
pub const ESCAPE: &str = "\u{E00C}";
pub const SPACE: &str = " ";

/// How long a wait for the page lasts.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`: the driver.
    driver_url: String,
    /// The session's id.
    session: String,
    driver: Child,
    profile: PathBuf,
    closed: bool,
}

/// The first of `names` on the PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Self {
        let missing = |what: &str| {
            format!(
                "{what} is not installed: the console tests need it. Install it with `{INSTALL}` (scripts/test does so when run as root)"
            )
        };
        let driver_bin =
            on_path(&["chromedriver"]).unwrap_or_else(|| panic!("{}", missing("chromedriver")));
        let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("{}", missing("chromium")));
        let port = free_port();
        let driver = spawn_driver(&driver_bin, port);
        let profile = std::env::temp_dir().join(format!("console-test-{}", uuid::Uuid::new_v4()));
        let mut browser = Self {
            http: reqwest::Client::new(),
            driver_url: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            driver,
            profile,
            closed: false,
        };
        browser.wait_for_driver().await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-GB",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let answer = browser
            .send(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no session: {answer}"))
            .to_owned();
        browser.set_size(width, height).await;
        browser
    }

    async fn wait_for_driver(&mut self) {
        let status = format!("{}/status", self.driver_url);
        let end = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(response) = self.http.get(&status).send().await
                && let Ok(text) = response.text().await
                && let Ok(body) = serde_json::from_str::<Value>(&text)
                && body["value"]["ready"] == true
            {
                return;
            }
            if let Ok(Some(exit)) = self.driver.try_wait() {
                panic!("chromedriver exited at start ({exit}); is it installed (`{INSTALL}`)?");
            }
            assert!(
                tokio::time::Instant::now() < end,
                "chromedriver did not become ready on {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver call; panics on a WebDriver error, with the error.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_send(method.clone(), path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.driver_url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let text = response.text().await.map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if ok {
            Ok(answer["value"].clone())
        } else {
            Err(format!(
                "{} {}",
                answer["value"]["error"], answer["value"]["message"]
            ))
        }
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.send(
            reqwest::Method::POST,
            &self.at("/url"),
            Some(json!({"url": url})),
        )
        .await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.send(reqwest::Method::POST, &self.at("/window/rect"), Some(rect))
            .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; returns its value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        self.send(reqwest::Method::POST, &self.at("/execute/sync"), Some(body))
            .await
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""); returns it.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Value {
        let end = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.eval(script, args.clone()).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= end {
                let page = self.eval("return document.body.innerText", json!([])).await;
                panic!(
                    "timed out after {PATIENCE:?} waiting for {what}; the page shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matching `css` is shown and (if `text` is not empty) its text
    /// contains `text`; returns its WebDriver id.
    pub async fn wait_for(&self, css: &str, text: &str) -> String {
        let script = "const [css, text] = arguments;
            return [...document.querySelectorAll(css)].find(e => e.getClientRects().length > 0
                && !e.closest('[hidden]') && e.textContent.includes(text)) ?? null;";
        let found = self
            .wait_until(
                &format!("{css} showing {text:?}"),
                script,
                json!([css, text]),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {found}"))
            .to_owned()
    }

    /// Text typed into the element (as keystrokes).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css, "").await;
        let path = self.at(&format!("/element/{element}/value"));
        self.send(reqwest::Method::POST, &path, Some(json!({"text": text})))
            .await;
    }

    pub async fn clear(&self, css: &str) {
        let element = self.wait_for(css, "").await;
        self.send(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/clear")),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks the first element matching `css` whose text contains `text`, as a user would (the
    /// driver refuses when something else covers it).
    pub async fn click(&self, css: &str, text: &str) {
        let element = self.wait_for(css, text).await;
        self.send(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Presses `keys` together, as a chord (e.g. `[SHIFT, TAB]`), on whatever has the focus.
    pub async fn press(&self, keys: &[&str]) {
        let mut actions: Vec<Value> = keys
            .iter()
            .map(|k| json!({"type": "keyDown", "value": k}))
            .collect();
        actions.extend(
            keys.iter()
                .rev()
                .map(|k| json!({"type": "keyUp", "value": k})),
        );
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.send(reqwest::Method::POST, &self.at("/actions"), Some(body))
            .await;
    }

    /// Types `text` on whatever has the focus, key by key.
    pub async fn keys(&self, text: &str) {
        for key in text.chars() {
            self.press(&[&key.to_string()]).await;
        }
    }

    /// What has the focus: its tag, id, role and text, e.g. `{"tag": "BUTTON", "text": "Delete", …}`,
    /// and whether it shows a focus ring.
    pub async fn focused(&self) -> Value {
        self.eval(
            "const e = document.activeElement;
             return {tag: e.tagName, id: e.id, role: e.getAttribute('role'), text: e.textContent.trim(),
                     ring: getComputedStyle(e).outlineStyle !== 'none'};",
            json!([]),
        )
        .await
    }

    /// A property of the first element matching `css` (e.g. `value`, `checked`).
    pub async fn property(&self, css: &str, name: &str) -> Value {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e[arguments[1]] : null;",
            json!([css, name]),
        )
        .await
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let data = self
            .send(reqwest::Method::GET, &self.at("/screenshot"), None)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("a PNG")
    }

    /// Ends the session (Chromium quits), stops the driver, removes the profile.
    pub async fn close(mut self) {
        let _ = self
            .try_send(reqwest::Method::DELETE, &self.at(""), None)
            .await;
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        self.closed = true;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The driver stays in the test's process group (Chromium with it), so that a test runner that
/// ends a stuck test by its group ends them too.
fn spawn_driver(driver: &Path, port: u16) -> Child {
    Command::new(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e}; install it with `{INSTALL}`",
                driver.display()
            )
        })
}

/// A test that failed never reached `close`: end the session over a plain socket (no runtime
/// here), then stop the driver.
impl Drop for Browser {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if !self.session.is_empty() {
            let address = self.driver_url.trim_start_matches("http://").to_owned();
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = delete_session(&address, &request);
        }
        self.stop_driver();
    }
}

fn delete_session(address: &str, request: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}

/// Where the console's screenshots are kept, and whether this run writes them
/// (`CONSOLE_SCREENSHOTS=1`), so that an ordinary run leaves the tree as it was.
pub fn screenshots() -> Option<PathBuf> {
    (std::env::var("CONSOLE_SCREENSHOTS").as_deref() == Ok("1"))
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console"))
}
