"""The web console in a real browser: Debian's headless Chromium, driven by
selenium, against `jadfs server`. Screenshots of every page go to the test's
temporary folder (and to $JADFS_SCREENSHOTS when set), to be looked at."""

import os
import re
import shutil

import boto3
import pytest
import requests
from botocore.config import Config
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ACCESS_KEY, SECRET_KEY, Server

WAIT = 30  # seconds any page or upload may take, on a loaded 2-core machine


@pytest.fixture(scope="module")
def console():
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,960",
                 "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.shots = tmp_path
    yield driver
    driver.quit()


def shot(browser, name):
    """Saves what the browser shows, for a person to look at."""
    for folder in filter(None, (str(browser.shots), os.environ.get("JADFS_SCREENSHOTS"))):
        os.makedirs(folder, exist_ok=True)
        browser.save_screenshot(os.path.join(folder, f"{name}.png"))


def wait(browser, condition):
    return WebDriverWait(browser, WAIT).until(condition)


def sign_in(browser, server, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    browser.get(f"{server.endpoint}/-/console/")
    wait(browser, seen.presence_of_element_located((By.NAME, "access_key")))
    browser.find_element(By.NAME, "access_key").send_keys(access_key)
    browser.find_element(By.NAME, "secret_key").send_keys(secret_key)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def session_of(browser):
    """The browser's cookies, for plain HTTP requests made as the same visitor."""
    jar = requests.Session()
    for cookie in browser.get_cookies():
        jar.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
    return jar


def create_bucket(browser, server, name):
    browser.get(f"{server.endpoint}/-/console/buckets")
    field = wait(browser, seen.presence_of_element_located((By.NAME, "name")))
    field.send_keys(name)
    field.submit()
    wait(browser, seen.presence_of_element_located((By.LINK_TEXT, name)))


def test_a_wrong_secret_is_refused(console, browser):
    sign_in(browser, console, secret_key="not-the-secret-at-all")
    wait(browser, seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".alert.error"), "Wrong access key"))
    shot(browser, "01-sign-in-refused")
    assert not any(c["name"] == "jadfs_console" for c in browser.get_cookies())
    browser.get(f"{console.endpoint}/-/console/buckets")
    assert browser.current_url.endswith("/-/console/login")


def test_sign_in_create_upload_download_share_delete(console, browser, tmp_path):
    sign_in(browser, console)
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "svg#throughput")))
    assert "Storage nodes alive" in browser.page_source
    wait(browser, seen.text_to_be_present_in_element((By.ID, "rate"), "requests/s"))
    shot(browser, "02-overview")
    cookie = next(c for c in browser.get_cookies() if c["name"] == "jadfs_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/-/console"

    create_bucket(browser, console, "console-files")
    shot(browser, "03-buckets")
    browser.find_element(By.LINK_TEXT, "console-files").click()

    # Upload through the file input: the browser PUTs to a presigned URL.
    body = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "photo of us.bin"
    path.write_bytes(body)
    wait(browser, seen.presence_of_element_located((By.ID, "files"))).send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
    wait(browser, seen.presence_of_element_located((By.XPATH, "//td[@class='name' and text()='photo of us.bin']")))
    shot(browser, "04-bucket")

    # Download: the link sends the signed-in visitor on to a short-lived URL.
    link = browser.find_element(By.LINK_TEXT, "Download").get_attribute("href")
    got = session_of(browser).get(link, timeout=WAIT)
    assert got.status_code == 200 and got.content == body
    assert 'filename="photo of us.bin"' in got.headers["content-disposition"]
    assert requests.get(link, allow_redirects=False, timeout=WAIT).status_code == 303  # to the sign-in page

    # Share: a link that works without any session.
    Select(browser.find_element(By.NAME, "expires")).select_by_visible_text("1 day")
    browser.find_element(By.XPATH, "//button[text()='Share']").click()
    share = wait(browser, seen.presence_of_element_located((By.ID, "share-link"))).get_attribute("value")
    assert "X-Amz-Expires=86400" in share and "jadfs_console" not in share
    shot(browser, "05-share-link")
    shared = requests.get(share, timeout=WAIT)
    assert shared.status_code == 200 and shared.content == body
    tampered = re.sub(r"X-Amz-Expires=\d+", "X-Amz-Expires=604800", share)
    assert requests.get(tampered, timeout=WAIT).status_code == 403

    # Delete, after the browser's confirmation.
    browser.find_element(By.XPATH, "//td[@class='actions']//button[text()='Delete']").click()
    wait(browser, seen.alert_is_present()).accept()
    wait(browser, seen.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "Nothing here yet."))
    assert requests.get(share, timeout=WAIT).status_code == 404


def test_a_key_without_rights_sees_no_other_keys_buckets(console, browser):
    sign_in(browser, console)
    wait(browser, seen.presence_of_element_located((By.LINK_TEXT, "Access keys")))
    create_bucket(browser, console, "roots-private")
    browser.get(f"{console.endpoint}/-/console/keys")
    field = wait(browser, seen.presence_of_element_located((By.NAME, "name")))
    field.send_keys("carol")
    field.submit()
    access_key = wait(browser, seen.presence_of_element_located((By.ID, "new-access-key"))).get_attribute("value")
    secret_key = browser.find_element(By.ID, "new-secret-key").get_attribute("value")
    shot(browser, "06-access-keys")
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait(browser, seen.presence_of_element_located((By.NAME, "access_key")))

    sign_in(browser, console, access_key, secret_key)
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
    assert "Access keys" not in browser.find_element(By.CSS_SELECTOR, "nav.side").text
    browser.get(f"{console.endpoint}/-/console/buckets")
    wait(browser, seen.presence_of_element_located((By.NAME, "name")))
    assert "roots-private" not in browser.page_source
    assert "console-files" not in browser.page_source
    create_bucket(browser, console, "carols-own")
    shot(browser, "07-buckets-of-another-key")
    browser.get(f"{console.endpoint}/-/console/buckets/roots-private")
    wait(browser, seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".alert.error"), "AccessDenied"))
    for page in ("keys", "throughput"):
        assert session_of(browser).get(f"{console.endpoint}/-/console/{page}", timeout=WAIT).status_code == 403


def test_forms_without_the_csrf_token_are_refused(console, browser):
    sign_in(browser, console)
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "meta[name=csrf-token]")))
    token = browser.find_element(By.CSS_SELECTOR, "meta[name=csrf-token]").get_attribute("content")
    visitor = session_of(browser)
    for form in ({"name": "csrf-missing"}, {"name": "csrf-wrong", "csrf": "0" * 64}):
        refused = visitor.post(f"{console.endpoint}/-/console/buckets", data=form, timeout=WAIT)
        assert refused.status_code == 403, refused.text
    upload = visitor.post(f"{console.endpoint}/-/console/buckets/console-files/objects/upload-url",
                          json={"key": "x"}, timeout=WAIT)
    assert upload.status_code == 403
    made = visitor.post(f"{console.endpoint}/-/console/buckets", data={"name": "csrf-right", "csrf": token},
                        allow_redirects=False, timeout=WAIT)
    assert made.status_code == 303
    listed = visitor.get(f"{console.endpoint}/-/console/buckets", timeout=WAIT).text
    assert "csrf-right" in listed and "csrf-missing" not in listed and "csrf-wrong" not in listed
    # A form posted from another site carries no cookie (SameSite=Strict) and no token.
    assert requests.post(f"{console.endpoint}/-/console/buckets", data={"name": "from-elsewhere"},
                         allow_redirects=False, timeout=WAIT).status_code == 303


def test_the_session_cookie_is_secure_under_tls():
    server = Server(tls=True)
    try:
        # verify on each request: REQUESTS_CA_BUNDLE would win over a session's.
        visitor = requests.Session()
        page = visitor.get(f"{server.endpoint}/-/console/login", verify=server.ca, timeout=WAIT)
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
        answer = visitor.post(f"{server.endpoint}/-/console/login", allow_redirects=False, timeout=WAIT, verify=server.ca,
                              data={"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "csrf": token})
        assert answer.status_code == 303
        set_cookie = [v for k, v in answer.raw.headers.items() if k.lower() == "set-cookie"]
        session = next(c for c in set_cookie if c.startswith("jadfs_console="))
        for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/-/console", "Max-Age="):
            assert flag in session, session
        assert SECRET_KEY not in answer.headers.get("location", "")
    finally:
        server.stop()


def test_an_uploaded_page_cannot_drive_a_signed_in_console(console, browser):
    """Objects share the console's origin: a page among them, opened by a
    signed-in root, must not run (it would read the CSRF token and post forms)."""
    s3 = boto3.client("s3", endpoint_url=console.endpoint, aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                      config=Config(signature_version="s3v4"))
    s3.create_bucket(Bucket="traps")
    page = (b"<html><body><p id='out'>inert</p><script>"
            b"document.getElementById('out').textContent='RAN';"
            b"fetch('/-/console/keys').then(r=>r.text()).then(t=>{"
            b"const csrf=/name=\"csrf-token\" content=\"([0-9a-f]+)\"/.exec(t)[1];"
            b"return fetch('/-/console/keys',{method:'POST',headers:{'content-type':'application/x-www-form-urlencoded'},"
            b"body:'name=planted&csrf='+csrf});}).then(()=>{document.getElementById('out').textContent='STOLEN';});"
            b"</script></body></html>")
    s3.put_object(Bucket="traps", Key="cats.html", Body=page, ContentType="text/html")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "traps", "Key": "cats.html"}, ExpiresIn=600)
    sign_in(browser, console)
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
    browser.get(url)
    wait(browser, seen.presence_of_element_located((By.ID, "out")))
    browser.get(f"{console.endpoint}/-/console/keys")  # whatever the page could have done, it has done by now
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
    assert "planted" not in browser.page_source
    browser.get(url)
    assert browser.find_element(By.ID, "out").text == "inert"


def test_links_name_the_host_the_browser_used_not_a_forwarded_one(console, browser):
    sign_in(browser, console)
    wait(browser, seen.presence_of_element_located((By.CSS_SELECTOR, "meta[name=csrf-token]")))
    token = browser.find_element(By.CSS_SELECTOR, "meta[name=csrf-token]").get_attribute("content")
    visitor = session_of(browser)
    create_bucket(browser, console, "hosted")
    forged = {"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"}
    link = visitor.get(f"{console.endpoint}/-/console/buckets/hosted/objects/download?key=a", headers=forged,
                       allow_redirects=False, timeout=WAIT)
    assert link.status_code == 303 and link.headers["location"].startswith(console.endpoint + "/hosted/a?")
    bad_host = visitor.get(f"{console.endpoint}/-/console/buckets/hosted/objects/download?key=a",
                           headers={"Host": 'evil.example"><x'}, allow_redirects=False, timeout=WAIT)
    assert "evil" not in bad_host.headers.get("location", "")
    # No upload URL for what is not an object of a bucket (the admin API, say).
    for bucket, key in (("-", "admin/buckets/hosted/grants"), ("hosted", "")):
        refused = visitor.post(f"{console.endpoint}/-/console/buckets/{bucket}/objects/upload-url",
                               json={"key": key}, headers={"x-csrf-token": token}, timeout=WAIT)
        assert refused.status_code == 400, (bucket, key, refused.text)
