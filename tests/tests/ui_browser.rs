//! Issue 19: the router's fleet status page, driven in a real headless Chromium through
//! WebDriver (Debian's `chromium` + `chromium-driver`, the `fantoccini` crate) against a real
//! fleet (router, three edges, demo origin):
//!
//! * the page lists the three edges as up (table and map), keyboard selection shows details,
//!   and the page fits a phone-width window without horizontal scrolling;
//! * the explain form for `81.2.69.0/24` shows the eu-west edge chosen;
//! * drain through the page (token entered, confirmation dialog) changes the DNS answer, and
//!   undrain brings it back;
//! * a purge through the page reports each edge;
//! * an edge killed with SIGKILL shows as down on the page within the failover time
//!   (probe interval × fall + the page's 1 s poll).
//!
//! Needs `chromedriver` (and `chromium`): `apt-get install chromium chromium-driver`, or
//! `CHROMEDRIVER=/path` / `CHROMIUM=/path`. Without them the test fails and says so;
//! `CDN_SKIP_BROWSER=1` skips it instead. `CDN_UI_SCREENSHOT=docs/ui.png` also writes a
//! screenshot of the page with the fleet up (how docs/ui.png is made).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use cdn_tests::fleet::{spec, Fleet, SERVICE};
use cdn_tests::harness::{eventually, scaled};

/// Where Debian puts them.
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long the page may take to show a change it polls for (1 s poll + render + slack).
const PAGE_LAG: Duration = Duration::from_secs(3);

fn find_executable(env: &str, default: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        // An explicit path that is not there counts as not found (and says so below).
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    if Path::new(default).is_file() {
        return Some(default.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A chromedriver process on a free port plus one Chromium session; both end on drop.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium session; `None` when `CDN_SKIP_BROWSER=1`
    /// and no chromedriver is installed.
    fn start() -> anyhow::Result<Option<Self>> {
        let skip = std::env::var("CDN_SKIP_BROWSER").is_ok_and(|v| v == "1");
        let Some(driver_bin) =
            find_executable("CHROMEDRIVER", DEFAULT_CHROMEDRIVER, "chromedriver")
        else {
            if skip {
                eprintln!("ui_browser: skipped (CDN_SKIP_BROWSER=1 and no chromedriver)");
                return Ok(None);
            }
            bail!(
                "chromedriver not found (looked at $CHROMEDRIVER, {DEFAULT_CHROMEDRIVER}, $PATH): \
                 install it with `apt-get install chromium chromium-driver` (.ci/run does), or set \
                 CDN_SKIP_BROWSER=1 to skip this test"
            );
        };
        let chromium = find_executable("CHROMIUM", DEFAULT_CHROMIUM, "chromium").context(
            "chromium not found (looked at $CHROMIUM, /usr/bin/chromium, $PATH): \
             `apt-get install chromium chromium-driver`",
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let profile = tempfile::tempdir()?;
        // chromedriver has no port 0: pick a free port, release it, and retry on a collision.
        let mut last_err = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", driver_bin.display()))?;
            match wait_driver(&mut driver, port) {
                Ok(()) => {
                    let caps = json!({
                        "browserName": "chrome",
                        "goog:chromeOptions": {
                            "binary": chromium,
                            "args": [
                                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                "--no-first-run", "--disable-background-networking",
                                "--disable-component-update", "--disable-sync",
                                "--disable-dev-shm-usage", "--window-size=1280,1000",
                                format!("--user-data-dir={}", profile.path().display()),
                            ],
                        },
                    });
                    let Value::Object(caps) = caps else {
                        unreachable!()
                    };
                    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    let client = rt.block_on(
                        ClientBuilder::new(connector)
                            .capabilities(caps)
                            .connect(&format!("http://127.0.0.1:{port}")),
                    );
                    match client {
                        Ok(client) => {
                            return Ok(Some(Self {
                                rt,
                                client: Some(client),
                                driver,
                                _profile: profile,
                            }))
                        }
                        Err(e) => {
                            let _ = driver.kill();
                            let _ = driver.wait();
                            bail!("chromedriver could not start Chromium: {e}");
                        }
                    }
                }
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.block(self.c().goto(url))?)
    }

    /// Run `script` (a function body; `return` a JSON value) in the page.
    fn js(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.block(self.c().execute(script, vec![]))?)
    }

    fn click(&self, css: &str) -> anyhow::Result<()> {
        self.block(async {
            let e = self.c().find(Locator::Css(css)).await?;
            e.click().await
        })
        .with_context(|| format!("click {css}"))
    }

    /// Clear the field and type `text` into it, as a user would.
    fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.block(async {
            let e = self.c().find(Locator::Css(css)).await?;
            e.clear().await?;
            e.send_keys(text).await
        })
        .with_context(|| format!("type into {css}"))
    }

    fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.block(self.c().screenshot())?;
        std::fs::write(path, png)?;
        Ok(())
    }

    fn window(&self, w: u32, h: u32) -> anyhow::Result<()> {
        Ok(self.block(self.c().set_window_size(w, h))?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Wait for chromedriver's `/status` to say ready; an early exit means the port was taken.
fn wait_driver(driver: &mut Child, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + scaled(Duration::from_secs(20));
    let url = format!("http://127.0.0.1:{port}/status");
    loop {
        if let Some(status) = driver.try_wait()? {
            bail!("chromedriver exited with {status} (port {port} taken?)");
        }
        if let Ok(mut res) = ureq::get(&url).call() {
            if let Ok(v) = res.body_mut().read_json::<Value>() {
                if v["value"]["ready"] == true {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("chromedriver on port {port} not ready within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The edge table as the page shows it: (edge id, data-state, state text).
fn table(b: &Browser) -> anyhow::Result<Vec<(String, String, String)>> {
    let v = b.js(
        "return [...document.querySelectorAll('#edges tbody tr')].map(tr => \
           [tr.dataset.edge, tr.dataset.state, tr.querySelector('[data-col=state]').textContent]);",
    )?;
    let rows = v.as_array().context("rows")?;
    Ok(rows
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
            (s(0), s(1), s(2))
        })
        .collect())
}

fn row_state(b: &Browser, edge: &str) -> anyhow::Result<String> {
    table(b)?
        .into_iter()
        .find(|r| r.0 == edge)
        .map(|r| r.1)
        .with_context(|| format!("no row for {edge}"))
}

/// Click the confirmation dialog's Confirm button.
fn confirm(b: &Browser) -> anyhow::Result<()> {
    eventually("the confirmation dialog", Duration::from_secs(5), || {
        anyhow::ensure!(b.js("return document.getElementById('confirm').open;")? == true);
        Ok(())
    })?;
    b.click("#confirm-ok")
}

fn text_of(b: &Browser, css: &str) -> anyhow::Result<String> {
    let v = b.js(&format!(
        "const e = document.querySelector({}); return e ? e.textContent : null;",
        serde_json::to_string(css)?
    ))?;
    v.as_str()
        .map(str::to_string)
        .with_context(|| format!("no element {css}"))
}

#[test]
fn status_page_in_chromium_shows_explains_drains_purges_and_sees_a_kill() {
    let Some(browser) = Browser::start().expect("headless Chromium through chromedriver") else {
        return;
    };
    let b = &browser;
    Fleet::builder().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let admin = fleet.router(0).admin_url();
        let id = |region: &str| fleet.edge(region).id().to_string();
        let (us, eu, ap) = (id("us-east"), id("eu-west"), id("ap-northeast"));

        // 1. The page lists the three edges as up, in the table and on the map.
        b.goto(&format!("{admin}/"))?;
        eventually("the page lists three edges up", PAGE_LAG, || {
            let rows = table(b)?;
            anyhow::ensure!(rows.len() == 3, "rows: {rows:?}");
            for (edge, state, text) in &rows {
                anyhow::ensure!(state == "up" && text.trim() == "up", "{edge}: {state} / {text}");
            }
            Ok(rows)
        })?;
        let rows: Vec<String> = table(b)?.into_iter().map(|r| r.0).collect();
        assert_eq!(rows, vec![ap.clone(), eu.clone(), us.clone()], "sorted by region");
        let status = text_of(b, "#status")?;
        assert!(status.contains("health generation"), "{status}");
        let marks = b.js(
            "return [...document.querySelectorAll('#map-edges .edge')].map(g => \
               [g.dataset.edge, g.dataset.state, g.getAttribute('transform')]);",
        )?;
        let marks = marks.as_array().context("marks")?;
        assert_eq!(marks.len(), 3, "one map mark per edge: {marks:?}");
        assert!(marks.iter().all(|m| m[1] == "up"), "{marks:?}");
        // Placed by coordinates: us-east is west of eu-west, which is west of ap-northeast.
        let x_of = |edge: &str| -> f64 {
            let m = marks.iter().find(|m| m[0] == edge).expect("mark");
            let t = m[2].as_str().unwrap_or_default();
            t.trim_start_matches("translate(")
                .split(' ')
                .next()
                .and_then(|x| x.parse().ok())
                .expect("translate(x y)")
        };
        assert!(x_of(&us) < x_of(&eu) && x_of(&eu) < x_of(&ap), "{marks:?}");

        // Keyboard: a focused map mark selected with Enter shows the edge's details.
        b.js(&format!(
            "document.querySelector('#map-edges .edge[data-edge=\"{eu}\"]').focus(); return null;"
        ))?;
        b.block(async {
            let e = b.c().active_element().await?;
            e.send_keys(&fantoccini::key::Key::Enter.to_string()).await
        })?;
        let detail = text_of(b, "#map-detail")?;
        assert!(
            detail.contains(&eu) && detail.contains("eu-west") && detail.contains("127.0.2.1"),
            "{detail}"
        );

        // 2. Explain 81.2.69.0/24: the eu-west edge is chosen, with the matched network.
        b.type_into("#ex-name", SERVICE)?;
        b.type_into("#ex-ecs", "81.2.69.0/24")?;
        b.click("#explain-form button[type=submit]")?;
        let chosen = eventually("explain shows a decision", PAGE_LAG, || {
            text_of(b, "#explain-summary dd[data-key=chosen]")
        })?;
        assert_eq!(chosen, eu, "the eu-west edge is chosen");
        let network = text_of(b, "#explain-summary dd[data-key=network]")?;
        assert!(network.contains("81.2.69.0/24"), "{network}");
        assert_eq!(
            text_of(b, "#explain-candidates tr.chosen th")?,
            eu,
            "the chosen candidate row"
        );
        assert_eq!(
            b.js("return document.querySelectorAll('#map-route line.route').length;")?,
            json!(1),
            "a line from the client to the chosen edge"
        );

        if let Some(path) = std::env::var_os("CDN_UI_SCREENSHOT") {
            let h = b.js("return document.documentElement.scrollHeight;")?;
            b.window(1280, h.as_u64().unwrap_or(1000).clamp(600, 2400) as u32 + 140)?;
            std::thread::sleep(Duration::from_millis(1200)); // one more poll: fresh ages
            b.screenshot(Path::new(&path))?;
            b.window(1280, 1000)?;
            eprintln!("screenshot written to {}", PathBuf::from(path).display());
        }

        // Phone width: nothing scrolls sideways.
        b.window(390, 844)?;
        let overflow = b.js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        )?;
        assert!(overflow.as_i64().unwrap_or(1) <= 0, "horizontal overflow {overflow} px at 390 px");
        b.window(1280, 1000)?;

        // 3. Actions appear only with a token; drain through the page changes the DNS answer.
        assert_eq!(
            b.js(&format!(
                "return document.querySelector('tr[data-edge=\"{us}\"] button[data-action=drain]').offsetParent === null;"
            ))?,
            json!(true),
            "no drain button without a token"
        );
        b.type_into("#token", fleet.token())?;
        b.click("#token-save")?;
        let us_subnet = spec::demo_subnet("us-east").unwrap();
        assert_eq!(fleet.resolve(us_subnet)?, vec![fleet.edge("us-east").ip()]);
        b.click(&format!("tr[data-edge=\"{us}\"] button[data-action=drain]"))?;
        confirm(b)?;
        let said = eventually("the drain result", PAGE_LAG, || {
            let t = text_of(b, "#action-result")?;
            anyhow::ensure!(t.contains("done") || t.contains("failed"), "{t}");
            Ok(t)
        })?;
        assert!(said.contains(&format!("drain {us}: done")), "{said}");
        eventually("DNS moves off the drained edge", Duration::from_secs(5), || {
            let a = fleet.resolve(us_subnet)?;
            anyhow::ensure!(a == vec![fleet.edge("eu-west").ip()], "answer {a:?}");
            Ok(())
        })?;
        eventually("the page shows the drain", PAGE_LAG, || {
            let s = row_state(b, &us)?;
            anyhow::ensure!(s == "draining", "{s}");
            Ok(())
        })?;
        b.click(&format!("tr[data-edge=\"{us}\"] button[data-action=undrain]"))?;
        confirm(b)?;
        eventually("DNS returns to the undrained edge", Duration::from_secs(5), || {
            let a = fleet.resolve(us_subnet)?;
            anyhow::ensure!(a == vec![fleet.edge("us-east").ip()], "answer {a:?}");
            Ok(())
        })?;

        // 4. A purge through the page reports each edge (the object is cached on us-east).
        let path = "/obj/1k/ui-purge";
        fleet.fetch(us_subnet, path)?;
        eventually("cached on us-east", Duration::from_secs(5), || {
            let r = fleet.edge("us-east").get(path)?;
            anyhow::ensure!(r.is_hit(), "{:?}", r.cache_status());
            Ok(())
        })?;
        b.type_into("#pg-urls", &format!("http://{SERVICE}{path}"))?;
        b.click("#purge-submit")?;
        confirm(b)?;
        let results = eventually("purge results per edge", Duration::from_secs(5), || {
            let v = b.js(
                "return [...document.querySelectorAll('#purge-results tbody tr')].map(tr => \
                   [tr.dataset.edge, tr.dataset.result, tr.children[3].textContent]);",
            )?;
            let rows = v.as_array().cloned().unwrap_or_default();
            anyhow::ensure!(rows.len() == 3, "rows {rows:?}");
            Ok(rows)
        })?;
        for r in &results {
            assert_eq!(r[1], "ok", "every edge acknowledged: {results:?}");
        }
        let purged = |edge: &str| results.iter().find(|r| r[0] == edge).map(|r| r[2].clone());
        assert_eq!(purged(&us), Some(json!("1")), "{results:?}");
        assert_eq!(purged(&eu), Some(json!("0")), "{results:?}");
        assert_eq!(purged(&ap), Some(json!("0")), "{results:?}");
        let summary = text_of(b, "#purge-out p")?;
        assert!(summary.contains("Purged on 3 of 3 edges"), "{summary}");

        // 5. SIGKILL an edge: the page shows it down within the failover time.
        let timing = &fleet.spec().health;
        let failover = timing.probe_interval * timing.fall + timing.probe_timeout;
        let t0 = Instant::now();
        fleet.kill_edge("us-east")?;
        eventually("the page shows the killed edge down", failover + PAGE_LAG, || {
            let s = row_state(b, &us)?;
            anyhow::ensure!(s == "down", "{s}");
            Ok(())
        })?;
        let took = t0.elapsed();
        eprintln!("page showed the killed edge down after {took:?}");
        assert!(
            took <= scaled(failover + PAGE_LAG),
            "down after {took:?} (> failover {failover:?} + page lag)"
        );
        let text = table(b)?.into_iter().find(|r| r.0 == us).map(|r| r.2);
        assert_eq!(text.as_deref().map(str::trim), Some("down"), "state as text");
        assert_eq!(row_state(b, &eu)?, "up");
        Ok(())
    });
}
