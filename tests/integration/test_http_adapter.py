"""The one HTTP server adapter (lib/httpd.c) seen from outside: the gateway and a container
answer errors the same way (one body shape, WWW-Authenticate on 401, Allow on 405) and read
numbers with the same strict parser (no sign, no space)."""
import http.client
import json
import os
import unittest
import urllib.parse

from fabric import FabricCase


class HttpAdapter(FabricCase):
    CONTAINERS = 3

    def container_req(self, method, path, token=None, headers=None, body=None):
        """One request to the first container; returns (status, lowercase headers, body)."""
        url = self.fab.containers_info()[0]["url"]
        u = urllib.parse.urlsplit(url)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def service_token(self):
        with open(os.path.join(self.fab.data, "secrets", "service.token")) as f:
            return f.read().strip()

    def assert_error(self, status, headers, body, want_status, want_code):
        self.assertEqual(status, want_status, body)
        self.assertEqual(headers.get("content-type"), "application/json", headers)
        doc = json.loads(body)
        self.assertEqual(set(doc), {"error"}, doc)
        self.assertEqual(doc["error"]["code"], want_code, doc)
        self.assertIsInstance(doc["error"]["message"], str)

    def test_401_names_the_scheme_on_gateway_and_container(self):
        """Both servers answer a missing token with 401 and WWW-Authenticate: Bearer (the
        container did, the gateway did not: two error builders)."""
        r = self.fab.http("GET", "/v1/catalogs", token=None)
        self.assert_error(r.status, r.headers, r.body, 401, "unauthorized")
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer", r.headers)
        self.assertNotIn("retry-after", r.headers)
        st, hd, body = self.container_req("GET", "/v1/fragments")
        self.assert_error(st, hd, body, 401, "unauthorized")
        self.assertEqual(hd.get("www-authenticate"), "Bearer", hd)
        self.assertNotIn("retry-after", hd)

    def test_container_405_keeps_allow(self):
        st, hd, body = self.container_req("POST", "/v1/fragments", token=self.service_token(),
                                          headers={"Content-Length": "0"}, body=b"")
        self.assert_error(st, hd, body, 405, "method_not_allowed")
        self.assertIn("GET", hd.get("allow", ""), hd)

    def test_container_list_limit_is_strict(self):
        """limit is a plain decimal: a sign, a space or trailing junk is refused (strtol took
        "+5" and " 5"), and nothing is listed."""
        tok = self.service_token()
        st, hd, body = self.container_req("GET", "/v1/fragments?limit=5", token=tok)
        self.assertEqual(st, 200, body)
        for bad in ("%2B5", "%205", "5%20", "-1", "0", "0x10", "99999999999999999999999", ""):
            st, hd, body = self.container_req("GET", "/v1/fragments?limit=" + bad, token=tok)
            self.assert_error(st, hd, body, 400, "bad_request")
            self.assertIn("limit", json.loads(body)["error"]["message"])


if __name__ == "__main__":
    unittest.main()
