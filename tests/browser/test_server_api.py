"""The server extension's HTTP API, on a real JupyterLab server with real
kernels: Jupyter's authentication on every endpoint (no token: 403, never
data), XSRF on every POST, jobs of two notebooks listed with their notebook
paths, and a cancel through the ledger's mailbox that stops a running job."""

import http.cookiejar
import json
import urllib.error
import urllib.request

import pytest
from browser_harness import NotebookKernel, start_server, stop_server
from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

API = "/notebook-ext/api/jobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    lab = start_server("lab", tmp_path_factory.mktemp("server-api"))
    try:
        yield lab
    finally:
        stop_server(lab)


def call(lab, path, method="GET", token=True, headers=None, opener=None, data=None):
    """(status, headers, decoded JSON body or None) of one request."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"token {lab.token}"
    if method == "POST" and data is None:
        data = b""
    req = urllib.request.Request(lab.url + path, method=method, headers=h, data=data)
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=10) as r:
            body = r.read()
            return r.status, r.headers, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = body.decode(errors="replace")
        return e.code, e.headers, decoded


def jobs(lab):
    status, _, body = call(lab, API)
    assert status == 200, body
    return {j["name"]: j for j in body["jobs"]}


def test_every_endpoint_refuses_a_request_without_a_token(server):
    endpoints = [(API, "GET"), (API + "/abc:1", "GET"), (API + "/abc:1/cancel", "POST"),
                 (API + "/abc:1/stop", "POST")]
    for path, method in endpoints:
        for headers in ({}, {"Authorization": "token not-the-token"}):
            status, _, body = call(server, path, method, token=False, headers=headers)
            assert status == 403, (path, method, headers, status, body)
            assert not (isinstance(body, dict) and ("jobs" in body or "id" in body)), body


def test_a_post_without_xsrf_is_refused(server):
    # A browser's session: the login cookie, and Jupyter's _xsrf cookie.
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    opener.open(f"{server.url}/lab?token={server.token}", timeout=30).read()
    names = {c.name: c.value for c in cookies}
    assert "_xsrf" in names and any(n.startswith("username-") for n in names), names
    status, _, body = call(server, API, token=False, opener=opener)
    assert status == 200 and "jobs" in body  # the cookie alone reads
    status, _, body = call(server, API + "/abc:1/cancel", "POST", token=False, opener=opener)
    assert status == 403 and "xsrf" in json.dumps(body).lower(), (status, body)
    status, _, body = call(server, API + "/abc:1/cancel", "POST", token=False, opener=opener,
                           headers={"X-XSRFToken": names["_xsrf"]})
    assert status == 404, (status, body)  # past the XSRF check: no such job


def test_jobs_of_two_notebooks_listed_and_one_cancelled(server):
    (server.root_dir / "sub").mkdir(exist_ok=True)
    one, two = NotebookKernel(server, "one.ipynb"), NotebookKernel(server, "sub/two.ipynb")
    try:
        loop = "%%bg --name {}\nimport time\nfor i in nx.progress(range(10**6)):\n    time.sleep(0.01)"
        for k, name in ((one, "fit"), (two, "prep")):
            k.run("%load_ext notebook_ext\nimport notebook_ext as nx")
            k.run(loop.format(name))
        listed = wait_until(lambda: (j := jobs(server)).get("fit", {}).get("state") == "running"
                            and j.get("prep", {}).get("state") == "running" and j,
                            timeout=30, interval=0.2, message="both jobs running in the listing")
        assert listed["fit"]["notebook"] == "one.ipynb" and listed["prep"]["notebook"] == "sub/two.ipynb"
        assert listed["fit"]["owner"]["kernel"] == one.id and listed["prep"]["owner"]["kernel"] == two.id
        assert listed["fit"]["kernel_here"] and listed["fit"]["live"]
        wait_until(lambda: (jobs(server)["fit"]["progress"]["done"] or 0) > 0, timeout=10, interval=0.2,
                   message="the live snapshot reaches the listing")

        status, _, body = call(server, f"{API}/{listed['fit']['id']}", token=True)
        assert status == 200 and body["name"] == "fit" and "traceback" in body

        status, _, body = call(server, f"{API}/{listed['fit']['id']}/cancel", "POST")
        assert status == 202, body
        wait_until(lambda: jobs(server)["fit"]["state"] == "cancelled", timeout=10, interval=0.2,
                   message="the cancel through the mailbox did not end the job")
        assert jobs(server)["prep"]["state"] == "running"  # the other notebook's job runs on
        status, _, body = call(server, f"{API}/{listed['fit']['id']}/stop", "POST")
        assert status == 409 and "cancelled" in body["message"], body  # it has ended: nothing to stop
        status, _, body = call(server, f"{API}/nope:1/cancel", "POST")
        assert status == 404, body

        # A long poll: with the ETag it has and ?wait=S, a page is answered when a job changes.
        status, headers, _ = call(server, API)
        status2, headers2, body2 = call(server, API + "?wait=20", headers={"If-None-Match": headers["ETag"]})
        assert status2 == 200 and headers2["ETag"] != headers["ETag"], status2  # prep's progress moved
        assert body2["jobs"]

        # A page that has the listing gets a 304 while no job changes.
        status, _, body = call(server, f"{API}/{listed['prep']['id']}/cancel", "POST")
        assert status == 202
        wait_until(lambda: jobs(server)["prep"]["state"] == "cancelled", timeout=10, interval=0.2, message="prep cancelled")
        status, headers, _ = call(server, API)
        status2, _, body2 = call(server, API, headers={"If-None-Match": headers["ETag"]})
        assert (status, status2, body2) == (200, 304, None)
        status3, _, body3 = call(server, API + "?wait=1", headers={"If-None-Match": headers["ETag"]})
        assert (status3, body3) == (304, None)  # nothing changed within the wait
    finally:
        one.close()
        two.close()
