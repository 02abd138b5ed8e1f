"""The web console in a real headless Chromium: sign in, flows, graph, start/watch/stop/report, policies, tenancy.

Set OPENFNF_CONSOLE_SCREENSHOTS=docs to (re)write the README's screenshots from this browser.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from alibabacloud_fnf20190315 import models

from tests.browser.conftest import FULL, OTHER, READ_ONLY
from tests.conftest import ROOT, Service

pytestmark = pytest.mark.e2e

ORDERS = """Type: StateMachine
SpecVersion: v1
Name: orders
StartAt: Check
States:
  - Type: Choice
    Name: Check
    Branches:
      - Condition: $Input.amount > 100
        Next: Review
    Default: Prepare
  - Type: Wait
    Name: Review
    Seconds.$: $Input.review
    Next: Prepare
  - Type: Parallel
    Name: Prepare
    Branches:
      - StartAt: Reserve
        States:
          - Type: Pass
            Name: Reserve
            End: true
      - StartAt: Charge
        States:
          - Type: Task
            Name: Charge
            Action: FC:InvokeFunction
            Parameters:
              resourceArn: acs:fc:cn-hangzhou:123456:functions/add/LATEST
              body:
                a: 1
                b: 2
            Catch:
              - Errors: [FnF.ALL]
                Next: Refund
            End: true
          - Type: Pass
            Name: Refund
            End: true
    Next: Done
  - Type: Succeed
    Name: Done
"""
BOOKING = """version: v1
type: flow
steps:
  - type: pass
    name: prepare
  - type: task
    name: book
    resourceArn: acs:fc:::services/demo/functions/fails
"""
FOREVER = """Type: StateMachine
SpecVersion: v1
StartAt: Sleep
States:
  - Type: Wait
    Name: Sleep
    Seconds: 600
    End: true
"""
APPROVAL = """Type: StateMachine
SpecVersion: v1
StartAt: Approve
States:
  - Type: Task
    Name: Approve
    Action: FC:InvokeFunction
    TaskMode: WaitForCustomCallback
    Parameters:
      resourceArn: acs:fc:cn-hangzhou:123456:functions/add/LATEST
      body:
        a: 1
        b: 2
        token.$: $Context.Current.TaskToken
    End: true
"""
KID = """Type: StateMachine
SpecVersion: v1
StartAt: Play
States:
  - Type: Pass
    Name: Play
    End: true
"""
MOM = """version: v1
type: flow
steps:
  - type: task
    name: call_kid
    resourceArn: acs:fnf:::flow/kid
    pattern: sync
    serviceParams:
      Input: $
"""
FANOUT = """Type: StateMachine
StartAt: M
States:
  - Type: Map
    Name: M
    ItemsPath: $Input.xs
    ProcessorConfig: {ExecutionMode: Express}
    Processor: {StartAt: P, States: [{Type: Pass, Name: P, End: true}]}
    End: true
"""
WAIT = 30  # seconds any page condition may take


@pytest.fixture(scope="module")
def sdk(console_service: Service) -> Any:
    """The service key's SDK client, with the flows the tests use."""
    client = console_service.client()
    for name, definition in (("orders", ORDERS), ("booking", BOOKING), ("forever", FOREVER), ("approval", APPROVAL), ("kid", KID), ("mom", MOM), ("fanout", FANOUT)):
        client.create_flow(models.CreateFlowRequest(name=name, definition=definition, description=f"{name} (console test)", type="FDL"))
    return client


def _url(svc: Service, path: str) -> str:
    return f"http://{svc.endpoint}/console{path}"


def _until(driver: Any, condition: Any, what: str) -> Any:
    """Wait for a condition; a running execution's page swaps its content as it changes, so stale elements are retried."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message=what
    )


def _css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _all(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _sign_in(driver: Any, svc: Service, key: tuple[str, str]) -> None:
    driver.delete_all_cookies()
    driver.get(_url(svc, "/signin"))
    _css(driver, "#access_key_id").send_keys(key[0])
    _css(driver, "#access_key_secret").send_keys(key[1])
    _css(driver, "#signin").click()
    _until(driver, lambda d: "/console/flows" in d.current_url, "signed in, on the flows page")


def _start(sdk: Any, flow: str, payload: dict[str, Any] | None = None, name: str | None = None) -> str:
    name = name or f"e{uuid.uuid4().hex[:12]}"
    sdk.start_execution(models.StartExecutionRequest(flow_name=flow, execution_name=name, input=json.dumps(payload or {})))
    return name


def _status(sdk: Any, flow: str, name: str, wait: int = 0) -> str:
    body = sdk.describe_execution(models.DescribeExecutionRequest(flow_name=flow, execution_name=name, wait_time_seconds=wait)).body
    return str(body.status)


def _shot(driver: Any, name: str, height: int = 1000) -> None:
    target = os.environ.get("OPENFNF_CONSOLE_SCREENSHOTS")
    if target:
        path = ROOT / target / f"console-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1400, height)
        driver.save_screenshot(str(path))
        driver.set_window_size(1400, 1000)


def _status_text(driver: Any) -> str:
    found = _all(driver, "#execution-status")
    return str(found[0].text) if found else ""


def test_sign_in_refuses_a_wrong_secret_without_saying_which_part_was_wrong(browser: Any, console_service: Service, sdk: Any) -> None:
    browser.delete_all_cookies()
    browser.get(_url(console_service, "/flows"))
    _until(browser, lambda d: "/console/signin" in d.current_url, "sent to sign in")
    _css(browser, "#access_key_id").send_keys(FULL[0])
    _css(browser, "#access_key_secret").send_keys("not-the-secret")
    _css(browser, "#signin").click()
    assert _css(browser, "#signin-error").text == "Wrong access key id or secret."
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert "openfnf_console" not in cookies
    _sign_in(browser, console_service, FULL)
    session = {c["name"]: c for c in browser.get_cookies()}["openfnf_console"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie").find("openfnf_console=") == -1  # not readable by scripts


def test_find_a_flow_and_open_its_graph(browser: Any, console_service: Service, sdk: Any) -> None:
    _sign_in(browser, console_service, FULL)
    _css(browser, "#prefix").send_keys("ord")
    _css(browser, "#search").click()
    _until(browser, lambda d: "prefix=ord" in d.current_url, "searched")
    links = [a.text for a in _all(browser, "#flows a.flow-link")]
    assert links == ["orders"]
    browser.get(_url(console_service, "/flows?prefix=ord"))
    _css(browser, "#flows a.flow-link").click()
    _until(browser, lambda d: _all(d, "#graph svg g.node"), "the graph is drawn")
    names = {g.get_attribute("data-name") for g in _all(browser, "#graph g.node")}
    assert {"Check", "Review", "Prepare", "Reserve", "Charge", "Refund", "Done", "Start"} <= names
    assert _all(browser, "#graph polyline.edge-catch"), "the Catch edge is drawn apart from Next edges"
    assert _all(browser, "#graph polyline.edge-default") and _all(browser, "#graph polyline.edge-choice")
    assert len(_all(browser, "#graph g.group")) >= 2  # the Parallel's two branches
    assert "Type" in _css(browser, "#definition").text and _all(browser, "#definition .yaml span")  # highlighted YAML
    _shot(browser, "graph", 1150)


def test_start_an_execution_and_watch_it_succeed_without_reloading(browser: Any, console_service: Service, sdk: Any) -> None:
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, "/flows/orders"))
    area = _css(browser, "#start-input")
    area.clear()
    area.send_keys('{"amount": 150, "review": 5')  # not JSON: refused before anything is sent
    _css(browser, "#start").click()
    assert _css(browser, "#start-input-error").is_displayed()
    assert browser.current_url.endswith("/flows/orders")
    area.clear()
    area.send_keys('{"amount": 150, "review": 5}')  # Review waits 5 s: the page shows Running first
    _css(browser, "#start-name").send_keys("watched")
    _css(browser, "#start").click()
    _until(browser, lambda d: "/executions/watched" in d.current_url, "on the new execution's page")
    assert _status_text(browser) == "Running"
    browser.execute_script("window.__sameDocument = 42;")
    _until(browser, lambda d: _status_text(d) == "Succeeded", "the page shows Succeeded by itself")
    assert browser.execute_script("return window.__sameDocument;") == 42, "the page was updated, not reloaded"
    colours = {g.get_attribute("data-name"): g.get_attribute("data-status") for g in _all(browser, "#graph g.node")}
    assert colours["Review"] == "succeeded" and colours["Charge"] == "succeeded" and colours["Refund"] == "not-reached"
    assert _all(browser, "#timeline svg g.bar.state")
    browser.execute_script("document.querySelectorAll('#states .state').forEach(function (s) { s.hidden = s.querySelector('h3').textContent.indexOf('Charge') !== 0; });")
    _shot(browser, "execution", 1750)


def test_a_failed_execution_shows_the_failing_state_error(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "booking")
    assert _status(sdk, "booking", name, wait=30) == "Failed"
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, f"/flows/booking/executions/{name}"))
    _until(browser, lambda d: _all(d, "#graph g.node[data-name=book]"), "the graph is drawn")
    node = _css(browser, "#graph g.node[data-name=book]")
    assert node.get_attribute("data-status") == "failed"
    node.click()
    section = _css(browser, f"#state-{node.get_attribute('data-node')}")
    _until(browser, lambda d: section.is_displayed(), "the clicked state shows")
    assert "BookFlightError" in section.text and "no seats left" in section.text
    others = [s for s in _all(browser, "#states .state") if s.get_attribute("id") != section.get_attribute("id")]
    assert others and not any(s.is_displayed() for s in others)


def test_stop_a_running_execution(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "forever")
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, f"/flows/forever/executions/{name}"))
    cause = _css(browser, "#stop-cause")
    cause.send_keys("stopped from the browser test")
    _css(browser, "#stop").click()
    _until(browser, lambda d: _status_text(d) == "Stopped", "the page shows Stopped")
    assert _status(sdk, "forever", name) == "Stopped"
    assert "stopped from the browser test" in _css(browser, "#execution-error").text


def test_report_a_waiting_callback_task_from_the_page(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "approval")
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, f"/flows/approval/executions/{name}"))
    _until(browser, lambda d: _all(d, "button.report-succeeded-button"), "the page offers to report the waiting task")
    assert _css(browser, "#graph g.node[data-name=Approve]").get_attribute("data-status") == "waiting"

    def report(d: Any) -> bool:
        output = _css(d, "form.report-succeeded textarea")
        output.clear()
        output.send_keys('{"approved": true, "by": "browser"}')
        _css(d, "button.report-succeeded-button").click()
        return True

    _until(browser, report, "the report form was sent")
    _until(browser, lambda d: _status_text(d) == "Succeeded", "the report ended the execution")
    assert json.loads(_css(browser, "#output-json").text) == {"approved": True, "by": "browser"}


def test_a_read_only_key_sees_but_is_refused_the_stop(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "forever")
    _sign_in(browser, console_service, READ_ONLY)
    browser.get(_url(console_service, f"/flows/forever/executions/{name}"))
    stop = _css(browser, "#stop")
    assert stop.get_attribute("disabled") is not None and _css(browser, "#stop-not-allowed").is_displayed()
    browser.execute_script("document.getElementById('stop').removeAttribute('disabled');")
    _css(browser, "#stop").click()
    _until(browser, lambda d: _all(d, "#refusal"), "the refusal page")
    assert "fnf:StopExecution" in _css(browser, "#refusal").text
    assert _status(sdk, "forever", name) == "Running"
    sdk.stop_execution(models.StopExecutionRequest(flow_name="forever", execution_name=name))


def test_another_account_sees_nothing(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "forever")
    _sign_in(browser, console_service, OTHER)
    assert not _all(browser, "#flows a.flow-link")
    browser.get(_url(console_service, "/flows/orders"))
    assert "There is no flow named orders." in _css(browser, "#refusal").text
    browser.get(_url(console_service, f"/flows/forever/executions/{name}"))
    assert "There is no flow named forever." in _css(browser, "#refusal").text
    sdk.stop_execution(models.StopExecutionRequest(flow_name="forever", execution_name=name))


def test_sign_out_ends_the_session(browser: Any, console_service: Service, sdk: Any) -> None:
    _sign_in(browser, console_service, FULL)
    session = {c["name"]: c["value"] for c in browser.get_cookies()}["openfnf_console"]
    _css(browser, "#signout").click()
    _until(browser, lambda d: "/console/signin" in d.current_url, "signed out")
    browser.add_cookie({"name": "openfnf_console", "value": session, "path": "/console"})  # the old cookie is dead
    browser.get(_url(console_service, "/flows"))
    assert "/console/signin" in browser.current_url


def test_start_again_runs_the_same_input_as_a_new_execution(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "orders", {"amount": 7})
    assert _status(sdk, "orders", name, wait=30) == "Succeeded"
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, f"/flows/orders/executions/{name}"))
    _css(browser, "#restart").click()
    _until(browser, lambda d: "/executions/" in d.current_url and not d.current_url.endswith(name), "on the new execution's page")
    _until(browser, lambda d: _status_text(d) == "Succeeded", "the new execution succeeds")
    assert json.loads(_css(browser, "#input-json").text) == {"amount": 7}


def test_parent_and_child_executions_link_to_each_other(browser: Any, console_service: Service, sdk: Any) -> None:
    name = _start(sdk, "mom", {"toy": "ball"})
    assert _status(sdk, "mom", name, wait=30) == "Succeeded"
    _sign_in(browser, console_service, FULL)
    browser.get(_url(console_service, f"/flows/mom/executions/{name}"))
    _css(browser, "a.child-link").click()
    _until(browser, lambda d: "/flows/kid/executions/" in d.current_url, "on the child's page")
    assert _status_text(browser) == "Succeeded"
    _css(browser, "#parent-link").click()
    _until(browser, lambda d: d.current_url.endswith(f"/flows/mom/executions/{name}"), "back on the parent's page")
    # A distributed Map: the parent links its MapRun, whose page lists its children, which link back.
    fan = _start(sdk, "fanout", {"xs": [1, 2, 3]})
    assert _status(sdk, "fanout", fan, wait=30) == "Succeeded"
    browser.get(_url(console_service, f"/flows/fanout/executions/{fan}"))
    _css(browser, "a.maprun-link").click()
    _until(browser, lambda d: "/mapruns/" in d.current_url, "on the MapRun's page")
    run_url = browser.current_url
    assert _css(browser, "#maprun-status").text == "Succeeded"
    assert _css(browser, '#maprun-counts td[data-count="Total"]').text == "3"
    assert len(_all(browser, "a.maprun-child")) == 3
    _css(browser, "a.maprun-child").click()
    _until(browser, lambda d: "/mapruns/" not in d.current_url, "on a child's page")
    assert _css(browser, "#maprun-link").get_attribute("href") == run_url
    _css(browser, "#parent-link").click()
    _until(browser, lambda d: d.current_url.endswith(f"/flows/fanout/executions/{fan}"), "back on the Map's parent")


def test_the_flows_list_counts_the_last_day_by_status(browser: Any, console_service: Service, sdk: Any) -> None:
    _start(sdk, "orders", {"amount": 1})  # at least one execution of orders, whichever tests ran before
    _sign_in(browser, console_service, FULL)
    row = next(r for r in _all(browser, "#flows tbody tr") if r.text.startswith("orders"))
    cells = row.find_elements("css selector", "td")
    assert int(cells[4].text) >= 1
    assert row.find_elements("css selector", "span.badge")
    _shot(browser, "flows", 700)
