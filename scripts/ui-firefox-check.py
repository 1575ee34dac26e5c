#!/usr/bin/env python3
"""Check the status page in Firefox (manual; CI drives Chromium in tests/tests/ui_browser.rs).

Needs: apt-get install firefox-esr; cargo install geckodriver; pip install selenium; a fleet
running (cargo run -p cdn-tests --bin fleet). Prints the edge rows and the explain result for
81.2.69.0/24 and writes /tmp/ff3.png."""
import time, sys
from selenium import webdriver
from selenium.webdriver.firefox.options import Options
from selenium.webdriver.firefox.service import Service
from selenium.webdriver.common.by import By
o = Options(); o.add_argument("-headless"); o.binary_location = "/usr/bin/firefox-esr"
d = webdriver.Firefox(options=o, service=Service("/root/.cargo/bin/geckodriver"))
try:
    d.set_window_size(1280, 1600)
    d.get("http://127.0.0.1:8053/")
    deadline = time.time() + 20
    rows = []
    while time.time() < deadline:
        rows = d.find_elements(By.CSS_SELECTOR, "table tbody tr")
        if len(rows) >= 3: break
        time.sleep(0.3)
    print("edge rows:", [r.text.split("\n")[0][:60] for r in rows])
    # explain
    inputs = d.find_elements(By.CSS_SELECTOR, "form input")
    names = [(i.get_attribute("name") or i.get_attribute("id")) for i in inputs]
    print("form inputs:", names)
    e=d.find_element(By.NAME,"ecs") if d.find_elements(By.NAME,"ecs") else d.find_element(By.ID,"ecs")
    e.clear(); e.send_keys("81.2.69.0/24")
    [b for b in d.find_elements(By.TAG_NAME,"button") if b.text.strip()=="Explain"][0].click()
    t0=time.time(); ok=False
    while time.time()-t0<10:
        body=d.find_element(By.TAG_NAME,"body").text
        if "Chosen edges" in body:
            ok=True; break
        time.sleep(0.3)
    line=[l for l in body.split("\n") if l.startswith("Chosen edges")]
    print("explain ok:",ok,line)
    d.save_screenshot("/tmp/ff3.png")
finally:
    d.quit()
