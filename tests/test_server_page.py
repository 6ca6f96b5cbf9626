"""The page at the server's / in a real headless browser (Debian's Chromium through Selenium): run two prompts on
the example CT and check that the overlay drawn for "liver" has exactly the mask's voxels on a slice.

.ci/run installs chromium and chromium-driver; without them this test is skipped with the install command."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest

from server_process import running_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PAGE_TIMEOUT_S = 600

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's browser: apt-get install -y chromium chromium-driver")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def run_prompts_on_the_example(browser, url: str, prompts) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    box = browser.find_element(By.ID, "prompts")
    box.clear()
    box.send_keys("\n".join(prompts))
    browser.find_element(By.ID, "use-example").click()
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, PAGE_TIMEOUT_S, 0.5).until(
        lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("ready", "failed"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready", \
        browser.find_element(By.ID, "status").text
    return browser.execute_script("return window.viewer.job")


def mask_in_file_order(url: str, job: dict, prompt: str, folder: Path) -> np.ndarray:
    """The served mask as (i, j, k) voxels of the NIfTI file, the order the page indexes."""
    name = next(r["mask"] for r in job["results"] if r["prompt"] == prompt)
    path = folder / name
    path.write_bytes(httpx.get(f"{url}/jobs/{job['job_id']}/outputs/{name}", timeout=60).content)
    return np.asanyarray(nib.load(str(path)).dataobj)


def test_page_overlays_liver_pixel_for_voxel(browser, trained_openvocab_model, tmp_path):
    with running_server(trained_openvocab_model.model_folder, tmp_path / "jobs",
                        trained_openvocab_model.folders.env) as server:
        job = run_prompts_on_the_example(browser, server.url, ["liver", "spleen"])
        assert [r["prompt"] for r in job["results"]] == ["liver", "spleen"]
        liver = mask_in_file_order(server.url, job, "liver", tmp_path)
        table = browser.find_element("id", "results").text
        assert "liver" in table and "label" in table and job["results"][0]["presence"]["status"] in table
        for view in ("axial", "coronal", "sagittal"):
            axis = browser.execute_script(f"return window.viewer.sliceAxis('{view}')")
            per_slice = liver.sum(axis=tuple(a for a in range(3) if a != axis))
            slice_index = int(per_slice.argmax())
            browser.execute_script(f"window.viewer.showSlice('{view}', {slice_index})")
            drawn = browser.execute_script(f"return window.viewer.overlayCount('{view}', 0)")
            assert per_slice[slice_index] > 0
            assert drawn == per_slice[slice_index], (view, slice_index)
