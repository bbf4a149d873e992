"""The web console in a real headless Chromium (Debian's chromium and chromedriver, driven by selenium), against the
real service with whisper-base, directly and behind the real nginx with basic auth."""

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import free_port
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from asr_service.config import Settings
from asr_service.proxy import running_nginx
from asr_service.server import serve_in_thread

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium is installed by make test")
USER, PASSWORD = "zhang", "console-pw"


@pytest.fixture(scope="module")
def console_url(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("console")
    # A high review threshold, so some segments of the example calls are flagged for the review filter.
    settings = Settings(model="whisper-base", cache_dir=model_cache, data_dir=data, review_threshold=0.9)
    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kept for a person to look at: ASR_TEST_SCREENSHOTS, else a temporary folder."""
    folder = Path(os.environ.get("ASR_TEST_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,768",
                     "--autoplay-policy=no-user-gesture-required", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER or ""))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition, seconds: float = 180):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(lambda d: condition(d))


def upload(driver: WebDriver, path: Path) -> str:
    driver.find_element(By.ID, "file-input").send_keys(str(path))
    wait(driver, lambda d: "job=" in d.current_url, 60)
    return driver.current_url.split("job=")[1]


def segments(driver: WebDriver) -> list:  # type: ignore[type-arg]
    return driver.find_elements(By.CSS_SELECTOR, "#segments li.segment")


def test_a_call_is_uploaded_read_played_corrected_and_downloaded(
    browser: WebDriver, console_url: str, tmp_path: Path, screenshots: Path
) -> None:
    browser.get(console_url)
    assert browser.title == "12345 热线语音转写"
    wait(browser, lambda d: d.find_element(By.ID, "service-status").text == "服务正常", 30)
    call = tmp_path / "20261122_0815_滨海来电.wav"
    shutil.copy(REPO / "examples" / "call_zh.wav", call)
    job_id = upload(browser, call)
    wait(browser, lambda d: len(segments(d)) > 0)
    items = segments(browser)
    first = items[0]  # the list is rendered once per change, so these stay valid until the correction
    assert first.find_element(By.CLASS_NAME, "time").text.count(":") == 2  # 00:00.3–00:04.1
    assert "conf-" in first.get_attribute("class")

    # the ticket panel shows the analysis the API holds
    job = httpx.get(f"{console_url}/jobs/{job_id}").json()
    ticket_text = browser.find_element(By.ID, "ticket-body").text
    assert job["result"]["ticket"]["category"] in ticket_text and "承办部门" in ticket_text

    # clicking a segment plays exactly that stretch: the audio jumps to its start and the segment is highlighted
    wait(browser, lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1, 30)
    start = float(segments(browser)[-1].get_attribute("data-start"))
    browser.execute_script("document.getElementById('player').currentTime = arguments[0]", start + 1.5)
    segments(browser)[-1].find_element(By.CLASS_NAME, "time").click()
    wait(browser, lambda d: "playing" in segments(d)[-1].get_attribute("class"), 10)
    position = browser.execute_script("return document.getElementById('player').currentTime")
    assert start - 0.05 <= position < start + 1.0, (position, start)

    # keyboard: space pauses, K goes to the previous segment
    browser.find_element(By.TAG_NAME, "body").send_keys(" ")
    if len(items) > 1:
        browser.find_element(By.TAG_NAME, "body").send_keys("k")
        wait(browser, lambda d: "playing" in segments(d)[-2].get_attribute("class"), 10)

    # correct the first segment in place; the correction is stored with the user and shown
    segments(browser)[0].find_element(By.CLASS_NAME, "edit").click()
    box = browser.find_element(By.CSS_SELECTOR, "#segments textarea")
    box.clear()
    box.send_keys("我想问一下，我在滨海新区有一套房")
    browser.find_element(By.CSS_SELECTOR, "#segments button.save").click()
    wait(browser, lambda d: "已由 anonymous 更正" in d.find_element(By.ID, "segments").text, 20)
    exported = httpx.get(f"{console_url}/corrections", params={"job_id": job_id}).text.strip().splitlines()
    assert len(exported) == 1 and '"corrected": "我想问一下，我在滨海新区有一套房"' in exported[0]
    assert '"field": "text"' in exported[0] and '"user": "anonymous"' in exported[0]

    # downloads carry the corrected text
    srt = httpx.get(browser.find_element(By.ID, "download-srt").get_attribute("href")).text
    assert "-->" in srt and "我想问一下，我在滨海新区有一套房" in srt
    assert browser.find_element(By.ID, "download-text").get_attribute("download").endswith(".txt")

    # the ticket's category is corrected the same way
    browser.execute_script("document.getElementById('fix-category').value = '住房物业'")
    browser.find_element(By.ID, "fix-ticket").click()
    wait(browser, lambda d: "工单已由 anonymous 更正" in d.find_element(By.ID, "ticket-body").text, 20)
    assert httpx.get(f"{console_url}/jobs/{job_id}").json()["result"]["ticket"]["category"] == "住房物业"

    # the list of recent calls shows it finished, with its category
    row = f'tr[data-job="{job_id}"]'  # the list re-renders every 5 s: look the row up each time
    wait(browser, lambda d: all(w in d.find_element(By.CSS_SELECTOR, row).text for w in ("已完成", "住房物业")), 20)
    browser.save_screenshot(str(screenshots / "console-mono.png"))


def test_a_split_channel_call_shows_agent_and_caller(browser: WebDriver, console_url: str, screenshots: Path) -> None:
    browser.get(console_url)
    upload(browser, REPO / "examples" / "stereo_agent_caller.wav")
    wait(browser, lambda d: len(segments(d)) > 1)
    roles = {item.find_element(By.CLASS_NAME, "role").text for item in segments(browser)}
    assert {"坐席", "市民"} <= roles
    browser.save_screenshot(str(screenshots / "console-split.png"))


def test_review_filter_shows_only_flagged_segments(browser: WebDriver, console_url: str) -> None:
    browser.get(console_url)
    upload(browser, REPO.parent / "shared" / "audio" / "en_osr_us_000_0034_8k.wav")  # ten sentences, 8 kHz
    wait(browser, lambda d: len(segments(d)) > 1)
    flagged = len(browser.find_elements(By.CSS_SELECTOR, "#segments li.review"))
    assert flagged >= 1
    browser.find_element(By.ID, "review-only").click()
    visible = [item for item in segments(browser) if item.is_displayed()]
    assert len(visible) == flagged and all("review" in item.get_attribute("class") for item in visible)
    assert all("需复核" in item.text for item in visible)


def test_an_unsupported_file_shows_a_message_a_person_understands(
    browser: WebDriver, console_url: str, tmp_path: Path
) -> None:
    browser.get(console_url)
    notes = tmp_path / "notes.txt"
    notes.write_text("这不是录音", encoding="utf-8")
    browser.find_element(By.ID, "file-input").send_keys(str(notes))
    # The upload is accepted as a job (stored first, like every job), then fails when decoded: the page says why.
    error = wait(
        browser,
        lambda d: d.find_element(By.ID, "call-error").is_displayed() and d.find_element(By.ID, "call-error"),
        60,
    )
    assert "不支持的文件格式" in error.text
    assert browser.find_element(By.ID, "call-status").text == "失败"


def test_a_reload_keeps_the_call_and_its_progress(browser: WebDriver, console_url: str) -> None:
    browser.get(console_url)
    job_id = upload(browser, REPO / "examples" / "call_zh.wav")
    browser.refresh()
    wait(browser, lambda d: len(segments(d)) > 0)
    assert browser.find_element(By.ID, "call-title").text == "call_zh.wav"
    assert job_id in browser.current_url


def test_behind_nginx_with_basic_auth(browser: WebDriver, console_url: str) -> None:
    with running_nginx([console_url.removeprefix("http://")], free_port(), {USER: PASSWORD}) as url:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        browser.get(url)
        wait(browser, lambda d: d.find_element(By.ID, "service-status").text == "服务正常", 30)
        header = browser.execute_script("return getComputedStyle(document.querySelector('header')).backgroundColor")
        assert header == "rgb(31, 78, 150)"  # the stylesheet came through
        job_id = upload(browser, REPO / "examples" / "call_zh.wav")
        wait(browser, lambda d: len(segments(d)) > 0)
        wait(browser, lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1, 30)
        segments(browser)[0].find_element(By.CLASS_NAME, "edit").click()
        box = browser.find_element(By.CSS_SELECTOR, "#segments textarea")
        box.send_keys("（核对）")
        browser.find_element(By.CSS_SELECTOR, "#segments button.save").click()
        wait(browser, lambda d: f"已由 {USER} 更正" in d.find_element(By.ID, "segments").text, 20)  # nginx's user
        audio = httpx.get(f"{url}/jobs/{job_id}/audio", auth=(USER, PASSWORD), headers={"Range": "bytes=0-99"})
        assert audio.status_code == 206 and len(audio.content) == 100
        assert httpx.get(f"{url}/jobs/{job_id}/audio").status_code == 401
